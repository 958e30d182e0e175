"""A real boto3 Rekognition client whose HTTP layer is the emulated model.

botocore serializes the request, our ``before-send`` hook answers it from a
model object (``detect_custom_labels(**params)``), and botocore parses the
answer, so the labeler's retry configuration (retry mode, max attempts)
really runs: a throttle is retried in-process exactly as against Rekognition.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

from local.fakes.faults import http_response

_SERVER_ERRORS = {"InternalServerError": 500, "ServiceUnavailable": 503}


def emulated_rekognition_client(model: Any, config: Config) -> Any:
    client = boto3.client("rekognition", config=config, endpoint_url="https://rekognition.emulated.invalid")

    def answer(request: Any, **_kwargs: Any) -> AWSResponse:
        params = json.loads(request.body or b"{}")
        try:
            status, body = 200, model.detect_custom_labels(**params)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            status = _SERVER_ERRORS.get(code, 400)
            body = {"__type": code, "Message": error.response["Error"].get("Message", "")}
        return http_response(request.url, status, body)

    client.meta.events.register("before-send.rekognition.DetectCustomLabels", answer)
    return client
