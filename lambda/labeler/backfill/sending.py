"""Sending a batch's backfill messages: paced on the queue's backlog, 10 per SendMessageBatch, refusals retried."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from labeler.backfill.job_input import Job
from labeler.backfill.ledger import Outcome
from labeler.backfill.ports import BackfillQueue
from labeler.domain.backfill_request import BackfillRequest, backfill_request

SEND_BATCH = 10  # SendMessageBatch
SEND_ATTEMPTS = 5


class BackfillQueueFull(Exception):
    """The backfill queue holds what the model labels in half its retention: nothing was sent, retry later."""


class BackfillSendFailed(Exception):
    """SQS refused some of the batch's messages after retries; the step retries the batch."""


def wait_for_room(queue: BackfillQueue, job: Job, count: int, *, others: int) -> None:
    """Paced: room for this batch and ``others`` (a full batch from each other child running), or BackfillQueueFull."""
    backlog = queue.backlog()
    if backlog + count + others > job.pace_limit:
        raise BackfillQueueFull(
            f"the backfill queue holds {backlog} message(s); this batch of {count} and up to {others} from "
            f"the other batches would pass the pace limit of {job.pace_limit}"
        )


def send(queue: BackfillQueue, job: Job, outcomes: Sequence[Outcome]) -> None:
    """One backfill message per outcome; raises BackfillSendFailed if SQS still refuses some after retries."""
    requests = [request_of(job, o) for o in outcomes]
    for start in range(0, len(requests), SEND_BATCH):
        chunk = requests[start : start + SEND_BATCH]
        entries = [{"Id": str(i), "MessageBody": r.to_body()} for i, r in enumerate(chunk)]
        for _attempt in range(SEND_ATTEMPTS):
            failed = queue.send_batch(entries)
            entries = [entry for entry in entries if entry["Id"] in failed]
            if not entries:
                break
        else:
            raise BackfillSendFailed(f"SQS refused {len(entries)} backfill message(s) {SEND_ATTEMPTS} times")


def request_of(job: Job, outcome: Outcome) -> BackfillRequest:
    item = outcome.item
    return backfill_request(
        job.bucket,
        item.key,
        version_id=item.version_id,
        etag=item.etag,
        size=item.size,
        run_id=job.run,
        force=job.force,
        last_modified=item.last_modified.astimezone(UTC).isoformat(timespec="seconds"),
        replaces=outcome.replaces,
    )
