"""local.peer: the peer design's handler and Lambda's asynchronous-invocation retries (benchmark baseline)."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from moto import mock_aws

from local.fakes.faults import FaultyClient, client_error
from local.peer import PEER_TABLE_KEY, PeerClients, peer_handler, run_peer, s3_event


class Model:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        self.keys.append(request["Image"]["S3Object"]["Name"])
        return {"CustomLabels": [{"Name": "scratch", "Confidence": 90.0}]}


def test_the_peer_labels_records_in_order_with_a_put_and_an_event_each() -> None:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="peer",
            KeySchema=PEER_TABLE_KEY,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        model = Model()
        clients = PeerClients(model, FaultyClient(ddb), FaultyClient(boto3.client("events", region_name="us-east-1")))
        event = {"Records": [r for key in ("a+b.png", "c.png") for r in s3_event("bucket", key)["Records"]]}
        stamps = peer_handler(event, clients, table="peer", bus="default", arn="arn")
        assert model.keys == ["a b.png", "c.png"]  # decoded, in order
        assert len(stamps) == 2 and stamps == sorted(stamps)
        assert clients.dynamodb.calls == {"put_item": 2} and clients.events.calls == {"put_events": 2}
        assert ddb.get_item(TableName="peer", Key={"pk": {"S": "bucket/a b.png"}})["Item"]["labels"]["S"].startswith(
            '[{"Name": "scratch"'
        )


def test_async_invocation_retries_twice_then_drops() -> None:
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def invoke(event: dict[str, Any]) -> list[float]:
        key = event["Records"][0]["s3"]["object"]["key"]
        with lock:
            attempts[key] = attempts.get(key, 0) + 1
            n = attempts[key]
        fails = {"ok": 0, "once": 1, "twice": 2, "always": 99}[key]
        if n <= fails:
            raise client_error("ThrottlingException")
        return [float(n)]

    events = [s3_event("b", key) for key in ("ok", "once", "twice", "always")]
    run = run_peer(events, invoke, concurrency=2, retry_delays=(0.0, 0.0))
    assert attempts == {"ok": 1, "once": 2, "twice": 3, "always": 3}
    assert (run.labeled, run.dropped, run.failed_attempts) == (3, 1, 1 + 2 + 3)
    assert sorted(run.announced) == [1.0, 2.0, 3.0]
