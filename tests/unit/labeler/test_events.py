"""Event details (docs/events.md) and truncation under EventBridge's size limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema

from labeler.config import LabelerConfig
from labeler.domain.label_result import LabelResult
from labeler.domain.result_event import DETECTED, FAILED_DETAIL_TYPE, build_entry
from labeler.domain.s3_notification import S3ObjectEvent
from shared.event_entry import MAX_ENTRY_BYTES
from tests.support.builders import EVENTS_DIR

ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/p.1/1700000000000"
CONFIG = LabelerConfig(ARN, "t", "b", min_confidence=40.0)
OBJ = S3ObjectEvent("ObjectCreated:Put", "bucket", "dir/a b.png", 1234, "etag1", "v1", "0055AED6DCD90281E5")
WHEN = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)
SCHEMA = json.loads((EVENTS_DIR.parent.parent / "docs" / "event-schema.json").read_text())


def label(name: str, confidence: float, polygon_points: int = 0) -> dict[str, Any]:
    geometry: dict[str, Any] = {"BoundingBox": {"Width": 0.1, "Height": 0.1, "Left": 0.2, "Top": 0.3}}
    if polygon_points:
        geometry["Polygon"] = [{"X": i / polygon_points, "Y": 0.5} for i in range(polygon_points)]
    return {"Name": name, "Confidence": confidence, "Geometry": geometry}


def validate(detail_type: str, detail: dict[str, Any]) -> None:
    jsonschema.validate({"detail-type": detail_type, "detail": detail}, SCHEMA)


def test_detected_detail_has_every_contract_field() -> None:
    labels = [label("dent", 80.0), label("scratch", 95.5), label("dent", 90.0)]
    entry = build_entry(LabelResult.labeled(OBJ, CONFIG, labels, WHEN), "autolabel")
    assert entry.detail_type == DETECTED
    assert entry.detail == {
        "schemaVersion": "1",
        "resultId": OBJ.result_id(ARN),
        "bucket": "bucket",
        "key": "dir/a b.png",
        "versionId": "v1",
        "etag": "etag1",
        "size": 1234,
        "sequencer": "0055AED6DCD90281E5",
        "projectVersionArn": ARN,
        "minConfidence": 40.0,
        "customLabels": labels,
        "labelNames": ["scratch", "dent"],
        "labelConfidence": {"dent": 90.0, "scratch": 95.5},  # each name's highest
        "labelCount": 3,
        "processedAt": "2026-11-24T10:00:00.123Z",
        "truncated": False,
    }
    assert json.loads(entry.detail_json) == entry.detail
    validate(DETECTED, entry.detail)


def test_failed_detail_has_every_contract_field() -> None:
    entry = build_entry(
        LabelResult.failed(
            OBJ,
            LabelerConfig(ARN, "t", "b"),
            "InvalidImageFormatException",
            "Request has unsupported image format",
            WHEN,
        ),
        "autolabel",
    )
    assert entry.detail_type == FAILED_DETAIL_TYPE
    assert entry.detail == {
        "schemaVersion": "1",
        "resultId": OBJ.result_id(ARN),
        "bucket": "bucket",
        "key": "dir/a b.png",
        "versionId": "v1",
        "etag": "etag1",
        "size": 1234,
        "sequencer": "0055AED6DCD90281E5",
        "projectVersionArn": ARN,
        "error": {"code": "InvalidImageFormatException", "message": "Request has unsupported image format"},
        "processedAt": "2026-11-24T10:00:00.123Z",
    }
    validate(FAILED_DETAIL_TYPE, entry.detail)


def test_absent_version_sequencer_and_min_confidence_are_null() -> None:
    bare = S3ObjectEvent("ObjectCreated:Put", "bucket", "a.png", 10, "e", None, None)
    detail = build_entry(LabelResult.labeled(bare, LabelerConfig(ARN, "t", "b"), [], WHEN), "autolabel").detail
    assert (detail["versionId"], detail["sequencer"], detail["minConfidence"]) == (None, None, None)
    assert detail["customLabels"] == [] and detail["labelNames"] == [] and detail["labelCount"] == 0
    validate(DETECTED, detail)


def test_polygons_are_dropped_first_when_that_is_enough() -> None:
    labels = [label(f"label-{i}", 50 + i / 10, polygon_points=600) for i in range(30)]
    entry = build_entry(LabelResult.labeled(OBJ, CONFIG, labels, WHEN), "autolabel")
    assert entry.detail["truncated"] is True
    assert entry.size("autolabel") <= MAX_ENTRY_BYTES
    assert len(entry.detail["customLabels"]) == 30  # every label kept, polygons gone
    assert all("Polygon" not in item["Geometry"] for item in entry.detail["customLabels"])
    assert labels[0]["Geometry"]["Polygon"]  # the result itself is untouched
    validate(DETECTED, entry.detail)


def test_lowest_confidence_labels_go_next_and_names_stay_complete() -> None:
    # 1,500 names of 52 characters: labelNames and labelConfidence (about 180 KB) stay, labels go.
    labels = [label(f"label-{i:05d}-{'x' * 40}", confidence=(i * 7919) % 10000 / 100) for i in range(1500)]
    entry = build_entry(LabelResult.labeled(OBJ, CONFIG, labels, WHEN), "autolabel")
    kept = entry.detail["customLabels"]
    assert entry.detail["truncated"] is True
    assert entry.size("autolabel") <= MAX_ENTRY_BYTES
    assert 0 < len(kept) < len(labels)
    dropped_best = max(x["Confidence"] for x in labels if x not in kept)
    assert min(x["Confidence"] for x in kept) >= dropped_best  # only the least confident went
    assert [x for x in labels if x in kept] == kept  # Rekognition's order is kept
    assert entry.detail["labelCount"] == 1500 and len(entry.detail["labelNames"]) == 1500
    assert entry.detail["labelConfidence"] == {x["Name"]: x["Confidence"] for x in labels}  # complete, for rules
