"""The soak's label-index check: strict for finished records, lenient only for unannounced results in the DLQ.

A record whose retries ran out after its result item went in (and before its
label-index entries did) leaves a current, never-announced result with no
entries; behaviour.md promises the index only "once a record is finished".
"""

from __future__ import annotations

from typing import Any

import boto3

from local.fakes.faults import Call, client_error
from local.samples import make_image
from local.soak import Accounting, SoakConfig, _check_label_index
from shared import table_layout as layout
from tests.support.builders import notification_body
from tests.support.harness import Harness
from tests.support.table_writes import is_index_only_write

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})


def _refuse_index_writes(harness: Harness) -> None:
    def fault(kwargs: dict[str, Any], call: Call) -> Any:
        if is_index_only_write(kwargs):
            raise client_error("ProvisionedThroughputExceededException", operation="BatchWriteItem")
        return call(**kwargs)

    harness.dynamodb.faults["batch_write_item"] = fault


def _check(harness: Harness, key: str, in_dlq: set[str]) -> Accounting:
    account = Accounting()
    currents = {key: harness.result(key)}
    _check_label_index(
        account, SoakConfig(), harness.resources.table_name, currents, boto3.client("dynamodb"), in_dlq=in_dlq
    )
    return account


def _stored_without_index(harness: Harness, key: str) -> None:
    upload = harness.upload_quietly(key, SCRATCH)
    _refuse_index_writes(harness)
    harness.send(notification_body(harness.record_for(key, upload, sequencer="0010")))
    harness.poller.poll_once()  # one delivery: the result item goes in, its entries do not
    current = harness.result(key)
    assert current is not None and current["status"] == "LABELED" and current["eventPublished"] is False
    assert harness.by_label("scratch") == []


def test_an_unannounced_result_without_entries_is_allowed_only_while_its_record_is_in_the_dlq(
    harness: Harness,
) -> None:
    _stored_without_index(harness, "a.png")
    lenient = _check(harness, "a.png", in_dlq={"a.png"})
    assert (lenient.problems, lenient.index_unfinished) == ([], 1)
    strict = _check(harness, "a.png", in_dlq=set())
    assert len(strict.problems) == 1 and "labels missing" in strict.problems[0]


def test_an_announced_result_without_entries_is_a_problem_even_in_the_dlq(harness: Harness) -> None:
    upload = harness.upload_quietly("b.png", SCRATCH)
    harness.send(notification_body(harness.record_for("b.png", upload, sequencer="0010")))
    harness.run()
    assert [entry["key"] for entry in harness.by_label("scratch")] == ["b.png"]
    account = _check(harness, "b.png", in_dlq={"b.png"})
    assert account.problems == []  # finished: the index agrees
    table, client = harness.resources.table_name, boto3.client("dynamodb")
    partition = {":pk": {"S": layout.label_partition("scratch")}}
    entries = client.query(TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues=partition)
    for entry in entries["Items"]:
        client.delete_item(TableName=table, Key={"pk": entry["pk"], "sk": entry["sk"]})
    account = _check(harness, "b.png", in_dlq={"b.png"})
    assert len(account.problems) == 1 and account.index_unfinished == 0
