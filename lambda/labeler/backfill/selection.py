"""Which listed objects a batch sends: the job's selection, the objects' current versions, the skip rules.

Each function settles the ``outcome`` of the objects still open (an empty
outcome): ``skipped`` with the rule's reason, or ``enqueued``.
"""

from __future__ import annotations

from collections.abc import Sequence

from labeler.backfill.job_input import Job
from labeler.backfill.ledger import ENQUEUED, SKIPPED, Item, Outcome
from labeler.backfill.ports import ImageObjects, ResultReads
from labeler.domain import backfill_rules as rules
from labeler.domain.stored_state import StoredState


def select(job: Job, item: Item) -> Outcome:
    """The job's prefix and selection (suffix, LastModified window, size bounds)."""
    if not item.key.startswith(job.prefix):
        return Outcome(item, SKIPPED, "outside the prefix")
    reason = job.selection.reason_to_skip(item.key, item.size, item.last_modified)
    return Outcome(item, SKIPPED, reason) if reason else Outcome(item, "")


def current_versions(objects: ImageObjects, job: Job, pending: Sequence[Outcome]) -> None:
    """A listing (listObjectsV2) has no versionId: HeadObject names the current version, as a notification would."""
    if not pending or not objects.is_versioned(job.bucket):
        return
    for outcome in pending:
        if outcome.item.version_id is not None:
            continue  # an inventory row names its version
        head = objects.head(job.bucket, outcome.item.key)
        if head is None:
            outcome.outcome, outcome.reason = SKIPPED, rules.SKIP_GONE
            continue
        outcome.item.version_id = str(head.get("VersionId") or "") or None
        outcome.item.etag = str(head.get("ETag", outcome.item.etag)).strip('"')
        outcome.item.size = int(head.get("ContentLength", outcome.item.size))


def apply_skip_rules(
    results: ResultReads, objects: ImageObjects, model: str, job: Job, pending: Sequence[Outcome]
) -> None:
    """Each open object against its stored result of ``model``: skipped (and why), or enqueued."""
    states = results.current_states([(job.bucket, o.item.key, model) for o in pending])
    for outcome in pending:
        item = outcome.item
        state = states.get((job.bucket, item.key, model))
        kind = rules.classify(item.version_id, item.etag, (), state)
        if kind == rules.OTHER and state is not None and _is_non_current(objects, job.bucket, item, state.version_id):
            kind = rules.OLDER  # the stored version exists and is not the current one: it is older
        reason = _skip_reason(results, model, job, item, kind)
        if reason:
            outcome.outcome, outcome.reason = SKIPPED, reason
        else:
            outcome.outcome = ENQUEUED
            outcome.replaces = _replaced(kind, state)


def _skip_reason(results: ResultReads, model: str, job: Job, item: Item, kind: str) -> str | None:
    if kind == rules.LABELED and not job.force:
        return rules.SKIP_LABELED
    if kind == rules.OTHER:
        return rules.SKIP_OTHER_VERSION
    if job.stale and kind != rules.NEW:
        return rules.SKIP_NOT_STALE
    if job.stale and not any(arn != model for arn in results.model_versions(job.bucket, item.key)):
        return rules.SKIP_NEVER_LABELED
    return None


def _replaced(kind: str, state: StoredState | None) -> str | None:
    return state.version_id if kind == rules.OLDER and state is not None else None


def _is_non_current(objects: ImageObjects, bucket: str, item: Item, stored_version: str | None) -> bool:
    if item.version_id is None or stored_version is None or stored_version == item.version_id:
        return False
    return objects.head(bucket, item.key, stored_version) is not None
