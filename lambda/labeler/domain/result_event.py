"""The outbound event: a result as the EventBridge entry consumers receive (docs/events.md).

Kept under the PutEvents entry size limit by dropping polygons, then the
least confident labels; ``labelNames``, ``labelConfidence`` and ``labelCount``
stay complete.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from labeler.domain.label_result import FAILED, LabelResult, best_confidences
from labeler.domain.removal import Removal
from shared.event_entry import MAX_ENTRY_BYTES, EventEntry, entry_size

SCHEMA_VERSION = "1"
DETECTED = "Custom Labels Detected"
FAILED_DETAIL_TYPE = "Custom Labels Failed"
REMOVED = "Custom Labels Removed"
MAX_ERROR_MESSAGE_CHARS = 2000


def _dumps(detail: dict[str, Any]) -> str:
    return json.dumps(detail, separators=(",", ":"), ensure_ascii=False)


def _common(result: LabelResult) -> dict[str, Any]:
    return {"schemaVersion": SCHEMA_VERSION, **result.identity()}


def build_entry(result: LabelResult, source: str) -> EventEntry:
    if result.status == FAILED:
        error = dict(result.error or {})
        error["message"] = str(error.get("message", ""))[:MAX_ERROR_MESSAGE_CHARS]
        detail = {**_common(result), "error": error, "processedAt": result.processed_at}
        return EventEntry(FAILED_DETAIL_TYPE, detail, _dumps(detail), result.result_id)
    detail = {
        **_common(result),
        "minConfidence": result.min_confidence,
        "customLabels": result.custom_labels,
        "labelNames": result.label_names,
        # label name -> its highest confidence: lets an EventBridge pattern say
        # "scratch at 90 or more" (detail.labelConfidence.scratch >= 90).
        "labelConfidence": best_confidences(result.custom_labels),
        "labelCount": result.label_count,
        "processedAt": result.processed_at,
        "truncated": False,
    }
    detail_json = _dumps(detail)
    if entry_size(source, DETECTED, detail_json) <= MAX_ENTRY_BYTES:
        return EventEntry(DETECTED, detail, detail_json, result.result_id)
    truncated = _truncate(detail, source)
    return EventEntry(DETECTED, truncated, _dumps(truncated), result.result_id)


def _truncate(detail: dict[str, Any], source: str) -> dict[str, Any]:
    """Drop polygons first, then the lowest-confidence labels, until it fits.

    ``labelNames`` and ``labelCount`` stay complete; DynamoDB has everything.
    """
    slim = dict(detail, truncated=True)
    labels = copy.deepcopy(detail["customLabels"])
    for label in labels:
        geometry = label.get("Geometry")
        if isinstance(geometry, dict):
            geometry.pop("Polygon", None)

    def fits(kept: list[dict[str, Any]]) -> bool:
        return entry_size(source, DETECTED, _dumps(dict(slim, customLabels=kept))) <= MAX_ENTRY_BYTES

    if fits(labels):
        return dict(slim, customLabels=labels)
    # Keep the k most confident labels (in their original order); the largest
    # k that fits is found by bisection.
    ranked = sorted(range(len(labels)), key=lambda i: -float(labels[i].get("Confidence", 0)))

    def keep(count: int) -> list[dict[str, Any]]:
        chosen = set(ranked[:count])
        return [label for index, label in enumerate(labels) if index in chosen]

    low, high = 0, len(labels)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(keep(middle)):
            low = middle
        else:
            high = middle - 1
    return dict(slim, customLabels=keep(low))


def build_removed_entry(removal: Removal, source: str) -> EventEntry:
    """The ``Custom Labels Removed`` entry; its id is the deletion's ``removalId``.

    Small by construction: label names only (at most a few hundred), no labels.
    """
    deletion = removal.deletion
    detail = {
        "schemaVersion": SCHEMA_VERSION,
        "resultId": removal.result_id,
        "removalId": deletion.removal_id,
        "bucket": removal.bucket,
        "key": removal.key,
        "versionId": removal.version_id,
        "projectVersionArn": removal.project_version_arn,
        "labelNames": removal.label_names,
        # The deletion's: consumers order every event of a key by detail.sequencer (docs/events.md).
        "sequencer": deletion.sequencer,
        "deletion": {
            "eventName": deletion.event_name,
            "versionId": deletion.version_id,
            "sequencer": deletion.sequencer,
        },
        "deletedAt": deletion.deleted_at,
    }
    return EventEntry(REMOVED, detail, _dumps(detail), deletion.removal_id)
