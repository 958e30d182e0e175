"""The ``enqueue`` step: one batch of listed objects selected, paced, ledgered and sent (docs/backfill.md).

The ledger is written before the send: if the answer is lost after sending, the
retry still knows what was sent. A retried batch sends again what an earlier
attempt may have sent: the labeler acknowledges those as duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labeler.backfill import selection
from labeler.backfill.job_input import Job, JobConfig
from labeler.backfill.ledger import ENQUEUED, Item, Outcome, counts_of, ledger_key, ledger_text, sent_keys
from labeler.backfill.ports import JobPorts
from labeler.backfill.sending import wait_for_room
from labeler.domain import backfill_rules as rules

Send = Callable[[Job, Sequence[Outcome]], None]


def enqueue(event: Mapping[str, Any], config: JobConfig, ports: JobPorts, send: Send) -> dict[str, Any]:
    """The batch's counts and its ledger's key; ``send`` sends the objects to label (``sending.send``)."""
    job = Job.from_json(event["BatchInput"]["job"])
    if job.bucket != config.image_bucket:
        raise ValueError(f"this job may read s3://{config.image_bucket} only, not s3://{job.bucket}")
    outcomes = [selection.select(job, Item.from_reader(raw)) for raw in event.get("Items", [])]
    pending = [o for o in outcomes if not o.outcome]
    if pending:
        # First, and for the whole batch: a batch waiting for the model costs one SQS call per retry.
        wait_for_room(ports.queue, job, len(pending), others=(config.max_concurrency - 1) * config.batch_size)
    selection.current_versions(ports.objects, job, pending)
    open_ = [o for o in pending if not o.outcome]
    selection.apply_skip_rules(ports.results, ports.objects, config.project_version_arn, job, open_)
    ledger = ledger_key(job, outcomes)
    sent_before = sent_keys(ports.reports.read_lines_if_any(ledger) or [])
    to_send = [o for o in outcomes if o.outcome == ENQUEUED]
    _count_earlier_sends(outcomes, sent_before)
    ports.reports.write(ledger, ledger_text(outcomes, sending=True))
    if to_send:
        send(job, to_send)
        ports.reports.write(ledger, ledger_text(outcomes, sending=False))
    return counts_of(outcomes) | {"ledger": ledger}


def _count_earlier_sends(outcomes: Sequence[Outcome], sent_before: set[str]) -> None:
    """An earlier attempt of this batch sent it and the labeler has labeled it since: this job's work."""
    for outcome in outcomes:
        if outcome.item.key in sent_before and outcome.reason == rules.SKIP_LABELED:
            outcome.outcome, outcome.reason = ENQUEUED, ""
