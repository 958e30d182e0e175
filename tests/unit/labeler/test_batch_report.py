"""The batch report: which failed messages come back soon, and which wait the queue's timeout."""

from __future__ import annotations

import dataclasses

from labeler.logic.decisions import Action
from labeler.logic.pipeline import BatchReport
from labeler.logic.publishing import ACKNOWLEDGED


def test_a_message_waits_as_long_as_its_slowest_record_needs_in_any_order() -> None:
    for order in ([True, False], [False, True]):
        report = BatchReport()
        for soon in order:
            report.fail(["m"], "reason", soon=soon)
        assert "m" in report.failed_messages
        assert "m" not in report.retry_soon
    report = BatchReport()
    report.fail(["m"], "claimed", not_before=100)
    report.fail(["m"], "throttled")
    assert report.retry_soon == {"m": 100}


def test_every_record_acknowledged_without_an_event_adds_to_a_counter_of_the_report() -> None:
    # publishing.ACKNOWLEDGED names the counters as strings: a misspelt name would count nowhere.
    counters = {f.name for f in dataclasses.fields(BatchReport) if f.type in ("int", int)}
    assert {counter for counter, _ in ACKNOWLEDGED.values()} <= counters
    assert set(ACKNOWLEDGED) == {Action.DUPLICATE, Action.STALE, Action.UNRELATED, Action.RECORD_DELETION}
