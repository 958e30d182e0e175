"""The ``autolabel`` command line (console script; also ``python -m autolabel``).

Exit codes are the AWS CLI's: 0 success, 1 nothing found, 252 invalid
parameters, 253 configuration or credentials (region, profile, stack,
endpoint), 254 the service returned an error, 255 anything else (endpoint
unreachable, disk full), 130 interrupted (Ctrl-C). Every failure is one line
on stderr, never a traceback. A reader that stops reading (``| head``) ends
the command quietly with 0: it got what it asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from autolabel import backfill as backfill_module
from autolabel import backfill_job, operations
from autolabel import detect as detect_module
from autolabel.config import OUTPUT_ENVIRONMENT, AwsContext
from autolabel.errors import (
    EXIT_BAD_PARAMETERS,
    EXIT_CONFIGURATION,
    EXIT_INTERRUPTED,
    EXIT_OTHER,
    CliError,
    Interrupted,
    NotFound,
    ParameterError,
    ServiceError,
)
from autolabel.output import OUTPUT_FORMATS, check_output_path, format_cell, grid, write_file, write_stdout
from autolabel.output import render as render_output
from autolabel.queries import find_by_label, get_result
from autolabel.render import draw_labels, format_for

PROG = "autolabel"
# StartMessageMoveTask's MaxNumberOfMessagesPerSecond: "The maximum number of messages per second is 500".
MAX_MOVE_PER_SECOND = 500
EPILOG = (
    "Exit codes: 0 ok, 1 nothing found, 252 invalid parameters, 253 configuration/credentials, "
    "254 service error, 255 other, 130 interrupted. Names come from the stack's outputs (--stack-name), or from "
    + ", ".join(sorted(OUTPUT_ENVIRONMENT.values()))
    + " for an emulator without CloudFormation."
)


class _UsageError(Exception):
    def __init__(self, usage: str, message: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.message = message


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(self.format_usage(), message)


def _global_options() -> argparse.ArgumentParser:
    """Accepted before or after the subcommand, like the AWS CLI's global options."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("global options")
    group.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: your profile's / AWS_REGION)")
    group.add_argument("--profile", default=argparse.SUPPRESS, help="named profile from your AWS config")
    group.add_argument(
        "--endpoint-url", default=argparse.SUPPRESS, help="send every request here (e.g. the local emulator)"
    )
    group.add_argument(
        "--stack-name",
        default=argparse.SUPPRESS,
        help="the deployed stack whose outputs name the table, queues and model (default: $AUTOLABEL_STACK_NAME "
        "or Autolabel; given here, AUTOLABEL_* variables are ignored)",
    )
    group.add_argument(
        "--deployment",
        default=argparse.SUPPRESS,
        help="an AutolabelPipeline in any stack: its names come from the SSM parameter "
        "/autolabel/deployments/NAME instead of stack outputs (AUTOLABEL_* variables are ignored)",
    )
    group.add_argument("--output", choices=OUTPUT_FORMATS, default=argparse.SUPPRESS, help="output format")
    group.add_argument("--query", default=argparse.SUPPRESS, help="JMESPath query applied to the output")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = _build_commands()
    _say_default_outputs(parser)
    return parser


def _model_commands(model: argparse.ArgumentParser, add: Callable[..., argparse.ArgumentParser]) -> None:
    actions = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = add(actions, "status", "model status, labeler trigger, queue and DLQ depth (every model)")
    status.set_defaults(handler=_model_status, default_output="table")
    start = add(actions, "start", "start the model (billed per inference-unit hour while it runs)")
    start.add_argument("--min-units", type=int, default=1, help="inference units to start with (default 1)")
    start.add_argument("--max-units", type=int, default=None, help="let Rekognition scale up to this many")
    start.set_defaults(handler=_model_start, default_output="text")
    stop = add(actions, "stop", "pause the labeler's trigger, then stop the model")
    stop.set_defaults(handler=_model_stop, default_output="text")
    for action in (status, start, stop):
        action.add_argument(
            "--model", metavar="ARN", help="this model version (several models: required by start and stop)"
        )


