"""`autolabel detect` against botocore's Stubber with the real Rekognition service model."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.model import Shape
from botocore.stub import Stubber
from moto import mock_aws
from PIL import Image

from autolabel import detect
from local.samples import make_image
from tests.support.cli import RunCli

ARN = "arn:aws:rekognition:us-east-1:123456789012:project/widgets/version/widgets.2026-11-01T10.00.00/1730455200000"
LABELS = [
    {
        "Name": "scratch",
        "Confidence": 97.5,
        "Geometry": {"BoundingBox": {"Width": 0.3, "Height": 0.25, "Left": 0.1, "Top": 0.1}},
    },
    {"Name": "logo", "Confidence": 88.0},
]
MODEL = botocore.session.get_session().get_service_model("rekognition").operation_model("DetectCustomLabels")


@pytest.fixture
def rekognition() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("rekognition", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_s3_shorthand_with_version_and_min_confidence_zero_is_sent_as_zero(
    cli: RunCli, rekognition: tuple[Any, Stubber]
) -> None:
    client, stubber = rekognition
    stubber.add_response(
        "detect_custom_labels",
        {"CustomLabels": LABELS},
        {
            "ProjectVersionArn": ARN,
            "Image": {"S3Object": {"Bucket": "photos", "Name": "line 1/part.png", "Version": "v1"}},
            "MinConfidence": 0.0,
            "MaxResults": 5,
        },
    )
    run = cli(
        "detect",
        "--project-version-arn",
        ARN,
        "--image",
        "S3Object={Bucket=photos,Name=line 1/part.png,Version=v1}",
        "--min-confidence",
        "0",
        "--max-results",
        "5",
        clients={"rekognition": client},
    )
    assert (run.code, run.err) == (0, "")
    assert json.loads(run.out) == {"CustomLabels": LABELS}  # exactly the API's body, no ResponseMetadata


def test_image_as_json_and_the_model_from_the_environment(
    cli: RunCli, rekognition: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber = rekognition
    monkeypatch.setenv("AUTOLABEL_PROJECT_VERSION_ARN", ARN)
    stubber.add_response(
        "detect_custom_labels",
        {"CustomLabels": []},
        {"ProjectVersionArn": ARN, "Image": {"S3Object": {"Bucket": "photos", "Name": "k.jpg"}}},
    )
    run = cli(
        "detect", "--image", '{"S3Object": {"Bucket": "photos", "Name": "k.jpg"}}', clients={"rekognition": client}
    )
    assert (run.code, json.loads(run.out)) == (0, {"CustomLabels": []})


def test_image_bytes_from_fileb(cli: RunCli, rekognition: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stubber = rekognition
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(make_image({"scratch": (0.1, 0.1, 0.3, 0.25)}, image_format="JPEG"))
    stubber.add_response(
        "detect_custom_labels",
        {"CustomLabels": LABELS},
        {"ProjectVersionArn": ARN, "Image": {"Bytes": photo.read_bytes()}},
    )
    out = tmp_path / "out.png"
    run = cli(
        "detect",
        "--project-version-arn",
        ARN,
        "--image-bytes",
        f"fileb://{photo}",
        "--render",
        str(out),
        clients={"rekognition": client},
    )
    assert run.code == 0, run.err
    drawn = Image.open(out)
    assert drawn.size == (320, 240)
    original = Image.open(io.BytesIO(photo.read_bytes())).convert("RGB")
    assert drawn.convert("RGB").tobytes() != original.tobytes()  # boxes were drawn


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * detect.MAX_IMAGE_BYTES, "at most 4,194,304 bytes"),
        (b"GIF89a" + b"\0" * 100, "not a PNG or JPEG"),
        (b"", "is empty"),
    ],
)
def test_image_bytes_refused_before_the_call(
    cli: RunCli, rekognition: tuple[Any, Stubber], tmp_path: Path, body: bytes, complaint: str
) -> None:
    client, _ = rekognition  # nothing stubbed: any call would fail the test
    photo = tmp_path / "photo.bin"
    photo.write_bytes(body)
    run = cli(
        "detect", "--project-version-arn", ARN, "--image-bytes", f"fileb://{photo}", clients={"rekognition": client}
    )
    assert run.code == 252
    assert complaint in run.err and run.err.count("\n") == 1


def test_four_megabytes_exactly_is_accepted(cli: RunCli, rekognition: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stubber = rekognition
    body = b"\xff\xd8\xff" + b"\0" * (detect.MAX_IMAGE_BYTES - 3)
    (tmp_path / "big.jpg").write_bytes(body)
    stubber.add_response(
        "detect_custom_labels", {"CustomLabels": []}, {"ProjectVersionArn": ARN, "Image": {"Bytes": body}}
    )
    run = cli(
        "detect",
        "--project-version-arn",
        ARN,
        "--image-bytes",
        str(tmp_path / "big.jpg"),
        clients={"rekognition": client},
    )
    assert run.code == 0, run.err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--min-confidence", "101"], "MinConfidence must be <= 100"),
        (["--min-confidence", "-1"], "MinConfidence must be >= 0"),
        (["--min-confidence", "high"], "MinConfidence must be a number"),
        (["--max-results", "-1"], "MaxResults must be >= 0"),
        (["--max-results", "2.5"], "MaxResults must be an integer"),
        (
            ["--image", "S3Object={Bucket=photos,Nom=k}"],
            "unknown parameter Image.S3Object.Nom; valid: Bucket, Name, Version",
        ),
        (["--image", "S3Object={Bucket=photos,Name=k"], "missing '}'"),
        (["--image", "{not json"], "invalid JSON"),
        (["--image", "S3Object={Name=k}"], "missing required parameter Image.S3Object.Bucket"),
        (["--image", "S3Object={Bucket=photos,Name=k}", "--image-bytes", "fileb://x.png"], "mutually exclusive"),
        (["--project-version-arn", "not-an-arn", "--image", "S3Object={Bucket=photos,Name=k}"], "ProjectVersionArn"),
        (["--output", "yaml"], "invalid choice"),
        (["--no-such-option"], "unrecognized arguments"),
        (["--query", "CustomLabels[", "--image", "S3Object={Bucket=photos,Name=k}"], "invalid --query"),
    ],
)
def test_bad_parameters_exit_252_with_one_clear_line(
    cli: RunCli, rekognition: tuple[Any, Stubber], argv: list[str], complaint: str
) -> None:
    client, stubber = rekognition
    if "--query" in argv:  # the query is applied to the answer
        stubber.add_response("detect_custom_labels", {"CustomLabels": []})
    defaults = ["--project-version-arn", ARN] if "--project-version-arn" not in argv else []
    image = [] if any(a.startswith("--image") for a in argv) else ["--image", "S3Object={Bucket=photos,Name=k}"]
    run = cli("detect", *defaults, *image, *argv, clients={"rekognition": client})
    assert run.code == 252, run.err
    assert complaint in run.err
    assert "Traceback" not in run.err


def test_no_image_at_all(cli: RunCli, rekognition: tuple[Any, Stubber]) -> None:
    run = cli("detect", "--project-version-arn", ARN, clients={"rekognition": rekognition[0]})
    assert run.code == 252 and "an image is required" in run.err


def test_cli_input_json_inline_and_file_with_options_overriding(
    cli: RunCli, rekognition: tuple[Any, Stubber], tmp_path: Path
) -> None:
    client, stubber = rekognition
    request = {"ProjectVersionArn": ARN, "Image": {"S3Object": {"Bucket": "photos", "Name": "k"}}, "MinConfidence": 50}
    stubber.add_response("detect_custom_labels", {"CustomLabels": []}, {**request, "MinConfidence": 50.0})
    stubber.add_response("detect_custom_labels", {"CustomLabels": []}, {**request, "MinConfidence": 0.0})
    assert cli("detect", "--cli-input-json", json.dumps(request), clients={"rekognition": client}).code == 0
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    run = cli("detect", "--cli-input-json", f"file://{path}", "--min-confidence", "0", clients={"rekognition": client})
    assert run.code == 0, run.err


def test_cli_input_json_with_an_unknown_member(cli: RunCli, rekognition: tuple[Any, Stubber]) -> None:
    run = cli(
        "detect",
        "--cli-input-json",
        json.dumps(
            {"ProjectVersionArn": ARN, "Image": {"S3Object": {"Bucket": "photos", "Name": "k"}}, "MinConfidense": 1}
        ),
        clients={"rekognition": rekognition[0]},
    )
    assert run.code == 252 and "unknown parameter MinConfidense" in run.err


def _walk(shape: Shape) -> Any:
    """An independent reading of the model: member names and leaf types."""
    if shape.type_name == "structure":
        return {name: _walk(member) for name, member in shape.members.items()}
    if shape.type_name == "list":
        return [_walk(shape.member)]
    return shape.type_name


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return {str: ("string", "blob"), int: ("integer",), float: ("float",)}[type(value)]


def _same(skeleton: Any, walked: Any) -> bool:
    if isinstance(walked, dict):
        return (
            isinstance(skeleton, dict)
            and skeleton.keys() == walked.keys()
            and all(_same(skeleton[k], walked[k]) for k in walked)
        )
    if isinstance(walked, list):
        return isinstance(skeleton, list) and _same(skeleton[0], walked[0])
    return walked in skeleton


@pytest.mark.parametrize("which", ["input", "output"])
def test_skeleton_is_the_service_model(cli: RunCli, which: str) -> None:
    run = cli("detect", "--generate-cli-skeleton", which)
    assert run.code == 0
    shape = MODEL.input_shape if which == "input" else MODEL.output_shape
    assert shape is not None
    assert _same(_types(json.loads(run.out)), _walk(shape))


def test_input_skeleton_as_the_aws_cli_shows_it(cli: RunCli) -> None:
    assert json.loads(cli("detect", "--generate-cli-skeleton").out) == {
        "ProjectVersionArn": "",
        "Image": {"Bytes": "", "S3Object": {"Bucket": "", "Name": "", "Version": ""}},
        "MaxResults": 0,
        "MinConfidence": 0.0,
    }


def test_output_formats_and_query(cli: RunCli, rekognition: tuple[Any, Stubber]) -> None:
    client, stubber = rekognition
    for _ in range(3):
        stubber.add_response("detect_custom_labels", {"CustomLabels": LABELS})
    base = ["detect", "--project-version-arn", ARN, "--image", "S3Object={Bucket=photos,Name=k}"]
    table = cli(*base, "--output", "table", clients={"rekognition": client}).out
    assert table.splitlines()[0].split() == ["label", "confidence", "left", "top", "width", "height"]
    assert table.splitlines()[2].split() == ["scratch", "97.5", "0.100", "0.100", "0.300", "0.250"]
    text = cli(*base, "--output", "text", clients={"rekognition": client}).out
    assert "CUSTOMLABELS\tscratch\t97.5" in text
    names = cli(*base, "--query", "CustomLabels[].Name", clients={"rekognition": client}).out
    assert json.loads(names) == ["scratch", "logo"]


def test_every_documented_error_has_advice() -> None:
    assert set(detect.ERROR_ADVICE) == {shape.name for shape in MODEL.error_shapes}


@pytest.mark.parametrize("code", sorted(detect.ERROR_ADVICE))
def test_each_documented_error_is_one_line_and_exit_254(
    cli: RunCli, rekognition: tuple[Any, Stubber], code: str
) -> None:
    client, stubber = rekognition
    stubber.add_client_error("detect_custom_labels", service_error_code=code, service_message="the service says so")
    run = cli(
        "detect",
        "--project-version-arn",
        ARN,
        "--image",
        "S3Object={Bucket=photos,Name=k}",
        clients={"rekognition": client},
    )
    assert run.code == 254
    assert run.out == ""
    assert run.err == f"autolabel: {code}: {detect.ERROR_ADVICE[code]} (the service says so)\n"


def test_an_undocumented_error_still_reads_as_one_line(cli: RunCli, rekognition: tuple[Any, Stubber]) -> None:
    client, stubber = rekognition
    stubber.add_client_error("detect_custom_labels", service_error_code="ServiceUnavailable", http_status_code=503)
    run = cli(
        "detect",
        "--project-version-arn",
        ARN,
        "--image",
        "S3Object={Bucket=photos,Name=k}",
        clients={"rekognition": client},
    )
    assert run.code == 254 and run.err.startswith("autolabel: ServiceUnavailable") and run.err.count("\n") == 1


def test_render_of_an_s3_image_reads_that_version(
    cli: RunCli, rekognition: tuple[Any, Stubber], tmp_path: Path
) -> None:
    client, stubber = rekognition
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="photos")
        s3.put_bucket_versioning(Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
        first = s3.put_object(Bucket="photos", Key="k.png", Body=make_image({}, size=(200, 100)))["VersionId"]
        s3.put_object(Bucket="photos", Key="k.png", Body=make_image({}, size=(50, 50)))
        stubber.add_response("detect_custom_labels", {"CustomLabels": LABELS})
        out = tmp_path / "boxes.png"
        run = cli(
            "detect",
            "--project-version-arn",
            ARN,
            "--image",
            f"S3Object={{Bucket=photos,Name=k.png,Version={first}}}",
            "--render",
            str(out),
            clients={"rekognition": client, "s3": s3},
        )
    assert (run.code, run.err) == (0, f"wrote {out}\n")
    assert Image.open(out).size == (200, 100)  # the version that was labeled, not the latest
