"""``autolabel detect``: one DetectCustomLabels call, with the AWS CLI's parameter forms.

Everything about the request is read from botocore's service model for
Rekognition's DetectCustomLabels (members, required members, bounds, the
skeleton, the documented errors), so the command cannot drift from the API.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from pathlib import Path
from typing import Any, NoReturn

import botocore.session
from botocore.model import OperationModel, Shape

from autolabel.errors import ParameterError

OPERATION = "DetectCustomLabels"
# The API reference (Image.Bytes): "the maximum image size you can pass to
# DetectCustomLabels is 4MB" (the shape itself allows 5 MB for other operations).
MAX_IMAGE_BYTES = 4 * 1024 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"

# One line per documented error: what happened and what to do. Every error of
# the operation's model has one (tests/cli check it against botocore).
ERROR_ADVICE = {
    "AccessDeniedException": "your credentials may not call rekognition:DetectCustomLabels on this model version "
    "(or Rekognition may not read the S3 object with them): check the IAM policy, --profile and --region",
    "InvalidImageFormatException": "the image is not a PNG or JPEG that Rekognition can decode: convert it",
    "ImageTooLargeException": "the image is too large: at most 4 MB as bytes, 15 MB in S3, 4096x4096 px; resize it",
    "ResourceNotReadyException": "the model version is not running: `autolabel model start`, wait for RUNNING "
    "(`autolabel model status`), then retry",
    "ResourceNotFoundException": "no such model version: check --project-version-arn and --region",
    "ThrottlingException": "Rekognition is throttling your requests: retry later, with backoff",
    "ProvisionedThroughputExceededException": "the model's inference units are saturated: retry later, or start the "
    "model with more inference units (`autolabel model start --max-units N`)",
    "InvalidParameterException": "Rekognition refused a parameter (images must be at least 64x64 px with an aspect "
    "ratio up to 20:1): fix the request",
    "InvalidS3ObjectException": "Rekognition cannot read the S3 object: check bucket, key and version, that the "
    "bucket is in the model's region, and that your credentials may read it",
    "LimitExceededException": "a Rekognition limit was exceeded: retry later, or ask for a quota increase",
    "InternalServerError": "Rekognition had an internal error: retry",
}


def operation_model() -> OperationModel:
    model = botocore.session.get_session().get_service_model("rekognition")
    return model.operation_model(OPERATION)


# --- --generate-cli-skeleton -------------------------------------------------------------------


def skeleton_of(shape: Shape, seen: tuple[str, ...] = ()) -> Any:
    """The AWS CLI's skeleton value of a shape (structures recurse, once per path)."""
    kind = shape.type_name
    if kind == "structure":
        if shape.name in seen:
            return {}
        return {name: skeleton_of(member, (*seen, shape.name)) for name, member in shape.members.items()}
    if kind == "list":
        return [skeleton_of(shape.member, seen)]
    if kind == "map":
        return {"KeyName": skeleton_of(shape.value, seen)}
    if kind in ("integer", "long"):
        return 0
    if kind in ("float", "double"):
        return 0.0
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return "1970-01-01T00:00:00"
    return ""  # string, blob


def skeleton(which: str) -> dict[str, Any]:
    op = operation_model()
    shape = op.input_shape if which == "input" else op.output_shape
    assert shape is not None
    return dict(skeleton_of(shape))


# --- parameter forms ----------------------------------------------------------------------------


def read_file_uri(value: str, *, binary: bool, option: str) -> Any:
    """``file://path`` (text) or ``fileb://path`` (bytes); a plain path is accepted for bytes."""
    path: str | None = None
    if value.startswith("fileb://"):
        path = value[len("fileb://") :]
    elif value.startswith("file://"):
        path = value[len("file://") :]
    elif binary:
        path = value
    if path is None:
        return None
    try:
        return Path(path).expanduser().read_bytes() if binary else Path(path).expanduser().read_text()
    except OSError as error:
        raise ParameterError(f"{option}: cannot read {path}: {error.strerror}") from None