def _build_commands() -> argparse.ArgumentParser:
    common = _global_options()
    parser = _Parser(
        prog=PROG,
        description="The operator command line of an autolabel deployment: label one image, show, find and "
        "render stored results, run the model, redrive the DLQ.",
        epilog=EPILOG,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(sub: Any, name: str, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=description or help_text, parents=[common], epilog=EPILOG
        )
        return command

    detect = add(
        commands,
        "detect",
        "call DetectCustomLabels on one image",
        'Call Rekognition DetectCustomLabels on one image and print {"CustomLabels": [...]} as the API returns '
        "it. Options given override --cli-input-json.",
    )
    detect.add_argument("--project-version-arn", help="model version (default: the stack's ProjectVersionArn)")
    detect.add_argument(
        "--image",
        help='S3 image, JSON or shorthand: \'{"S3Object": {"Bucket": "b", "Name": "k"}}\' or '
        "S3Object={Bucket=b,Name=k,Version=v}",
    )
    detect.add_argument(
        "--image-bytes", help="local PNG/JPEG sent as bytes, at most 4 MB: fileb://photo.jpg (or a path)"
    )
    detect.add_argument("--min-confidence", help="0-100; 0 returns every label (default: the model's thresholds)")
    detect.add_argument("--max-results", help="at most this many labels")
    detect.add_argument("--cli-input-json", help="the request as JSON, inline or file://request.json")
    detect.add_argument(
        "--generate-cli-skeleton",
        nargs="?",
        const="input",
        choices=("input", "output"),
        help="print a request (input) or response (output) skeleton from the API model and exit",
    )
    detect.add_argument(
        "--render",
        metavar="OUT.png",
        help="also draw the labels' boxes on the image into this file (.png, or .jpg/.jpeg for JPEG)",
    )
    detect.set_defaults(handler=_detect, default_output="json")

    show = add(commands, "show", "print the stored result of an object")
    show.add_argument("uri", metavar="s3://BUCKET/KEY")
    show.add_argument("--model", metavar="ARN", help="the result of this model version (default: the latest)")
    show.set_defaults(handler=_show, default_output="table")

    find = add(commands, "find", "list objects carrying a label, most confident first")
    find.add_argument("label")
    find.add_argument("--min-confidence", type=float, default=0.0, help="0-100 (default 0)")
    find.add_argument("--limit", type=int, default=None, help="the N most confident")
    find.add_argument("--model", metavar="ARN", help="only the results of this model version (default: every model)")
    find.set_defaults(handler=_find, default_output="table")

    render = add(commands, "render", "draw an object's stored labels on its image")
    render.add_argument("uri", metavar="s3://BUCKET/KEY")
    render.add_argument(
        "-o", "--out", required=True, metavar="OUT.png", help="where to write the drawing: .png, or .jpg/.jpeg for JPEG"
    )
    render.add_argument("--model", metavar="ARN", help="the result of this model version (default: the latest)")
    render.set_defaults(handler=_render, default_output="table")

    _model_commands(add(commands, "model", "the Custom Labels model version: status, start, stop"), add)

    dlq = add(commands, "dlq", "the dead-letter queue")
    dlq_actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    redrive = add(
        dlq_actions,
        "redrive",
        "move dead letters back to the ingest queue",
        "Move the DLQ's messages back to the ingest queue with SQS's own message move task "
        "(StartMessageMoveTask), showing its progress until it ends.",
    )
    redrive.add_argument("--max-per-second", type=int, default=None, help="move at most this many messages/s")
    redrive.add_argument("--no-wait", action="store_true", help="start the task and return")
    redrive.add_argument("--cancel", action="store_true", help="cancel the running redrive")
    redrive.add_argument(
        "--by-copy",
        action="store_true",
        help="receive/send/delete instead of a move task (for emulators without message move tasks)",
    )
    redrive.add_argument("--limit", type=int, default=None, help="with --by-copy: move at most this many")
    redrive.add_argument("--poll-seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    redrive.set_defaults(handler=_dlq_redrive, default_output="table")  # its prose line; json/text on request

    backfill = add(
        commands,
        "backfill",
        "label the objects already in a bucket, through the backfill queue",
        "List s3://BUCKET[/PREFIX] and send one message per object to the backfill queue, skipping objects that "
        "already have a result for the stack's model version; paced to the model, resumable from a local "
        "checkpoint (run the same command again). `autolabel backfill status [s3://BUCKET[/PREFIX]]` shows how "
        "far a backfill is.",
    )
    _backfill_options(backfill)
    return parser


def _say_default_outputs(parser: argparse.ArgumentParser) -> None:
    """Each command's --help names the output format it prints unless --output says otherwise."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                default = command.get_default("default_output")
                if default is not None:
                    command.epilog = f"Default output: {default} (--output json|table|text). {command.epilog}"
                _say_default_outputs(command)


def _backfill_options(backfill: argparse.ArgumentParser) -> None:
    backfill.add_argument("target", metavar="s3://BUCKET[/PREFIX] | status | cancel")
    backfill.add_argument("status_target", nargs="?", metavar="s3://BUCKET[/PREFIX] | JOB", help=argparse.SUPPRESS)
    backfill.add_argument("--since", help="only objects last modified at or after this (ISO-8601, UTC)")
    backfill.add_argument("--until", help="only objects last modified before this (ISO-8601, UTC)")
    backfill.add_argument(
        "--suffix",
        action="append",
        help="only keys ending so (case-insensitive; repeat or comma-separate; default .jpg,.jpeg,.png)",
    )
    backfill.add_argument("--min-size", help="only objects of at least this size (bytes; 500k, 5M, 1Gi)")
    backfill.add_argument("--max-size", help="only objects of at most this size (bytes; 500k, 5M, 1Gi)")
    backfill.add_argument(
        "--force", action="store_true", help="relabel objects that have a result (a new resultId and event each)"
    )
    backfill.add_argument(
        "--dry-run", action="store_true", help="count by extension, already labeled, model-hours and cost; send nothing"
    )
    backfill.add_argument("--restart", action="store_true", help="ignore the checkpoint and list from the start")
    backfill.add_argument("--checkpoint", metavar="PATH", help="checkpoint file (default .autolabel/backfill/...)")
    backfill.add_argument(
        "--images-per-second",
        type=float,
        default=None,
        help="the model's throughput for pacing and estimates (default: the labeler's best hour of the last week, "
        f"else {backfill_module.ASSUMED_IMAGES_PER_SECOND_PER_UNIT:g} per inference unit)",
    )
    backfill.add_argument(
        "--inference-units", type=int, default=1, help="inference units the model runs with (default 1)"
    )
    backfill.add_argument("--wait", action="store_true", help="after enqueuing, follow the labeling until done")
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    _in_aws_options(backfill)
    backfill.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)  # demo: an interruption
    backfill.add_argument("--poll-seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    backfill.set_defaults(handler=_backfill, default_output="table")


def _in_aws_options(backfill: argparse.ArgumentParser) -> None:
    group = backfill.add_argument_group("in AWS (docs/backfill.md)")
    group.add_argument("--in-aws", action="store_true", help="run the backfill as a job in the account and return")
    group.add_argument("--stale", action="store_true", help="with --in-aws: relabel what another model version labeled")
    group.add_argument("--resume", metavar="JOB", help="with --in-aws: a new job continuing a cancelled one's run")
    group.add_argument("--objects", type=int, default=None, help="with --in-aws: objects to estimate for (no listing)")
    group.add_argument(
        "--confirm-above",
        type=float,
        default=backfill_job.DEFAULT_CONFIRM_ABOVE_USD,
        metavar="USD",
        help=f"ask before starting a job estimated above this (default {backfill_job.DEFAULT_CONFIRM_ABOVE_USD:g})",
    )
    group.add_argument("--yes", action="store_true", help="start without asking")


def _version() -> str:
    try:
        return metadata.version("autolabel")
    except metadata.PackageNotFoundError:
        return "(not installed)"


# --- helpers ---------------------------------------------------------------------------------------


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc or len(parts.path) < 2:
        raise ParameterError(f"expected s3://BUCKET/KEY, got {uri!r}")
    return parts.netloc, uri[len("s3://") + len(parts.netloc) + 1 :]


def _output(args: argparse.Namespace) -> str:
    return str(getattr(args, "output", None) or args.default_output)


def _emit(args: argparse.Namespace, data: Any, human: Callable[[Any], str] | None = None) -> None:
    text = render_output(data, _output(args), getattr(args, "query", None), human=human)
    if text:
        write_stdout(text)


def _labels_grid(labels: list[dict[str, Any]]) -> str:
    rows = []
    for label in labels:
        box = (label.get("Geometry") or {}).get("BoundingBox") or {}
        rows.append(
            [
                label.get("Name"),
                f"{float(label.get('Confidence', 0)):.1f}",
                *(f"{float(box[k]):.3f}" if k in box else "" for k in ("Left", "Top", "Width", "Height")),
            ]
        )
    return grid(rows, ["label", "confidence", "left", "top", "width", "height"]) if rows else "(no labels)"


def _result_table(result: dict[str, Any]) -> str:
    head = [
        ["object", f"s3://{result['bucket']}/{result['key']}"],
        ["versionId", result.get("versionId", "")],
        ["model", result.get("projectVersionArn", "")],
        ["status", result.get("status", "")],
        ["processedAt", result.get("processedAt", "")],
    ]
    if "deletedAt" in result:
        head.append(["deletedAt", result["deletedAt"]])
    if "error" in result:
        head.append(["error", f"{result['error'].get('code')}: {result['error'].get('message')}"])
    head.append(["labels", result.get("labelCount", len(result.get("customLabels", [])))])
    width = max(len(str(row[0])) for row in head)
    lines = [f"{row[0]:<{width}}  {format_cell(row[1])}" for row in head]
    if result.get("customLabels"):
        lines += ["", _labels_grid(result["customLabels"])]
    return "\n".join(lines)


def _stack_outputs(ctx: AwsContext) -> operations.StackOutputs:
    return operations.StackOutputs.from_outputs(ctx.output, ctx.optional_output)


def _models(ctx: AwsContext, args: argparse.Namespace, *, one: bool) -> list[operations.StackOutputs]:
    """The deployment's models (its ModelRoutes, or the one model) that ``--model`` picks."""
    every = operations.model_outputs(_stack_outputs(ctx), ctx.optional_output("ModelRoutes"))
    return operations.select_models(every, getattr(args, "model", None), one=one)


def _stored_result(ctx: AwsContext, uri: str, model: str | None) -> dict[str, Any]:
    bucket, key = parse_s3_uri(uri)
    result = get_result(ctx.output("ResultsTableName"), bucket, key, model, client=ctx.client("dynamodb"))
    if result is None:
        raise NotFound(f"no result for {uri}" + (f" with model {model}" if model else ""))
    return result


def _object_bytes(ctx: AwsContext, bucket: str, key: str, version: str | None) -> bytes:
    request = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
    try:
        return bytes(ctx.client("s3").get_object(**request)["Body"].read())
    except ClientError as error:
        details = error.response.get("Error", {})
        raise ServiceError(
            f"cannot read s3://{bucket}/{key}: {details.get('Code')}: {details.get('Message')}"
        ) from None


# --- commands ----------------------------------------------------------------------------------------


def _detect(ctx: AwsContext, args: argparse.Namespace) -> int:
    if args.generate_cli_skeleton:
        write_stdout(json.dumps(detect_module.skeleton(args.generate_cli_skeleton), indent=4))
        return 0
    render_to = check_output_path(args.render, "--render") if args.render else None
    render_format = format_for(args.render, "--render") if args.render else "PNG"
    request = detect_module.build_request(
        cli_input_json=args.cli_input_json,
        project_version_arn=args.project_version_arn,
        image=args.image,
        image_bytes=args.image_bytes,
        min_confidence=args.min_confidence,
        max_results=args.max_results,
        default_project_version_arn=lambda: ctx.output("ProjectVersionArn"),
    )
    try:
        response = ctx.client("rekognition").detect_custom_labels(**request)
    except ClientError as error:
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "Unknown")
        raise ServiceError(detect_module.error_line(code, str(details.get("Message") or error))) from None
    body = detect_module.response_body(response)
    _emit(args, body, human=lambda data: _labels_grid(data.get("CustomLabels", [])))
    if render_to is not None:
        image = request["Image"]
        if "Bytes" in image:
            data = image["Bytes"]
        else:
            s3_object = image["S3Object"]
            data = _object_bytes(ctx, s3_object["Bucket"], s3_object["Name"], s3_object.get("Version"))
        write_file(render_to, draw_labels(data, body.get("CustomLabels", []), image_format=render_format))
        print(f"wrote {args.render}", file=sys.stderr)
    return 0


def _show(ctx: AwsContext, args: argparse.Namespace) -> int:
    _emit(args, _stored_result(ctx, args.uri, args.model), human=_result_table)
    return 0


def _find(ctx: AwsContext, args: argparse.Namespace) -> int:
    if not 0 <= args.min_confidence <= 100:
        raise ParameterError(f"--min-confidence must be between 0 and 100, got {args.min_confidence}")
    if args.limit is not None and args.limit < 1:
        raise ParameterError(f"--limit must be >= 1, got {args.limit}")
    found = find_by_label(
        ctx.output("ResultsTableName"),
        args.label,
        args.min_confidence,
        limit=None if args.model else args.limit,  # with --model: the N most confident of that model
        client=ctx.client("dynamodb"),
    )
    if args.model:
        found = [entry for entry in found if entry["projectVersionArn"] == args.model][: args.limit]

    def human(entries: list[dict[str, Any]]) -> str:
        if not entries:
            return f"no object carries {args.label!r} at confidence >= {args.min_confidence:g}"
        return grid(
            [
                [
                    f"{e['confidence']:.1f}",
                    f"s3://{e['bucket']}/{e['key']}",
                    e.get("versionId", ""),
                    e["projectVersionArn"],
                ]
                for e in entries
            ],
            ["confidence", "object", "versionId", "model"],
        )

    _emit(args, found, human=human)
    return 0


def _render(ctx: AwsContext, args: argparse.Namespace) -> int:
    out = check_output_path(args.out, "-o/--out")
    image_format = format_for(args.out, "-o/--out")
    result = _stored_result(ctx, args.uri, args.model)
    if result.get("status") != "LABELED":
        reason = result.get("error", {}).get("code") or result.get("status")
        raise NotFound(f"{args.uri} has no labels to draw: its result is {result.get('status')} ({reason})")
    data = _object_bytes(ctx, result["bucket"], result["key"], result.get("versionId"))
    write_file(out, draw_labels(data, result.get("customLabels", []), image_format=image_format))
    _emit(
        args,
        {"out": args.out, "labels": len(result.get("customLabels", []))},
        human=lambda d: f"wrote {d['out']} ({d['labels']} label(s) drawn)",
    )
    return 0


MODEL_OUTPUTS = ("ProjectVersionArn", "IngestQueueUrl", "DeadLetterQueueUrl", "EventSourceMappingId")
NO_MODEL_LIFECYCLE = (
    "has no Custom Labels model lifecycle (its model is emulated and always runs): "
    "`model status|start|stop` need a deployed stack"
)


def _model_status(ctx: AwsContext, args: argparse.Namespace) -> int:
    ctx.refuse_in_emulator(NO_MODEL_LIFECYCLE, MODEL_OUTPUTS)
    models = _models(ctx, args, one=False)
    statuses = [
        operations.model_status(
            outputs, rekognition=ctx.client("rekognition"), sqs=ctx.client("sqs"), lambda_client=ctx.client("lambda")
        )
        for outputs in models
    ]
    if models[0].prefix is None:  # one model: one status, as before
        _emit(args, statuses[0], human=lambda data: grid([[k, v] for k, v in data.items()], ["", ""]).split("\n", 2)[2])
        return 0
    columns = list(statuses[0])
    _emit(args, statuses, human=lambda rows: grid([[row[c] for c in columns] for row in rows], columns))
    return 0


def _model_start(ctx: AwsContext, args: argparse.Namespace) -> int:
    ctx.refuse_in_emulator(NO_MODEL_LIFECYCLE, MODEL_OUTPUTS)
    [outputs] = _models(ctx, args, one=True)
    write_stdout(
        operations.model_start(
            outputs,
            rekognition=ctx.client("rekognition"),
            min_units=args.min_units,
            max_units=args.max_units,
        )
    )
    return 0


def _model_stop(ctx: AwsContext, args: argparse.Namespace) -> int:
    ctx.refuse_in_emulator(NO_MODEL_LIFECYCLE, MODEL_OUTPUTS)
    [outputs] = _models(ctx, args, one=True)
    write_stdout(
        operations.model_stop(outputs, rekognition=ctx.client("rekognition"), lambda_client=ctx.client("lambda"))
    )
    return 0


def _dlq_outputs(ctx: AwsContext) -> operations.StackOutputs:
    return operations.StackOutputs(
        project_version_arn="",
        project_arn=None,
        queue_url=ctx.output("IngestQueueUrl"),
        dead_letter_queue_url=ctx.output("DeadLetterQueueUrl"),
        event_source_mapping_id="",
        model_manager=False,
    )


def _dlq_redrive(ctx: AwsContext, args: argparse.Namespace) -> int:
    if args.limit is not None and not args.by_copy:
        raise ParameterError("--limit works only with --by-copy (a message move task moves the whole DLQ)")
    if args.limit is not None and args.limit < 1:
        raise ParameterError(f"--limit must be >= 1, got {args.limit}")
    if args.max_per_second is not None and not 1 <= args.max_per_second <= MAX_MOVE_PER_SECOND:
        raise ParameterError(f"--max-per-second must be between 1 and {MAX_MOVE_PER_SECOND}, got {args.max_per_second}")
    outputs, sqs = _dlq_outputs(ctx), ctx.client("sqs")
    if not args.by_copy:
        ctx.refuse_in_emulator(
            "has no SQS message move tasks: use `autolabel dlq redrive --by-copy`",
            ("IngestQueueUrl", "DeadLetterQueueUrl"),
        )
    if args.cancel:
        write_stdout(operations.cancel_redrive(outputs, sqs=sqs))
        return 0
    if args.by_copy:
        moved = operations.redrive_by_copy(outputs, sqs=sqs, limit=args.limit)
        _emit(args, {"moved": moved}, human=lambda d: f"moved {d['moved']} message(s) back")
        return 0
    try:
        task = operations.redrive(
            outputs,
            sqs=sqs,
            max_per_second=args.max_per_second,
            wait=not args.no_wait,
            progress=lambda line: print(line, file=sys.stderr),
            poll_seconds=args.poll_seconds,
        )
    except ClientError as error:
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (404, 500, 501) and "MessageMove" in str(error.operation_name):
            raise ServiceError(
                f"this endpoint does not implement {error.operation_name} (HTTP {status}): use --by-copy"
            ) from None
        raise ServiceError(f"{details.get('Code')}: {details.get('Message')}") from None
    if args.no_wait:
        _emit(
            args,
            task,
            human=lambda t: (
                f"redrive started (task {t['TaskHandle']}); follow it with `autolabel dlq redrive "
                "--no-wait` again or in the SQS console"
            ),
        )
    else:
        _emit(args, task, human=operations.progress_line)
    return 0


def _backfill_filters(args: argparse.Namespace, uri: str) -> tuple[str, backfill_module.Filters]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ParameterError(f"expected s3://BUCKET[/PREFIX], got {uri!r}")
    since = backfill_module.parse_time(args.since, "--since") if args.since else None
    until = backfill_module.parse_time(args.until, "--until") if args.until else None
    if since and until and since >= until:
        raise ParameterError("--since must be before --until")
    prefix = uri[len("s3://") + len(parts.netloc) :].lstrip("/")
    min_size = backfill_module.parse_size(args.min_size, "--min-size")
    max_size = backfill_module.parse_size(args.max_size, "--max-size")
    if min_size is not None and max_size is not None and min_size > max_size:
        raise ParameterError("--min-size must not be larger than --max-size")
    suffixes = backfill_module.parse_suffixes(args.suffix)
    return parts.netloc, backfill_module.Filters(prefix, since, until, suffixes, min_size, max_size)


def _backfill(ctx: AwsContext, args: argparse.Namespace) -> int:
    job_id = args.status_target is not None and not args.status_target.startswith("s3://")
    if args.target in ("status", "cancel") and job_id:
        return (backfill_job.show_status if args.target == "status" else backfill_job.cancel)(ctx, args, _emit)
    if args.target == "cancel":
        raise ParameterError("usage: autolabel backfill cancel JOB")
    if args.target == "status":
        return _backfill_status(ctx, args)
    if args.in_aws:
        return backfill_job.start(ctx, args, _backfill_filters, _emit)
    if args.stale or args.resume:
        raise ParameterError("--stale and --resume are for a job in AWS: add --in-aws")
    if args.status_target is not None:
        raise ParameterError(f"unexpected argument {args.status_target!r}")
    rate = args.images_per_second
    if args.inference_units < 1 or (rate is not None and not (math.isfinite(rate) and rate > 0)):
        raise ParameterError("--inference-units must be >= 1 and --images-per-second a number > 0")
    bucket, filters = _backfill_filters(args, args.target)
    sqs = ctx.client("sqs")
    queue_url = "" if args.dry_run else ctx.output("BackfillQueueUrl")
    clock = datetime.now
    measured = (
        None
        if args.images_per_second is not None
        else backfill_module.measured_images_per_second(ctx.client("cloudwatch"), clock(UTC))
    )
    retention = backfill_module.queue_retention_seconds(sqs, queue_url) if queue_url else 14 * 24 * 3600
    pace = backfill_module.decide_pace(
        given=args.images_per_second,
        measured=measured,
        inference_units=args.inference_units,
        retention_seconds=retention,
    )
    view = backfill_module.ProgressView(not (args.no_progress or args.dry_run), stream=sys.stderr)
    run = backfill_module.BackfillRun(
        s3=ctx.client("s3"),
        sqs=sqs,
        dynamodb=ctx.client("dynamodb"),
        table_name=ctx.output("ResultsTableName"),
        queue_url=queue_url,
        model=ctx.output("ProjectVersionArn"),
        bucket=bucket,
        filters=filters,
        force=args.force,
        checkpoint_file=Path(args.checkpoint) if args.checkpoint else None,
        restart=args.restart,
        pace=pace,
        view=view,
        stop_after=args.stop_after,
        pace_poll_seconds=max(args.poll_seconds, 0.0),
    )
    try:
        checkpoint = run.run(dry_run=args.dry_run)
        if args.wait and not args.dry_run:
            run.follow(checkpoint, poll_seconds=args.poll_seconds)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; the checkpoint {run.path} keeps the place: run the same command to resume"
        ) from None
    finally:
        view.close()  # ends the bar's line: a failure's one line starts on its own
    if args.dry_run:
        summary = backfill_module.estimate(checkpoint.progress, pace, args.inference_units)
        _emit(args, summary, human=_dry_run_text)
        return 0
    progress = checkpoint.progress
    summary = {
        "checkpoint": str(run.path),
        "run": checkpoint.run_id,
        "listed": progress.listed,
        "matched": progress.matched,
        "alreadyLabeled": progress.already_labeled,
        "otherVersionStored": progress.other_version,
        "enqueued": progress.enqueued,
        "pace": {"imagesPerSecond": round(pace.images_per_second, 3), "source": pace.source, "maxQueued": pace.limit},
    }
    _emit(
        args,
        summary,
        human=lambda d: (
            f"listed {d['listed']}, matched {d['matched']}, already labeled {d['alreadyLabeled']}, "
            f"another version stored {d['otherVersionStored']}, enqueued {d['enqueued']} "
            f"(pace: at most {pace.limit} queued, {pace.images_per_second:g} images/s {pace.source}); "
            f"follow it with `autolabel backfill status {args.target}`"
        ),
    )
    return 0


