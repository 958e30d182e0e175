"""Every subcommand, fed bad input, answers one line on stderr and an exit code of the AWS CLI's table.

The table below drives each subcommand through bad paths, endpoints, URIs,
numbers and encodings against a deployment in moto (results stored by the
real pipeline); tests/property/test_cli_argv.py does the same with argv that
Hypothesis makes up. Disk full, a closed pipe and Ctrl-C are checked on the
installed console script, in its own process, as an operator meets them.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from autolabel.errors import EXIT_CODES
from local.run import register_stack_outputs
from local.samples import make_image
from local.stack_template import StackFacts
from tests.support.cli import Run, RunCli
from tests.support.harness import ARN, Harness

AUTOLABEL = [sys.executable, "-m", "autolabel"]
PART = "line-1/part-0001.png"


class RefusingService:
    """A service every call of which is refused (AccessDenied), like a role without the permission."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.refused: list[str] = []

    def __getattr__(self, operation: str) -> Any:
        if operation.startswith("_"):  # not an operation (repr, pickling, pretty printers)
            raise AttributeError(operation)

        def refuse(**_: Any) -> Any:
            self.refused.append(operation)
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, operation)

        return refuse


class AnsweringRekognition(RefusingService):
    """DetectCustomLabels answering one label (moto's canned answer is not under our control); the rest refused."""

    def __init__(self) -> None:
        super().__init__("rekognition")
        self.calls = 0

    def detect_custom_labels(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        return {"CustomLabels": [{"Name": "scratch", "Confidence": 99.0}]}


def stack_outputs(harness: Harness) -> dict[str, str]:
    resources = harness.resources
    return {
        "ImageBucketName": resources.bucket,
        "IngestQueueUrl": resources.queue_url,
        "DeadLetterQueueUrl": resources.dead_letter_queue_url,
        "ResultsTableName": resources.table_name,
        "ProjectVersionArn": ARN,
        "EventSourceMappingId": "esm-1",
        "BackfillQueueUrl": resources.backfill_queue_url,
        "BackfillDeadLetterQueueUrl": resources.backfill_dead_letter_queue_url,
    }


@pytest.fixture(scope="module")
def deployed(stack_facts: StackFacts) -> Iterator[Harness]:
    """One deployment for the whole table (its commands change nothing that another row reads): the stack's
    outputs in moto's CloudFormation (as make local SERVE=1 registers them), one labeled image."""
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
            patch.setenv(name, value)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        harness = Harness(stack_facts)
        harness.upload(PART, make_image({"scratch": (0.1, 0.1, 0.3, 0.25)}))
        with contextlib.redirect_stdout(io.StringIO()):  # the handler's logs
            harness.run()
        register_stack_outputs(boto3.client("cloudformation"), stack_outputs(harness))
        yield harness


def clients(harness: Harness, **overrides: Any) -> dict[str, Any]:
    real = {name: boto3.client(name) for name in ("s3", "sqs", "dynamodb", "cloudformation")}
    refused = {name: RefusingService(name) for name in ("rekognition", "lambda", "cloudwatch")}
    return {**real, **refused, **overrides}


def assert_one_line(run: Run) -> None:
    assert run.code in EXIT_CODES, run
    assert "Traceback" not in run.err and "unexpected error" not in run.err, run.err
    complaint = [line for line in run.err.splitlines() if line.startswith("autolabel:")]
    assert len(complaint) == 1, run.err


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(make_image({"scratch": (0.1, 0.1, 0.3, 0.25)}))
    return path


BAD_INPUTS: list[tuple[str, list[str], int, str]] = [
    # endpoints
    ("no scheme", ["--endpoint-url", "127.0.0.1:33455", "show", f"s3://b/{PART}"], 252, "not a valid endpoint URL"),
    ("no host", ["find", "scratch", "--endpoint-url", "http://"], 252, "not a valid endpoint URL"),
    ("bad port", ["find", "scratch", "--endpoint-url", "http://127.0.0.1:99999"], 252, "not a valid endpoint"),
    ("ipv6 unclosed", ["find", "scratch", "--endpoint-url", "http://[::1"], 252, "not a valid endpoint URL"),
    ("stack name", ["find", "scratch", "--stack-name", "\x1f"], 252, "is not a stack name"),
    # S3 URIs
    ("no key", ["show", "s3://bucket"], 252, "expected s3://BUCKET/KEY"),
    ("no scheme uri", ["render", "bucket/key.png", "-o", "{tmp}/x.png"], 252, "expected s3://BUCKET/KEY"),
    ("backfill uri", ["backfill", "https://bucket/prefix"], 252, "expected s3://BUCKET[/PREFIX]"),
    # output paths
    ("no folder", ["render", "s3://{bucket}/" + PART, "-o", "/nonexistent-dir/x.png"], 252, "no folder"),
    ("a folder", ["render", "s3://{bucket}/" + PART, "-o", "{tmp}"], 252, "is a folder"),
    ("render no folder", ["detect", "--image-bytes", "{png}", "--render", "/nonexistent/y.png"], 252, "no folder"),
    ("disk full", ["detect", "--image-bytes", "fileb://{png}", "--render", "/dev/full"], 255, "No space left"),
    # input files
    ("missing image", ["detect", "--image-bytes", "fileb:///nonexistent/p.png"], 252, "cannot read"),
    ("not an image", ["detect", "--image-bytes", "{tmp}/notes.txt"], 252, "not a PNG or JPEG"),
    ("bad json", ["detect", "--cli-input-json", "{"], 252, "invalid JSON"),
    ("bad shorthand", ["detect", "--image", "S3Object={Bucket="], 252, "--image"),
    ("missing json file", ["detect", "--cli-input-json", "file:///nonexistent.json"], 252, "cannot read"),
    # numbers
    ("confidence nan", ["find", "scratch", "--min-confidence", "nan"], 252, "between 0 and 100"),
    ("confidence word", ["find", "scratch", "--min-confidence", "high"], 252, "invalid float value"),
    ("limit zero", ["find", "scratch", "--limit", "0"], 252, ">= 1"),
    ("detect confidence", ["detect", "--image-bytes", "{png}", "--min-confidence", "101"], 252, "<= 100"),
    ("units zero", ["model", "start", "--min-units", "0"], 252, "--min-units"),
    ("rate nan", ["backfill", "s3://{bucket}/", "--images-per-second", "nan"], 252, "--images-per-second"),
    ("rate inf", ["backfill", "s3://{bucket}/", "--images-per-second", "inf"], 252, "--images-per-second"),
    ("per second", ["dlq", "redrive", "--max-per-second", "0"], 252, "--max-per-second"),
    ("copy limit", ["dlq", "redrive", "--by-copy", "--limit", "-1"], 252, "--limit"),
    ("since", ["backfill", "s3://{bucket}/", "--since", "yesterday"], 252, "--since"),
    # encodings
    ("not utf-8", ["show", "s3://b/\udcff.png"], 252, "not valid UTF-8"),
    ("bad query", ["find", "scratch", "--query", "[?"], 252, "invalid --query"),
    # services that refuse
    ("refused", ["model", "status"], 254, "AccessDeniedException"),
]


@pytest.mark.parametrize("row", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_is_one_line_and_its_exit_code(
    cli: RunCli, deployed: Harness, tmp_path: Path, png: Path, row: tuple[str, list[str], int, str]
) -> None:
    _, argv, code, complaint = row
    (tmp_path / "notes.txt").write_text("not an image")
    places = {"{tmp}": str(tmp_path), "{png}": str(png), "{bucket}": deployed.resources.bucket}
    filled = [next((a.replace(k, v) for k, v in places.items() if k in a), a) for a in argv]
    rekognition = AnsweringRekognition()
    run = cli(*filled, clients=clients(deployed, rekognition=rekognition))
    assert_one_line(run)
    assert run.code == code and complaint in run.err, run
    if "--render" in argv and code == 252:
        assert rekognition.calls == 0  # a path it cannot write is refused before the (billed) call


def test_an_endpoint_without_a_scheme_in_the_environment_is_configuration(
    cli: RunCli, deployed: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:4566")
    run = cli("find", "scratch")
    assert_one_line(run)
    assert run.code == 253 and "Invalid endpoint: localhost:4566" in run.err and "http://" in run.err


def test_the_detect_result_is_printed_before_a_render_that_cannot_be_written(
    cli: RunCli, deployed: Harness, png: Path
) -> None:
    run = cli("detect", "--image-bytes", str(png), "--render", "/dev/full", clients=clients(deployed))
    assert run.code == 254  # refused: nothing printed, nothing written
    run = cli(
        "detect", "--image-bytes", str(png), "--render", "/dev/full", "--output", "json",
        clients=clients(deployed, rekognition=AnsweringRekognition()),
    )  # fmt: skip
    assert run.code == 255 and '"Name": "scratch"' in run.out
    assert run.err == "autolabel: cannot write /dev/full: No space left on device\n"


# -- in its own process: the console script as the shell runs it -------------------------------------


@pytest.mark.parametrize("argv", [["detect", "--generate-cli-skeleton"], ["--help"]])
def test_a_full_disk_on_stdout_is_one_line(argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run([*AUTOLABEL, *argv], check=False, stdout=full, stderr=subprocess.PIPE, text=True)
    assert (done.returncode, done.stderr) == (255, "autolabel: cannot write the output: No space left on device\n")


def test_a_closed_pipe_ends_quietly() -> None:
    """`autolabel ... | head`: the reader went away; no traceback, no 'Exception ignored', exit 0."""
    process = subprocess.Popen(
        [*AUTOLABEL, "detect", "--generate-cli-skeleton", "output"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the interpreter has even started: its first write meets a closed pipe
    code = process.wait(timeout=60)
    assert (code, process.stderr.read()) == (0, "")


# `python -m autolabel` with Ctrl-C as from a terminal: a suite started as a background job of a
# non-interactive shell ignores SIGINT, a child inherits that, and Python then installs no handler.
AUTOLABEL_WITH_CTRL_C = [
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('autolabel', run_name='__main__', alter_sys=True)",
]


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_ctrl_c_is_130_and_one_line() -> None:
    """Interrupted while waiting on an endpoint that never answers: 130, as the AWS CLI (128 + SIGINT)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        connected = threading.Event()
        accepted: list[socket.socket] = []

        def accept() -> None:
            accepted.append(server.accept()[0])
            connected.set()

        threading.Thread(target=accept, daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
        process = subprocess.Popen(
            [*AUTOLABEL_WITH_CTRL_C, "find", "scratch", "--endpoint-url", endpoint],
            env={**os.environ, "AUTOLABEL_TABLE": "t", "AWS_MAX_ATTEMPTS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert connected.wait(timeout=60), "the command never called the endpoint"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        for connection in accepted:
            connection.close()
    assert (process.returncode, out, err) == (130, "", "autolabel: interrupted\n")
