"""The batch report: which failed messages come back soon, and which wait the queue's timeout."""

from __future__ import annotations

from labeler.logic.pipeline import BatchReport


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
