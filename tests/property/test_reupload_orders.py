"""Every delivery order of one unversioned key's uploads (two contents, so the same bytes come back)
and deletions ends where S3 ended (issue 16; docs/behaviour.md#ordering).

Hypothesis draws a short history of one key in an unversioned bucket: uploads of content A or B
(the same bytes again have the same resultId) and deletions, each with a newer S3 sequencer, then a
delivery order of their notifications, one invocation each (as the queue may deliver them). After
the last one:

- the key's newest event decides: an upload leaves its content's labels current (``get_result``
  LABELED, ``find_by_label`` answering for it); a deletion leaves the result DELETED and out of
  ``find_by_label``;
- a consumer that orders the key's events by ``detail.sequencer`` (docs/events.md) ends on the same
  answer: a Detected of the current content, or (deleted) a Removed or nothing at all.

The state machine (test_labeler_state_machine.py) draws new bytes for every upload; this draws
the same bytes again, with deletions between, which is what issue 16's defects 1 and 2 needed.
Each example uses its own key in one moto world (the ``harness`` fixture), so the fixture is
shared by the examples on purpose. Profiles: tests/property/conftest.py (``ci``: fewer examples).
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from local.samples import make_image
from tests.integration.labeler.test_attacks_store import run, unversioned_body
from tests.integration.labeler.test_formats_and_deletions import REMOVED, with_deletions
from tests.support.builders import notification_body, s3_removal_record
from tests.support.harness import Harness

CONTENTS = {
    "A": (make_image({"scratch": (0.1, 0.1, 0.3, 0.3)}), ["scratch"]),
    "B": (make_image({"dent": (0.5, 0.5, 0.4, 0.4)}), ["dent"]),
}
DETECTED = "Custom Labels Detected"
DELETE = "delete"

HISTORIES = st.lists(st.sampled_from(["A", "B", DELETE]), min_size=2, max_size=5)
_keys = itertools.count()
# A third of the profile's examples (ci: 10; deep: 133): each runs up to five invocations on moto.
_EXAMPLES = max(10, settings().max_examples // 3)
# Delivery order: the events sorted by a drawn priority (ties in S3's order).
PRIORITIES = st.lists(st.integers(0, 9), min_size=5, max_size=5)


def _bodies(harness: Harness, key: str, history: list[str]) -> list[str]:
    """The notifications of ``history`` (uploads made to S3 now, in order), sequencers increasing."""
    bodies = []
    for number, step in enumerate(history):
        sequencer = f"00{0x10 + number:02X}"
        if step == DELETE:
            record = s3_removal_record(
                key, bucket=harness.resources.bucket, sequencer=sequencer, event_name="ObjectRemoved:Delete"
            )
            bodies.append(notification_body(record))
        else:
            bodies.append(unversioned_body(harness, key, CONTENTS[step][0], sequencer))
    return bodies


def _etag(content: str) -> str:
    return hashlib.md5(CONTENTS[content][0]).hexdigest()  # S3's ETag of a single-part upload


def _last_event(events: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    mine = [e for e in events if e["detail"]["key"] == key]
    return max(mine, key=lambda e: e["detail"]["sequencer"] or "") if mine else None


@settings(max_examples=_EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=HISTORIES, priorities=PRIORITIES)
# Issue 16's defects 1 and 2, and the same bytes after a deletion delivered before an older upload.
@example(history=["A", "B", "A"], priorities=[0, 2, 1, 0, 0])
@example(history=["A", DELETE, "A"], priorities=[0, 2, 1, 0, 0])
@example(history=["A", DELETE, "B", "A"], priorities=[0, 1, 3, 2, 0])
def test_every_delivery_order_of_a_keys_uploads_and_deletions_ends_as_s3(
    harness: Harness, history: list[str], priorities: list[int]
) -> None:
    with_deletions(harness)
    key = f"k{next(_keys)}.png"
    bodies = _bodies(harness, key, history)
    order = sorted(range(len(history)), key=lambda index: (priorities[index], index))
    for index in order:
        report = run(harness.build_pipeline(), bodies[index])
        assert not report.failed_messages, report.failed_messages
    result = harness.result(key)
    last = _last_event(harness.new_events(), key)
    every_label = {label for _, labels in CONTENTS.values() for label in labels}
    answering = {label for label in every_label if any(f["key"] == key for f in harness.by_label(label))}
    if history[-1] == DELETE:
        assert result is not None and result["status"] == "DELETED" and "deletedAt" in result
        assert answering == set()
        assert last is None or last["detail-type"] == REMOVED
    else:
        # The fake model reads the key's current bytes (no versionId): which upload a result is of,
        # its ETag tells.
        expected = _etag(history[-1])
        assert result is not None and result["status"] == "LABELED" and "deletedAt" not in result
        assert result["etag"] == expected and answering == set(result["labelNames"])
        assert last is not None and last["detail-type"] == DETECTED and last["detail"]["etag"] == expected
