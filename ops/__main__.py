"""python -m ops [--stack Autolabel] model status|start|stop | dlq redrive

Uses your AWS credentials (the usual boto3 environment/profile) and reads
the stack's outputs (ProjectVersionArn, ProjectArn, IngestQueueUrl,
DeadLetterQueueUrl, EventSourceMappingId).
"""

from __future__ import annotations

import argparse
import json
import sys

import boto3

from ops.commands import StackOutputs, model_start, model_status, model_stop, redrive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default="Autolabel", help="CloudFormation stack name (default: Autolabel)")
    sub = parser.add_subparsers(dest="area", required=True)
    model = sub.add_parser("model", help="the Custom Labels model version").add_subparsers(dest="action", required=True)
    model.add_parser("status", help="model status, trigger, queue and DLQ depth")
    start = model.add_parser("start", help="start the model")
    start.add_argument("--min-units", type=int, default=1)
    start.add_argument("--max-units", type=int, default=None)
    model.add_parser("stop", help="pause the labeler's trigger, then stop the model")
    dlq = sub.add_parser("dlq", help="the dead-letter queue").add_subparsers(dest="action", required=True)
    move = dlq.add_parser("redrive", help="move DLQ messages back to the ingest queue")
    move.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)

    outputs = StackOutputs.from_cloudformation(boto3.client("cloudformation"), args.stack)
    clients = {
        "rekognition": boto3.client("rekognition"),
        "sqs": boto3.client("sqs"),
        "lambda_client": boto3.client("lambda"),
    }
    if (args.area, args.action) == ("model", "status"):
        print(json.dumps(model_status(outputs, **clients), indent=2))
    elif (args.area, args.action) == ("model", "start"):
        print(
            model_start(outputs, rekognition=clients["rekognition"], min_units=args.min_units, max_units=args.max_units)
        )
    elif (args.area, args.action) == ("model", "stop"):
        print(model_stop(outputs, rekognition=clients["rekognition"], lambda_client=clients["lambda_client"]))
    else:
        print(f"moved {redrive(outputs, sqs=clients['sqs'], limit=args.limit)} message(s) back to the ingest queue")
    return 0


if __name__ == "__main__":
    sys.exit(main())