def _dry_run_text(d: dict[str, Any]) -> str:
    extensions = ", ".join(f"{ext} {count}" for ext, count in d["byExtension"].items()) or "none"
    return (
        f"listed {d['listed']} object(s) by extension: {extensions}\n"
        f"matching {d['matched']}: already labeled {d['alreadyLabeled']}, another version stored "
        f"{d['otherVersionStored']}, to label {d['toLabel']}\n"
        f"estimate at {d['imagesPerSecond']:g} images/s ({d['throughput']}) with {d['inferenceUnits']} inference "
        f"unit(s): {d['modelHours']:g} model-hour(s), about ${d['estimatedCostUsd']:,.2f} "
        f"(${backfill_module.PRICE_PER_INFERENCE_UNIT_HOUR:g} per inference-unit hour; plus start-up and idle time)"
    )


def _backfill_status(ctx: AwsContext, args: argparse.Namespace) -> int:
    if args.checkpoint:
        paths = [Path(args.checkpoint)]
    elif args.status_target:
        bucket, filters = _backfill_filters(args, args.status_target)
        paths = [backfill_module.checkpoint_path(bucket, filters, args.force)]
    else:
        directory = backfill_module.DEFAULT_CHECKPOINT_DIR
        paths = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    paths = [p for p in paths if p.exists()]
    if not paths:
        raise NotFound("no backfill checkpoint found (here, or for these options); start one with `autolabel backfill`")
    sqs = ctx.client("sqs")
    backlog = backfill_module.queue_backlog(sqs, ctx.output("BackfillQueueUrl"))
    dead_url = ctx.optional_output("BackfillDeadLetterQueueUrl")
    dead = backfill_module.queue_backlog(sqs, dead_url) if dead_url else 0
    reports = [
        backfill_module.status(
            backfill_module.Checkpoint.from_json(p.read_text()), backlog=backlog, dead_letters=dead, path=p
        )
        for p in paths
    ]
    data: Any = reports[0] if len(reports) == 1 else reports

    def human(found: Any) -> str:
        rows = found if isinstance(found, list) else [found]
        return "\n\n".join("\n".join(f"{k:<19} {format_cell(v)}" for k, v in row.items()) for row in rows)

    _emit(args, data, human=human)
    return 0


