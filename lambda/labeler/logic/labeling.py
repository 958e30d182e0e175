"""Phase 2, label: decide each task against its stored state, and call the model when a new result is needed.

Runs concurrently, one task per worker (bounded). A task ends here decided
(a duplicate, stale, in progress elsewhere), recovered (a stored result not
yet published: its index repaired, then published without relabeling), or
with a new result to store. Deletions are decided in ``removals``.
"""

from __future__ import annotations

from dataclasses import replace

from aws_lambda_powertools import Logger

from labeler.domain.label_result import LabelResult
from labeler.domain.s3_notification import S3ObjectEvent, sequencer_is_newer
from labeler.domain.stored_state import StoredState
from labeler.logic.batch import MAX_CONFLICT_ROUNDS, BatchContext, Outcome, OutOfTimeError, Task
from labeler.logic.decisions import (
    Action,
    claim_expires_in,
    decide,
    decide_backfill,
    is_own_write,
    publication_uncertain,
)
from labeler.logic.removals import RemovalPreparation
from labeler.logic.settle import take_claim
from labeler.phase_budgets import LABEL_SECONDS, STORE_SECONDS
from labeler.ports import PermanentImageError, StoreError
from shared.names import LABELER_SERVICE

logger = Logger(service=LABELER_SERVICE, child=True)


def ordering_sequencer(sequencer: str | None, state: StoredState | None, object_version: str) -> str | None:
    """The sequencer a new result of ``object_version`` is stored with: its event's, or the stored
    result's of the same version when that is newer or the event has none.

    A forced relabel (a listing: no sequencer) keeps the version's sequencer, so notifications are
    still ordered against it, including one recorded by an ADVANCE after the relabel read the result.
    The same bytes labeled again after a deletion keep their own, newer event's sequencer: the deleted
    result's would order the key before the deletion (docs/behaviour.md#ordering).
    """
    if state is None or state.object_version != object_version:
        return sequencer
    return state.sequencer if not sequencer or sequencer_is_newer(state.sequencer, sequencer) else sequencer


class Preparation:
    """Decide a task, and label it when it needs a new result (``prepare``); also decides again after a conflict."""

    def __init__(self, ctx: BatchContext) -> None:
        self._ctx = ctx
        self._removals = RemovalPreparation(ctx)

    def prepare(self, task: Task, state: StoredState | None, labeled: Outcome | None = None) -> Outcome:
        """Decide against the current state; label (once) when a new result is needed."""
        if task.removal:
            return self._removals.prepare(task, state, labeled)
        if labeled is not None and labeled.result is not None and is_own_write(state, task.token):
            # Our result went in although the write failed (a lost answer, or an
            # index write after it): finish what it left, then publish it.
            task.holds_claim = True  # the write took the claim for this token
            task.write_id = task.token
            self._ctx.results.finish_write(labeled.result, labeled.previous, task.token)
            return Outcome(Action.LABEL, result=labeled.result, latency_ms=labeled.latency_ms)
        version = task.obj.object_identity[2]
        for _ in range(MAX_CONFLICT_ROUNDS):
            action = self._decide(task, state)
            if action is not Action.ADVANCE:
                break
            state = self._advance(task, state)
        else:
            return Outcome(Action.LABEL, retry_reason="the result kept changing concurrently")
        if action in (Action.DUPLICATE, Action.STALE):
            return Outcome(action)
        if action is Action.IN_PROGRESS:
            return Outcome(
                action,
                retry_reason="another worker is publishing this result",
                retry_not_before=claim_expires_in(
                    state, now=self._ctx.clock().timestamp(), claim_ttl_seconds=self._ctx.claim_ttl
                ),
            )
        if action is Action.PUBLISH_STORED:
            return self._recover_stored(task, state)
        if labeled is not None and labeled.result is not None:
            # Decided again after a conflict: the state read now may carry a newer sequencer (an ADVANCE).
            result = replace(labeled.result, sequencer=ordering_sequencer(labeled.result.sequencer, state, version))
            return Outcome(Action.LABEL, result=result, latency_ms=labeled.latency_ms, unsaved=True, previous=state)
        if not self._ctx.deadline.allows(LABEL_SECONDS):
            raise OutOfTimeError("not enough time left to label, store and publish")
        obj = replace(task.obj, sequencer=ordering_sequencer(task.obj.sequencer, state, version))
        result, latency_ms = self._label(obj, task.ref[2])
        if result.result_id != task.result_id:  # a forced relabel: its own resultId
            result = replace(result, result_id=task.result_id)
        return Outcome(Action.LABEL, result=result, latency_ms=latency_ms, unsaved=True, previous=state)

    def _decide(self, task: Task, state: StoredState | None) -> Action:
        now = self._ctx.clock().timestamp()
        version = task.obj.object_identity[2]
        if task.backfill is not None:
            return decide_backfill(
                state,
                task.result_id,
                version,
                force=task.backfill.force,
                now=now,
                claim_ttl_seconds=self._ctx.claim_ttl,
                replaces=task.backfill.replaces,
            )
        return decide(
            state,
            task.result_id,
            task.obj.sequencer,
            now=now,
            claim_ttl_seconds=self._ctx.claim_ttl,
            object_version=version,
        )

    def _advance(self, task: Task, state: StoredState | None) -> StoredState | None:
        """Record the task's newer sequencer on the stored result of the same bytes; the state to decide on next.

        The write's answer lost, or the process dead after it: the record is
        retried, reads the advanced sequencer and is a duplicate. The condition
        failed: the result changed meanwhile, so it is read again.
        """
        sequencer = task.obj.sequencer
        assert state is not None and sequencer is not None  # decide() returns ADVANCE only then
        if self._ctx.results.advance_sequencer(task.ref, state, sequencer):
            logger.info(
                "Same bytes in a newer event; recorded its sequencer",
                extra={"objectKey": task.obj.key, "resultId": state.result_id, "sequencer": sequencer},
            )
            return replace(state, sequencer=sequencer)
        return self._ctx.results.current_state(task.ref)

    def _recover_stored(self, task: Task, state: StoredState | None) -> Outcome:
        """A stored result was never marked published: repair its index, then publish it (no relabel)."""
        if not self._ctx.deadline.allows(STORE_SECONDS):
            raise OutOfTimeError("not enough time left to publish the stored result")
        claim = take_claim(self._ctx, task)
        if claim is None:
            return Outcome(Action.PUBLISH_STORED, retry_reason="result was claimed or replaced meanwhile")
        task.holds_claim = True
        task.write_id = claim.write_id
        task.uncertain = publication_uncertain(claim.uncertain, state, task.token)
        result = self._ctx.results.load(task.ref)
        if result is None or result.result_id != task.result_id:
            raise StoreError("stored result disappeared before it was published")
        # The write that stored it may have failed before the whole index was in.
        self._ctx.index.sync(task.ref, result, claim.index_id)
        return Outcome(Action.PUBLISH_STORED, result=result)

    def _label(self, obj: S3ObjectEvent, project_version_arn: str) -> tuple[LabelResult, float | None]:
        """Label with the task's model version (its key's route)."""
        settings = self._ctx.config.for_model(project_version_arn)
        try:
            detection = self._ctx.detector.detect(obj, project_version_arn)
        except PermanentImageError as error:
            return LabelResult.failed(obj, settings, error.code, error.message, self._ctx.clock()), None
        return LabelResult.labeled(obj, settings, detection.custom_labels, self._ctx.clock()), detection.latency_ms
