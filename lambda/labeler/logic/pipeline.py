"""The labeling logic for one SQS batch, as a sequence of phases: no AWS client is created here.

For each batch: parse messages, skip what is not an image, collapse repeats
(``intake``), read the current results in one BatchGetItem, label the new
object versions concurrently, bounded (``labeling``, ``removals``), store
each result conditionally and their indexes in shared batches (``storing``),
publish all events in PutEvents requests of up to 10 entries, then record them
published, one small item each, in one BatchWriteItem (``publishing``), and
bring retried records back soon (``settle``). Every record ends acknowledged
or named as a batch item failure. The phases speak to the world through the
ports (``labeler.ports``); ``labeler.wiring`` picks the adapters.

Faults between the steps (docs/behaviour.md#delivery-guarantee, docs/reliability.md): no phase starts that could not
finish before the invocation ends; a record that runs out of time is failed
with nothing half-done (a stored result keeps no publish claim, so the retry
publishes it without relabeling). Once EventBridge has accepted an event,
nothing puts its record back on the queue: the mark is retried in-process
within the remaining time, and a mark that still fails is only counted.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from labeler.config import LabelerConfig
from labeler.logic.batch import (
    DEFAULT_CLAIM_TTL_SECONDS,
    BatchContext,
    BatchReport,
    InboundMessage,
    Outcome,
    Task,
    guarded,
)
from labeler.logic.intake import collect, with_other_model_versions
from labeler.logic.labeling import Preparation
from labeler.logic.publishing import Publishing
from labeler.logic.settle import delay_retries
from labeler.logic.storing import Storing
from labeler.ports import Detector, LabelIndex, PublicationLedger, Publisher, ResultRepository, RetryQueue, StoreError
from shared.deadline import InvocationDeadline, RemainingMillis
from shared.names import LABELER_SERVICE

__all__ = ["BatchReport", "InboundMessage", "LabelingPipeline"]

logger = Logger(service=LABELER_SERVICE, child=True)


class LabelingPipeline:
    def __init__(
        self,
        config: LabelerConfig,
        *,
        detector: Detector,
        results: ResultRepository,
        index: LabelIndex,
        ledger: PublicationLedger,
        publisher: Publisher,
        max_workers: int = 10,
        claim_ttl_seconds: float = DEFAULT_CLAIM_TTL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        deadline: InvocationDeadline | None = None,
        sleep: Callable[[float], None] = time.sleep,
        ingest_queue: RetryQueue | None = None,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> None:
        # What every phase works with; tests and the soak adjust its fields (the clock, the claim lease).
        self.ctx = BatchContext(
            config,
            detector=detector,
            results=results,
            index=index,
            ledger=ledger,
            publisher=publisher,
            deadline=deadline or InvocationDeadline(),
            clock=clock,
            sleep=sleep,
            draw=draw,
            claim_ttl=claim_ttl_seconds,
            retry_queue=ingest_queue,
        )
        self._preparation = Preparation(self.ctx)
        self._storing = Storing(self.ctx, self._preparation)
        self._publishing = Publishing(self.ctx)
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def process(self, messages: Sequence[InboundMessage], remaining_ms: RemainingMillis | None = None) -> BatchReport:
        """Process one batch; ``remaining_ms`` is the Lambda context's clock (None: unbounded)."""
        ctx = self.ctx
        ctx.deadline.start(remaining_ms)
        report = BatchReport()
        tasks = collect(messages, report, ctx.config)
        tasks = with_other_model_versions(tasks, report, ctx.results)
        if tasks:
            self._carry_out(tasks, report)
        delay_retries(ctx, messages, report)
        return report

    def _carry_out(self, tasks: list[Task], report: BatchReport) -> None:
        """Read the stored states in one batch; label concurrently (bounded); store; publish in PutEvents of 10."""
        try:
            states = self.ctx.results.current_states([task.ref for task in tasks])
        except StoreError as error:
            logger.error("Could not read current results; retrying the batch", extra={"error": str(error)})
            for task in tasks:
                report.fail(task.message_ids, str(error))
            report.retries += len(tasks)
            return
        prepare = self._preparation.prepare
        outcomes: list[Outcome] = list(self._pool().map(lambda task: guarded(task, prepare, states[task.ref]), tasks))
        self._storing.save(tasks, outcomes)
        self._publishing.publish(tasks, outcomes, report)
        report.unexpected_errors += sum(1 for outcome in outcomes if outcome.unexpected)

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="labeler")
            return self._executor
