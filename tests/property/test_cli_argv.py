"""`autolabel` with argv Hypothesis makes up: never a traceback, always one line and a documented exit code.

Each example picks a command (every level of the parser, so usage errors
too), then a mix of that command's own options, the global options, and
values from a pool of bad ones (paths, endpoints, URIs, numbers, encodings)
or arbitrary text. It runs against a deployment in moto whose Rekognition,
Lambda and CloudWatch refuse every call (a role without those permissions);
SQS answers the message-move-task calls as an endpoint without them does.

Left out, because they wait by design: `--wait` and the hidden
`--poll-seconds` (follow a backfill until the model labeled it). Files are
written only under a temporary working folder: arbitrary text never names
an absolute path or a home folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from autolabel.cli import build_parser, main
from autolabel.config import OUTPUT_ENVIRONMENT, STACK_NAME_VARIABLE
from autolabel.errors import EXIT_CODES
from local.emulator import drain_queue
from local.run import register_stack_outputs
from local.samples import make_image
from local.stack_template import PLACEHOLDER_PROJECT_VERSION_ARN, StackFacts
from tests.support.harness import Harness

WAITING_OPTIONS = {"--wait", "--poll-seconds"}


def _parsers() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        found[path] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))

    walk(build_parser(), ())
    return found


PARSERS = _parsers()


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(
        name
        for action in parser._actions
        for name in action.option_strings
        if name not in WAITING_OPTIONS and name not in ("-h", "--help", "--version")
    )


class RefusingService:
    def __getattr__(self, operation: str) -> Any:
        if operation.startswith("_"):  # not an operation (repr, pickling, pretty printers)
            raise AttributeError(operation)

        def refuse(**_: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, operation)

        return refuse


class SqsWithoutMoveTasks:
    """moto's SQS, answering the message move task calls as an endpoint that lacks them (HTTP 501)."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def __getattr__(self, operation: str) -> Any:
        if operation.startswith("_") or "message_move_task" not in operation:
            return getattr(self._sqs, operation)

        def missing(**_: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "NotImplemented", "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": 501}},
                "".join(part.title() for part in operation.split("_")),
            )

        return missing


@pytest.fixture(scope="module")
def deployment(stack_facts: StackFacts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("argv")
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        patch.chdir(folder)  # a backfill checkpoint or a rendered file lands here
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(name, "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in (
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_PROFILE",
            STACK_NAME_VARIABLE,
            *OUTPUT_ENVIRONMENT.values(),
        ):
            patch.delenv(name, raising=False)
        harness = Harness(stack_facts)
        harness.upload("line-1/part-0001.png", make_image({"scratch": (0.1, 0.1, 0.3, 0.25)}))
        with contextlib.redirect_stdout(io.StringIO()):
            harness.run()
        resources = harness.resources
        register_stack_outputs(
            boto3.client("cloudformation"),
            {
                "ImageBucketName": resources.bucket,
                "IngestQueueUrl": resources.queue_url,
                "DeadLetterQueueUrl": resources.dead_letter_queue_url,
                "ResultsTableName": resources.table_name,
                "ProjectVersionArn": PLACEHOLDER_PROJECT_VERSION_ARN,
                "EventSourceMappingId": "esm-1",
                "BackfillQueueUrl": resources.backfill_queue_url,
                "BackfillDeadLetterQueueUrl": resources.backfill_dead_letter_queue_url,
            },
        )
        (folder / "photo.png").write_bytes(make_image({"logo": (0.5, 0.5, 0.3, 0.3)}))
        (folder / "notes.txt").write_text("not an image")
        clients = {name: boto3.client(name) for name in ("s3", "dynamodb", "cloudformation")}
        clients["sqs"] = SqsWithoutMoveTasks(boto3.client("sqs"))
        clients.update({name: RefusingService() for name in ("rekognition", "lambda", "cloudwatch")})
        yield {"folder": folder, "clients": clients, "harness": harness}


BUCKET = "autolabel-images"  # local.emulator.create_resources
# Relative paths name files in the temporary working folder.
VALUES = [
    # numbers
    *["0", "-1", "1", "101", "1e309", "-1e309", "nan", "inf", "0x10", "1_000", "٣", "", " "],
    # S3 URIs
    *["s3://", "s3://b", f"s3://{BUCKET}", f"s3://{BUCKET}/", f"s3://{BUCKET}/line-1/part-0001.png", "s3:///k"],
    "status",
    # paths and file URIs
    *["/nonexistent-dir/x.png", "/dev/full", ".", "out.png", "out.jpg", "photo.png", "nowhere/x.png"],
    *["fileb://photo.png", "fileb://notes.txt", "fileb:///nonexistent.png", "photo.png", "notes.txt"],
    *["file:///nonexistent.json", "file://notes.txt", "fileb://", "file://"],
    # endpoints
    *["127.0.0.1:33455", "localhost:4566", "http://", "http://[::1", "http://127.0.0.1:99999", "ftp://x"],
    # structures, queries, encodings
    *["{", "[]", '{"S3Object": 1}', "S3Object={Bucket=", "S3Object={Bucket=b,Name=k}", "[?", "json", "table"],
    *["\udcff", "é", "\x00", "--", "-", "2026-13-45", "2026-01-01T00:00:00Z", PLACEHOLDER_PROJECT_VERSION_ARN],
]


# Arbitrary text that cannot name an absolute path or a home folder (files are written only under the cwd).
SAFE_TEXT = st.text(st.characters(exclude_characters="/\\~", exclude_categories=("Cs",)), max_size=12)


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    path = draw(st.sampled_from(sorted(PARSERS)))
    options = _options(PARSERS[path]) + _options(PARSERS[()])
    token = st.one_of(st.sampled_from(options), st.sampled_from(VALUES), SAFE_TEXT)
    return [*path, *draw(st.lists(token, max_size=7))]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=argvs())
def test_any_argv_is_one_line_and_a_documented_exit_code(
    capsys: pytest.CaptureFixture[str], deployment: dict[str, Any], argv: list[str]
) -> None:
    harness: Harness = deployment["harness"]
    clients = deployment["clients"]
    code = main(argv, client_factory=lambda service: clients[service])
    err = capsys.readouterr().err
    drain_queue(harness.sqs, harness.resources.backfill_queue_url)  # the next backfill never waits for room
    assert code in EXIT_CODES, (code, err)
    assert "Traceback" not in err and "unexpected error" not in err, err
    if code != 0:  # the one line (argparse's usage lines may come before it, a progress bar too)
        assert [line for line in err.splitlines() if line.startswith("autolabel:")] == [err.splitlines()[-1]], err


def test_the_strategy_reaches_every_command(deployment: dict[str, Any]) -> None:
    """The fuzzing is only as good as its reach: every leaf command and every option is drawable."""
    assert {path[0] for path in PARSERS if path} == {"detect", "show", "find", "render", "model", "dlq", "backfill"}
    assert "--render" in _options(PARSERS[("detect",)]) and "--out" in _options(PARSERS[("render",)])
    assert os.path.isdir(deployment["folder"])
