"""The soak's re-upload check: X stored but never announced is lost unless its second upload is in the DLQ.

Under load a re-upload group's last notification can exhaust its receives after
X's result went in and before X was announced. Redriven, that notification finds
X stored and announces it, so the record is unfinished, not lost. While X's second
upload's notification was not dead-lettered, it finished, and finishing means X
was announced (a delivery of X's bytes waits while another holds the publish
claim, and otherwise announces the stored X): an unannounced X is then a loss,
whatever else of the key is in the DLQ.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import pytest

from local.fakes.faults import Call, client_error
from local.samples import make_image
from local.soak import Accounting, DeadLetters, Reupload, Version, _account_reupload
from tests.support.builders import notification_body
from tests.support.harness import Harness

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
KEY = "x.png"


def _refuse_put_events(kwargs: dict[str, Any], call: Call) -> Any:
    raise client_error("InternalException", operation="PutEvents", status=500)


def _stored_unannounced_group(harness: Harness) -> Reupload:
    upload = harness.upload_quietly(KEY, SCRATCH)
    head = harness.record_for(KEY, upload)["s3"]["object"]
    x, again = (
        Version(KEY, "good", etag=head["eTag"], size=head["size"], sequencer=sequencer, unversioned=True)
        for sequencer in ("0010", "0030")
    )
    harness.events.faults["put_events"] = _refuse_put_events
    harness.send(notification_body(x.record(harness.resources.bucket)))
    harness.poller.poll_once()  # X's result goes in; its announcement is refused
    current = harness.result(KEY)
    assert current is not None and current["resultId"] == x.result_id(harness.resources.bucket)
    assert current["eventPublished"] is False
    return Reupload(x, None, again, deletion_sequencer="0020")


@pytest.mark.parametrize(
    ("dead_sequencer", "outcome", "problems"),
    [
        ("0030", "DLQ (retries exhausted): X stored", 0),  # X's second upload: the redrive announces X
        ("0010", "LOST: X never announced", 1),  # only X's first upload: the second finished unannounced
        ("0020", "LOST: X never announced", 1),  # only the deletion: likewise
    ],
)
def test_an_unannounced_x_is_unfinished_only_while_its_second_upload_is_in_the_dlq(
    harness: Harness, dead_sequencer: str, outcome: str, problems: int
) -> None:
    group = _stored_unannounced_group(harness)
    account = Accounting()
    dead = DeadLetters(Counter({(KEY, ""): 1}), {(KEY, dead_sequencer)}, 0)
    _, got = _account_reupload(
        account,
        group,
        resources=harness.resources,
        ddb=boto3.client("dynamodb"),
        by_result={},
        removed={},
        dead=dead,
        excused=set(),
    )
    assert got == outcome
    assert len(account.problems) == problems
    assert account.rows[(group.kind, outcome)] == 1
