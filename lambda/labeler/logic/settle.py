"""Claims and retries: take a publish claim, give it back when a record is retried, and settle the batch.

A record that fails is named as a batch item failure and releases any claim
it holds, so that its retry need not wait for the claim to expire. At the end
of the batch, transient failures are brought back after a short, jittered
delay instead of the queue's visibility timeout (best effort).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_lambda_powertools import Logger

from labeler.domain.stored_state import Claim
from labeler.logic.batch import BatchContext, BatchReport, InboundMessage, Task
from labeler.logic.decisions import retry_delay_seconds
from labeler.ports import RetryDelay, StoreError
from shared.names import LABELER_SERVICE

logger = Logger(service=LABELER_SERVICE, child=True)


def take_claim(ctx: BatchContext, task: Task) -> Claim | None:
    """Claim the result for this attempt; a lost answer is retried once (idempotent for our token)."""
    try:
        return ctx.ledger.claim(
            task.ref, task.result_id, task.token, claim_ttl_seconds=ctx.claim_ttl, removal=task.removal
        )
    except StoreError:
        return ctx.ledger.claim(
            task.ref, task.result_id, task.token, claim_ttl_seconds=ctx.claim_ttl, removal=task.removal
        )


def retry_record(
    ctx: BatchContext, task: Task, reason: str, report: BatchReport, *, soon: bool = True, not_before: float = 0.0
) -> None:
    """Name the task's messages as batch item failures and release any claim it holds."""
    report.fail(task.message_ids, reason, soon=soon, not_before=not_before)
    report.retries += 1
    release_claim(ctx, task)


def release_claim(ctx: BatchContext, task: Task) -> None:
    """Release the claim this attempt holds (keeping any uncertainty on the result)."""
    if not task.holds_claim:
        return
    task.holds_claim = False
    try:
        ctx.ledger.release(task.ref, task.result_id, task.token, uncertain=task.uncertain, removal=task.removal)
    except Exception as error:  # the claim then expires; its taker counts the uncertainty
        logger.warning("Could not release publish claim", extra={"objectKey": task.obj.key, "error": str(error)})


def delay_retries(ctx: BatchContext, messages: Sequence[InboundMessage], report: BatchReport) -> None:
    """Bring transient failures back after a short delay instead of the queue's visibility timeout."""
    if ctx.retry_queue is None or not (report.retry_soon or report.retry_at_once):
        return
    delays: list[RetryDelay] = []
    for message in messages:
        if not message.receipt_handle or not message.queue_arn:
            continue
        if message.message_id in report.retry_at_once:
            seconds = 0
        elif message.message_id in report.retry_soon:
            seconds = retry_delay_seconds(
                message.receive_count, ctx.draw, not_before=report.retry_soon[message.message_id]
            )
        else:
            continue
        delays.append(RetryDelay(message.queue_arn, message.receipt_handle, seconds))
    if not delays:
        return
    try:
        report.retry_delays_not_set = ctx.retry_queue.delay(delays)
    except Exception:  # best effort: the queue's visibility timeout still brings them back
        logger.exception("Could not shorten the retry delay")
        report.retry_delays_not_set = len(delays)