class _Shorthand:
    """The AWS CLI shorthand syntax: ``S3Object={Bucket=b,Name=k,Version=v}``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> dict[str, Any]:
        value = self._pairs(closing=None)
        if self.pos != len(self.text):
            self._fail("unexpected text")
        return value

    def _fail(self, what: str) -> NoReturn:
        raise ParameterError(f"--image: {what} at position {self.pos} of {self.text!r} (expected Key=value,...)")

    def _pairs(self, closing: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while self.pos < len(self.text) and self.text[self.pos] != closing:
            match = re.compile(r"\s*([A-Za-z0-9_]+)\s*=").match(self.text, self.pos)
            if not match:
                self._fail("expected a key")
            self.pos = match.end()
            result[match.group(1)] = self._value()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
        return result

    def _value(self) -> Any:
        if self.pos < len(self.text) and self.text[self.pos] == "{":
            self.pos += 1
            value = self._pairs(closing="}")
            if self.pos >= len(self.text):
                self._fail("missing '}'")
            self.pos += 1
            return value
        if self.pos < len(self.text) and self.text[self.pos] in "\"'":
            quote = self.text[self.pos]
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                self._fail("unterminated quote")
            quoted = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return quoted
        bare = re.compile(r"[^,{}]*").match(self.text, self.pos)
        assert bare is not None
        self.pos = bare.end()
        return bare.group(0).strip()


def parse_structure_argument(value: str, option: str) -> dict[str, Any]:
    """JSON (``{"S3Object": {...}}``) or shorthand (``S3Object={Bucket=b,Name=k}``)."""
    text = value.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise ParameterError(f"{option}: invalid JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise ParameterError(f"{option}: expected a JSON object")
        return parsed
    return _Shorthand(text).parse()


def parse_cli_input_json(value: str) -> dict[str, Any]:
    text = read_file_uri(value, binary=False, option="--cli-input-json")
    try:
        parsed = json.loads(value if text is None else text)
    except json.JSONDecodeError as error:
        raise ParameterError(f"--cli-input-json: invalid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise ParameterError("--cli-input-json: expected a JSON object")
    return parsed


# --- validation against the service model -------------------------------------------------------


def _bounds(shape: Shape, value: float, path: str) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        raise ParameterError(f"{path} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ParameterError(f"{path} must be <= {high}, got {value}")


def coerce(value: Any, shape: Shape, path: str) -> Any:
    """The value as the API wants it, or a ParameterError naming the parameter."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise ParameterError(f"{path} must be a structure ({', '.join(shape.members)})")
        members = shape.members
        unknown = sorted(set(value) - set(members))
        if unknown:
            raise ParameterError(
                f"unknown parameter {path + '.' if path else ''}{unknown[0]}; valid: {', '.join(members)}"
            )
        missing = [name for name in shape.required_members if value.get(name) in (None, "")]
        if missing:
            raise ParameterError(f"missing required parameter {path + '.' if path else ''}{missing[0]}")
        return {
            name: coerce(item, members[name], f"{path}.{name}" if path else name)
            for name, item in value.items()
            if item is not None
        }
    if kind in ("integer", "long"):
        try:
            number = int(value) if not isinstance(value, bool) and float(value) == int(float(value)) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise ParameterError(f"{path} must be an integer, got {value!r}")
        _bounds(shape, number, path)
        return number
    if kind in ("float", "double"):
        try:
            real = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{path} must be a number, got {value!r}") from None
        if math.isnan(real):
            raise ParameterError(f"{path} must be a number, got {value!r}")
        _bounds(shape, real, path)
        return real
    if kind == "blob":
        if isinstance(value, str):  # JSON input carries blobs base64-encoded
            try:
                value = base64.b64decode(value, validate=True)
            except binascii.Error:
                raise ParameterError(f"{path} must be base64 in JSON input (or use --image-bytes fileb://)") from None
        if not isinstance(value, bytes):
            raise ParameterError(f"{path} must be bytes")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise ParameterError(f"{path} must be a string, got {value!r}")
        _bounds(shape, len(value), f"the length of {path}")
        pattern = shape.metadata.get("pattern")
        if pattern and not re.search(pattern, value):
            raise ParameterError(f"{path} does not match the API's pattern {pattern}: {value!r}")
        return value
    return value


def check_image_bytes(data: bytes, source: str) -> None:
    """What Rekognition would refuse, said before the call."""
    if not data:
        raise ParameterError(f"{source} is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ParameterError(
            f"{source} is {len(data):,} bytes; DetectCustomLabels accepts at most {MAX_IMAGE_BYTES:,} bytes "
            "(4 MB) as image bytes: resize it, or upload it to S3 (up to 15 MB) and use --image S3Object={...}"
        )
    if not (data.startswith(PNG_MAGIC) or data.startswith(JPEG_MAGIC)):
        raise ParameterError(f"{source} is not a PNG or JPEG file (DetectCustomLabels reads only those)")


def build_request(
    *,
    cli_input_json: str | None,
    project_version_arn: str | None,
    image: str | None,
    image_bytes: str | None,
    min_confidence: str | None,
    max_results: str | None,
    default_project_version_arn: Any,
) -> dict[str, Any]:
    """The validated DetectCustomLabels request; options given override --cli-input-json.

    ``default_project_version_arn`` is called only when no ARN was given.
    """
    request: dict[str, Any] = parse_cli_input_json(cli_input_json) if cli_input_json else {}
    if image is not None and image_bytes is not None:
        raise ParameterError("--image and --image-bytes are mutually exclusive")
    if project_version_arn is not None:
        request["ProjectVersionArn"] = project_version_arn
    if image is not None:
        request["Image"] = parse_structure_argument(image, "--image")
    if image_bytes is not None:
        data = read_file_uri(image_bytes, binary=True, option="--image-bytes")
        request["Image"] = {"Bytes": data}
    if min_confidence is not None:
        request["MinConfidence"] = min_confidence
    if max_results is not None:
        request["MaxResults"] = max_results
    if "Image" not in request:
        raise ParameterError("an image is required: --image S3Object={Bucket=b,Name=k} or --image-bytes fileb://x.jpg")
    if not request.get("ProjectVersionArn"):
        request["ProjectVersionArn"] = default_project_version_arn()
    op = operation_model()
    assert op.input_shape is not None
    coerced: dict[str, Any] = coerce(request, op.input_shape, "")
    picture = coerced["Image"]
    if ("Bytes" in picture) == ("S3Object" in picture):
        raise ParameterError("Image takes exactly one of Bytes or S3Object")
    for member in ("Bucket", "Name"):  # optional in the shape, required by the service
        if "S3Object" in picture and not picture["S3Object"].get(member):
            raise ParameterError(f"missing required parameter Image.S3Object.{member}")
    if "Bytes" in picture:
        check_image_bytes(picture["Bytes"], image_bytes or "Image.Bytes")
    return coerced


def response_body(response: dict[str, Any]) -> dict[str, Any]:
    """Exactly the members of the operation's output shape (no ResponseMetadata)."""
    op = operation_model()
    assert op.output_shape is not None
    return {name: response[name] for name in op.output_shape.members if name in response}


def error_line(code: str, message: str) -> str:
    advice = ERROR_ADVICE.get(code)
    return f"{code}: {advice} ({message})" if advice else f"{code}: {message}"
