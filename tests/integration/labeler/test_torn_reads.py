"""``get_result`` (and ``autolabel show``) while a large result is replaced between two Query pages (issue 16).

A result of about 7,600 labels spans two 1 MB Query pages. DynamoDB may end a
page anywhere, so the test pages the object's partition one item at a time
(``Limit=1``) and replaces the result right after the page that returned the
result item: the rest of the read sees the new write, and the old result's
continuation items are gone. The answer must be the old result or the new one.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from labeler.adapters.result_items import IncompleteResultError
from labeler.queries import MAX_RESULT_READS, get_result
from local.fakes.canned_models import BigResultModel
from shared import table_layout as layout
from tests.integration.labeler.test_attacks import part_items
from tests.integration.labeler.test_attacks_store import run, unversioned_body
from tests.support.harness import ARN, Harness


class PagingClient:
    """A DynamoDB client whose Query pages end after one item; ``after_result_page`` runs once,
    after the first page that holds a result item (before that page is returned)."""

    def __init__(self, client: Any, after_result_page: Any) -> None:
        self._client = client
        self._after = after_result_page
        self.torn = 0

    def query(self, **request: Any) -> dict[str, Any]:
        response: dict[str, Any] = self._client.query(**{**request, "Limit": 1})
        kinds = {item.get("itemType", {}).get("S") for item in response.get("Items", [])}
        if layout.ITEM_TYPE_RESULT in kinds and "LastEvaluatedKey" in response and not self.torn:
            self.torn += 1
            self._after()
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def big(harness: Harness, big_model: BigResultModel) -> BigResultModel:
    model = big_model
    harness.model = model  # type: ignore[assignment]
    assert not run(harness.build_pipeline(), unversioned_body(harness, "a.png", b"x-bytes", "0010")).failed_messages
    assert part_items(harness, "a.png"), "the result should span continuation items"
    return model


def _replace(harness: Harness, model: BigResultModel, sequencer: list[int]) -> None:
    """A new upload of other content, labeled (another large result) and stored."""
    model.name = f"dent{sequencer[0]}"
    body = unversioned_body(harness, "a.png", f"y-bytes-{sequencer[0]}".encode(), f"00{sequencer[0]:02X}")
    sequencer[0] += 1
    assert not run(harness.build_pipeline(), body).failed_messages


def test_a_result_replaced_between_two_pages_reads_as_the_new_one(harness: Harness, big: BigResultModel) -> None:
    sequencer = [0x11]
    client = PagingClient(boto3.client("dynamodb"), lambda: _replace(harness, big, sequencer))
    result = get_result(harness.resources.table_name, harness.resources.bucket, "a.png", ARN, client=client)
    assert client.torn == 1
    assert result is not None and {label["Name"] for label in result["customLabels"]} == {"dent17"}
    assert len(result["customLabels"]) == 120 and result["labelCount"] == 120


class AlwaysTornClient:
    """Every read of the partition finds a result item whose continuation item is gone (a stub: no moto)."""

    def __init__(self) -> None:
        self.reads = 0

    def query(self, **_request: Any) -> dict[str, Any]:
        self.reads += 1
        item = {
            "pk": {"S": "b/a.png"},
            "sk": {"S": layout.result_sort_key(ARN)},
            "itemType": {"S": layout.ITEM_TYPE_RESULT},
            "resultId": {"S": f"r{self.reads}"},
            "indexId": {"S": f"w{self.reads}"},
            "projectVersionArn": {"S": ARN},
            "processedAt": {"S": "2026-11-24T10:00:00.000Z"},
            "parts": {"N": "1"},
        }
        return {"Items": [item]}


def test_a_result_replaced_on_every_read_gives_up_after_a_bounded_number_of_reads() -> None:
    client = AlwaysTornClient()
    with pytest.raises(IncompleteResultError):
        get_result("table", "b", "a.png", ARN, client=client)
    assert client.reads == MAX_RESULT_READS  # then the error: never a partial result, never an endless loop