# --- entry point -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, *, client_factory: Callable[[str], Any] | None = None) -> int:
    """Run one command; returns the exit code. ``client_factory`` injects clients (tests).

    Whatever happens, the operator gets one line and a code of the table above:
    the last ``except`` turns a defect into one line too (tests assert it is
    never reached).
    """
    try:
        return _run(argv, client_factory)
    except CliError as error:
        return _fail(error.message, error.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except Exception as error:
        return _fail(f"unexpected error (a defect, please report it): {type(error).__name__}: {error}", EXIT_OTHER)


def _run(argv: Sequence[str] | None, client_factory: Callable[[str], Any] | None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        _check_encoding(parser, arguments)
        args = parser.parse_args(arguments)
    except _UsageError as error:
        sys.stderr.write(f"{error.usage}{PROG}: error: {one_line(error.message)}\n")
        return EXIT_BAD_PARAMETERS
    except SystemExit as done:  # --help, --version: argparse printed it
        write_stdout("", end="")
        return int(done.code or 0)
    ctx = AwsContext(
        region=getattr(args, "region", None),
        profile=getattr(args, "profile", None),
        endpoint_url=getattr(args, "endpoint_url", None),
        stack_name=getattr(args, "stack_name", None),
        deployment=getattr(args, "deployment", None),
        client_factory=client_factory,
    )
    handler: Callable[[AwsContext, argparse.Namespace], int] = args.handler
    try:
        return handler(ctx, args)
    except (NoCredentialsError, PartialCredentialsError):
        return _fail(
            "no AWS credentials: run `aws configure` or `aws sso login`, pass --profile, or set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            EXIT_CONFIGURATION,
        )
    except NoRegionError:
        return _fail(
            "no AWS region: pass --region, set AWS_REGION, or set a region in your profile", EXIT_CONFIGURATION
        )
    except ProfileNotFound as error:
        return _fail(f"{error}: check --profile / AWS_PROFILE", EXIT_CONFIGURATION)
    except ParamValidationError as error:
        return _fail(" ".join(str(error).split()), EXIT_BAD_PARAMETERS)
    except ClientError as error:
        details = error.response.get("Error", {})
        return _fail(f"{details.get('Code')}: {details.get('Message')}", ServiceError.exit_code)
    except BotoConnectionError as error:
        return _fail(f"cannot reach AWS: {error} (check --endpoint-url, --region and your network)", EXIT_OTHER)
    except BotoCoreError as error:
        return _fail(str(error), EXIT_OTHER)


def _check_encoding(parser: argparse.ArgumentParser, arguments: list[str]) -> None:
    """Bytes that are not UTF-8 (a wrong locale, a binary pasted) cannot be sent to AWS: say so."""
    for position, argument in enumerate(arguments, start=1):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(argument).decode("ascii", "backslashreplace")
            raise _UsageError(parser.format_usage(), f"argument {position} ({shown}) is not valid UTF-8") from None


def _quiet_stdout() -> None:
    """The reader closed the pipe: send what is left to /dev/null, so that the exit flush is quiet too."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def one_line(message: str, limit: int = 400) -> str:
    """Whatever an endpoint answered (an HTML error page...) as one readable line."""
    text = " ".join(re.sub(r"<[^>]+>", " ", message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(message: str, code: int) -> int:
    with contextlib.suppress(OSError):  # stderr itself gone: the code still tells
        sys.stderr.write(f"{PROG}: {one_line(message)}\n")
        sys.stderr.flush()
    return code
