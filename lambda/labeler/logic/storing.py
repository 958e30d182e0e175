"""Phase 3, store: each new result conditionally (concurrently), their label indexes in shared batches.

A write that fails is decided again against the state read now: a conflict
(another writer changed the result), or a lost answer whose write went in
(our own, finished and published). Deletions are one conditional write each.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_lambda_powertools import Logger

from labeler.logic.batch import MAX_CONFLICT_ROUNDS, BatchContext, Outcome, OutOfTimeError, Task, guarded, raise_error
from labeler.logic.decisions import Action
from labeler.logic.labeling import Preparation
from labeler.phase_budgets import STORE_SECONDS
from labeler.ports import ResultConflict, StoreError
from shared.names import LABELER_SERVICE

logger = Logger(service=LABELER_SERVICE, child=True)


class Storing:
    def __init__(self, ctx: BatchContext, prepare: Preparation) -> None:
        self._ctx = ctx
        self._prepare = prepare

    def save(self, tasks: Sequence[Task], outcomes: list[Outcome]) -> None:
        pending = [i for i, outcome in enumerate(outcomes) if outcome.unsaved and outcome.retry_reason is None]
        if not pending:
            return
        if not self._ctx.deadline.allows(STORE_SECONDS):
            for index in pending:
                outcomes[index] = guarded(tasks[index], raise_error, OutOfTimeError("not enough time left to store"))
            return
        results = [i for i in pending if outcomes[i].deletion is None]
        pairs = [(outcomes[i].result, outcomes[i].previous, tasks[i].token) for i in results]
        try:
            errors = self._ctx.results.save_many(pairs)  # type: ignore[arg-type]
        except Exception as failure:  # e.g. a bug in packing: retry these records
            logger.exception("Could not store results; retrying them")
            errors = [StoreError(str(failure))] * len(results)
        by_index: dict[int, Exception | None] = dict(zip(results, errors, strict=True))
        for index in pending:
            if index not in by_index:  # deletions: one conditional write each
                by_index[index] = self._try_store(tasks[index], outcomes[index])
        for index in pending:
            task, outcome, error = tasks[index], outcomes[index], by_index[index]
            if error is None:
                outcome.unsaved = False
                task.holds_claim = outcome.action is not Action.RECORD_DELETION  # a tombstone has no claim
                task.write_id = task.token
            else:
                # A conflict, or an error whose write may still have gone in: decide again.
                outcomes[index] = guarded(task, self._resolve_conflict, outcome, error)
                outcomes[index].discarded_label = outcome.deletion is None and outcomes[index].action in (
                    Action.DUPLICATE,
                    Action.PUBLISH_STORED,
                    Action.IN_PROGRESS,
                )

    def _resolve_conflict(self, task: Task, labeled: Outcome, error: Exception) -> Outcome:
        """The write failed: another writer changed the result, or the answer was lost. Decide again."""
        for _ in range(MAX_CONFLICT_ROUNDS):
            outcome = self._prepare.prepare(task, self._ctx.results.current_state(task.ref), labeled)
            if not outcome.unsaved:
                return outcome
            if not isinstance(error, ResultConflict):
                raise error  # it did not go in: retry the record (nothing half-done)
            failure = self._try_store(task, outcome)
            if failure is None:
                outcome.unsaved = False
                task.holds_claim = outcome.action is not Action.RECORD_DELETION
                task.write_id = task.token
                return outcome
            if not isinstance(failure, ResultConflict):
                raise failure
            error = failure
        return Outcome(
            Action.LABEL, retry_reason="the result kept changing concurrently", latency_ms=labeled.latency_ms
        )

    def _try_store(self, task: Task, outcome: Outcome) -> Exception | None:
        """Store the outcome's new result or deletion; the ResultConflict or StoreError, or None."""
        try:
            if outcome.deletion is not None:
                self._ctx.results.save_removal(
                    task.ref,
                    outcome.deletion,
                    outcome.previous,
                    task.token,
                    announce=outcome.action is Action.REMOVE,
                )
            else:
                self._ctx.results.save(outcome.result, outcome.previous, task.token)  # type: ignore[arg-type]
        except (ResultConflict, StoreError) as error:
            return error
        return None
