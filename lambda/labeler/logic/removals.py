"""Phase 2 for a deletion: decide it against the stored state; recover one stored but never announced.

docs/behaviour.md#deletions: the result is kept and marked deleted, its label
index entries removed, and one ``Custom Labels Removed`` event announced; a
deletion of an object without a result leaves a tombstone.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from labeler.domain.removal import Deletion, Removal
from labeler.domain.stored_state import StoredState
from labeler.logic.batch import BatchContext, Outcome, OutOfTimeError, Task
from labeler.logic.decisions import Action, claim_expires_in, decide_removal, is_own_write, publication_uncertain
from labeler.logic.settle import take_claim
from labeler.phase_budgets import STORE_SECONDS
from labeler.ports import StoreError
from shared.names import LABELER_SERVICE

logger = Logger(service=LABELER_SERVICE, child=True)


class RemovalPreparation:
    def __init__(self, ctx: BatchContext) -> None:
        self._ctx = ctx

    def prepare(self, task: Task, state: StoredState | None, written: Outcome | None) -> Outcome:
        """Decide a deletion against the current state (docs/behaviour.md#deletions)."""
        if written is not None and written.deletion is not None and is_own_write(state, task.token):
            # Our deletion went in although the write failed: finish the index, then announce it.
            task.holds_claim = True
            task.write_id = task.token
            self._ctx.index.clear(task.ref)
            return Outcome(Action.REMOVE, removal=written.removal)
        now = self._ctx.clock().timestamp()
        action = decide_removal(state, task.obj, task.result_id, now=now, claim_ttl_seconds=self._ctx.claim_ttl)
        if action in (Action.DUPLICATE, Action.STALE, Action.UNRELATED):
            return Outcome(action)
        if action is Action.IN_PROGRESS:
            return Outcome(
                action,
                retry_reason="another worker is publishing this result",
                retry_not_before=claim_expires_in(state, now=now, claim_ttl_seconds=self._ctx.claim_ttl),
            )
        if action is Action.PUBLISH_STORED:
            return self._recover_removal(task, state)
        # The same deletion (same deletedAt) on every round of a conflict.
        deletion = (
            written.deletion
            if written is not None and written.deletion is not None
            else Deletion.of(task.obj, task.ref[2], self._ctx.clock())
        )
        removal = self._removal(task, state, deletion) if action is Action.REMOVE else None
        if action is Action.REMOVE and state is not None and state.deleted:
            # A newer deletion of a deleted object whose Removed was never recorded as accepted: an
            # earlier attempt may have sent it (unknown outcome, or a claim that expired), so this
            # Removed of the same result may repeat it, and is counted.
            task.uncertain = publication_uncertain(False, state, task.token)
        return Outcome(action, unsaved=True, previous=state, deletion=deletion, removal=removal)

    def _removal(self, task: Task, state: StoredState | None, deletion: Deletion) -> Removal:
        if state is None:
            raise StoreError("the deleted result disappeared")
        bucket, key, project_version_arn = task.ref
        return Removal(
            state.result_id, bucket, key, state.version_id, project_version_arn, list(state.label_names), deletion
        )

    def _recover_removal(self, task: Task, state: StoredState | None) -> Outcome:
        """A deletion stored but never announced: finish its index, then announce it (as ``_recover_stored``)."""
        if not self._ctx.deadline.allows(STORE_SECONDS):
            raise OutOfTimeError("not enough time left to publish the stored deletion")
        if state is None or state.deletion is None:
            raise StoreError("stored deletion disappeared before it was published")
        claim = take_claim(self._ctx, task)
        if claim is None:
            return Outcome(Action.PUBLISH_STORED, retry_reason="deletion was claimed or replaced meanwhile")
        task.holds_claim = True
        task.write_id = claim.write_id
        task.uncertain = publication_uncertain(claim.uncertain, state, task.token)
        self._ctx.index.clear(task.ref)
        return Outcome(Action.PUBLISH_STORED, removal=self._removal(task, state, state.deletion))
