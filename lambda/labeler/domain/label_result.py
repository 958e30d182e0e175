"""The labeling result of one object version by one model version."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from labeler.domain.removal import Deletion
from labeler.domain.s3_notification import S3ObjectEvent
from labeler.domain.timestamps import iso_timestamp

LABELED = "LABELED"
FAILED = "FAILED"

# What identifies a result and the object version it is about: the same
# attribute names in the stored item and in the event (name -> field).
IDENTITY_ATTRIBUTES = {
    "resultId": "result_id",
    "bucket": "bucket",
    "key": "key",
    "versionId": "version_id",
    "etag": "etag",
    "size": "size",
    "sequencer": "sequencer",
    "projectVersionArn": "project_version_arn",
}


class ModelSettings(Protocol):
    """What a result records of the model call that made it (``LabelerConfig`` has these)."""

    @property
    def project_version_arn(self) -> str: ...

    @property
    def min_confidence(self) -> float | None: ...

    @property
    def max_results(self) -> int | None: ...


def distinct_label_names(custom_labels: list[dict[str, Any]]) -> list[str]:
    """Distinct names, highest confidence first (ties keep Rekognition's order)."""
    best: dict[str, float] = {}
    for label in custom_labels:
        name = str(label.get("Name", ""))
        confidence = float(label.get("Confidence", 0))
        if name not in best or confidence > best[name]:
            best[name] = confidence
    order = {name: index for index, name in enumerate(best)}
    return sorted(best, key=lambda name: (-best[name], order[name]))


def best_confidences(custom_labels: list[dict[str, Any]]) -> dict[str, float]:
    """Each label name's highest confidence in the image."""
    best: dict[str, float] = {}
    for label in custom_labels:
        name = str(label.get("Name", ""))
        best[name] = max(best.get(name, float("-inf")), float(label.get("Confidence", 0)))
    return best


@dataclass(frozen=True)
class LabelResult:
    result_id: str
    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int
    sequencer: str | None
    project_version_arn: str
    min_confidence: float | None
    max_results: int | None
    status: str
    processed_at: str
    custom_labels: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    # Set once the object was deleted: the result is kept, its labels no longer indexed.
    deletion: Deletion | None = None

    @property
    def label_names(self) -> list[str]:
        return distinct_label_names(self.custom_labels)

    @property
    def label_count(self) -> int:
        return len(self.custom_labels)

    def identity(self) -> dict[str, Any]:
        """The identifying attributes, by their stored and published names."""
        return {name: getattr(self, field_name) for name, field_name in IDENTITY_ATTRIBUTES.items()}

    @classmethod
    def _base(cls, obj: S3ObjectEvent, config: ModelSettings, processed_at: datetime) -> dict[str, Any]:
        return {
            "result_id": obj.result_id(config.project_version_arn),
            "bucket": obj.bucket,
            "key": obj.key,
            "version_id": obj.version_id,
            "etag": obj.etag,
            "size": obj.size,
            "sequencer": obj.sequencer,
            "project_version_arn": config.project_version_arn,
            "min_confidence": config.min_confidence,
            "max_results": config.max_results,
            "processed_at": iso_timestamp(processed_at),
        }

    @classmethod
    def labeled(
        cls,
        obj: S3ObjectEvent,
        config: ModelSettings,
        custom_labels: list[dict[str, Any]],
        processed_at: datetime,
    ) -> LabelResult:
        return cls(**cls._base(obj, config, processed_at), status=LABELED, custom_labels=custom_labels)

    @classmethod
    def failed(
        cls, obj: S3ObjectEvent, config: ModelSettings, code: str, message: str, processed_at: datetime
    ) -> LabelResult:
        return cls(
            **cls._base(obj, config, processed_at),
            status=FAILED,
            error={"code": code, "message": message},
        )
