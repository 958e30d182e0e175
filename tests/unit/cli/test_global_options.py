"""Global options, stack outputs, help on every level, and configuration failures as one line + exit code."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from autolabel.cli import build_parser
from local.run import register_stack_outputs
from tests.support.cli import RunCli

OUTPUTS = {
    "ResultsTableName": "results-from-stack",
    "ProjectVersionArn": "arn:aws:rekognition:us-east-1:123456789012:project/p/version/p.1/1700000000000",
    "IngestQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/ingest",
    "DeadLetterQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "EventSourceMappingId": "esm",
}


@pytest.fixture
def stack() -> Iterator[None]:
    with mock_aws():
        register_stack_outputs(boto3.client("cloudformation"), OUTPUTS, "Labels")  # as make local SERVE=1 does
        yield


def _commands() -> list[list[str]]:
    paths: list[list[str]] = [[]]

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    paths.append([*prefix, name])
                    walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return paths


def test_every_level_has_help(cli: RunCli) -> None:
    commands = _commands()
    assert ["model", "status"] in commands and ["dlq", "redrive"] in commands and ["detect"] in commands
    for path in commands:
        run = cli(*path, "--help")
        assert run.code == 0, path
        assert run.out.startswith(f"usage: autolabel {' '.join(path)}".rstrip()), path


def test_a_missing_subcommand_is_a_usage_error(cli: RunCli) -> None:
    run = cli("model")
    assert run.code == 252 and "the following arguments are required: ACTION" in run.err


def test_outputs_come_from_the_named_stack_and_globals_go_anywhere(cli: RunCli, stack: None) -> None:
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="results-from-stack",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    run = cli("show", "s3://photos/a.png", "--stack-name", "Labels", "--region", "us-east-1")
    assert (run.code, run.err) == (1, "autolabel: no result for s3://photos/a.png\n")
    run = cli("--stack-name", "Labels", "show", "s3://photos/a.png")
    assert run.code == 1


def test_a_missing_stack_is_a_configuration_error(cli: RunCli, stack: None) -> None:
    run = cli("find", "scratch", "--stack-name", "Nope")
    assert run.code == 253
    assert run.err.startswith("autolabel: stack 'Nope' not found in us-east-1: deploy it") and run.err.count("\n") == 1


def test_variables_override_outputs_and_a_missing_output_names_its_variable(
    cli: RunCli, stack: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_stack_outputs(boto3.client("cloudformation"), {"ResultsTableName": "t"}, "Partial")
    monkeypatch.setenv("AUTOLABEL_STACK_NAME", "Partial")
    monkeypatch.setenv("AUTOLABEL_DLQ_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/dlq")
    run = cli("dlq", "redrive")
    assert (run.code, run.err) == (
        253,
        "autolabel: stack 'Partial' has no IngestQueueUrl output (and AUTOLABEL_QUEUE_URL is not set)\n",
    )
    run = cli("dlq", "redrive", "--stack-name", "Partial")  # given on the command line: variables are ignored
    assert (run.code, run.err) == (253, "autolabel: stack 'Partial' has no IngestQueueUrl output\n")
    monkeypatch.setenv("AUTOLABEL_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/ingest")
    run = cli("dlq", "redrive", "--by-copy")  # both from the environment; the queues do not exist here
    assert run.code == 254 and "NonExistentQueue" in run.err


def test_no_region(cli: RunCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AUTOLABEL_TABLE", "t")
    run = cli("find", "scratch")
    assert (run.code, run.err) == (
        253,
        "autolabel: no AWS region: pass --region, set AWS_REGION, or set a region in your profile\n",
    )


def test_no_credentials(cli: RunCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AUTOLABEL_TABLE", "t")
    run = cli("find", "scratch")
    assert run.code == 253 and run.err.startswith("autolabel: no AWS credentials") and run.err.count("\n") == 1


def test_unknown_profile(cli: RunCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AUTOLABEL_TABLE", "t")
    run = cli("find", "scratch", "--profile", "ghost")
    assert run.code == 253 and "ghost" in run.err and "Traceback" not in run.err


def test_an_unreachable_endpoint(cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    class Unreachable:
        def query(self, **_: object) -> None:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    monkeypatch.setenv("AUTOLABEL_TABLE", "t")
    run = cli("find", "scratch", clients={"dynamodb": Unreachable()})
    assert run.code == 255
    assert run.err.startswith(
        'autolabel: cannot reach AWS: Could not connect to the endpoint URL: "http://127.0.0.1:9"'
    )


def test_the_served_emulator_environment() -> None:
    from local.run import serve_environment

    env = serve_environment("http://127.0.0.1:4566")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AUTOLABEL_STACK_NAME"] == "Autolabel"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env.keys()


def test_variables_alone_configure_an_emulator_without_the_stack(
    cli: RunCli, stack: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOLABEL_STACK_NAME", "Absent")
    monkeypatch.setenv("AUTOLABEL_DLQ_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/dlq")
    run = cli("dlq", "redrive")
    assert (run.code, run.err) == (
        253,
        "autolabel: AUTOLABEL_QUEUE_URL is not set, and there is no stack 'Absent' to read it from\n",
    )


def test_aws_region_wins_over_aws_default_region_and_the_profile(
    cli: RunCli, stack: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The AWS CLI v2's order: --region, AWS_REGION, AWS_DEFAULT_REGION, the profile's region."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    run = cli("find", "scratch", "--stack-name", "Labels")  # the stack is in us-east-1
    assert run.code == 253 and "not found in eu-west-1" in run.err
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert "not found in eu-west-1" in cli("find", "scratch", "--stack-name", "Labels").err
    run = cli("find", "scratch", "--stack-name", "Labels", "--region", "sa-east-1")
    assert "not found in sa-east-1" in run.err


def test_aws_region_alone_is_enough(cli: RunCli, stack: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    run = cli("dlq", "redrive", "--by-copy", "--stack-name", "Labels")  # the stack's queues do not exist
    assert run.code == 254 and "NonExistentQueue" in run.err


def test_help_names_each_commands_default_output(cli: RunCli) -> None:
    parser_of = {" ".join(path): path for path in _commands() if path}
    defaults = {"detect": "json", "show": "table", "find": "table", "render": "table", "dlq redrive": "table"}
    defaults |= {"model status": "table", "model start": "text", "model stop": "text", "backfill": "table"}
    for command, default in defaults.items():
        out = " ".join(cli(*parser_of[command], "--help").out.split())
        assert f"Default output: {default} (--output json|table|text)." in out, command
