"""docs/event-schema.json covers Model State Changed (as the manager publishes it) and bounds minConfidence."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from manager.config import ManagerConfig
from manager.handler import MODEL_STATE_CHANGED, Manager
from shared.event_publisher import EventPublisher

DOCS = Path(__file__).resolve().parents[3] / "docs"
SCHEMA = json.loads((DOCS / "event-schema.json").read_text())
ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/p.1/1700000000000"


class CapturingEventBridge:
    """put_events as EventBridge answers it when every entry is accepted; keeps what was sent."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i, _ in enumerate(Entries)]}


def announced(previous: str | None, status: str, max_units: int | None) -> dict[str, Any]:
    """The Model State Changed event exactly as the manager sends it to PutEvents."""
    events = CapturingEventBridge()
    config = ManagerConfig(ARN, None, "q", "esm", "state", "bus", min_inference_units=2, max_inference_units=max_units)
    manager = Manager(
        config=config,
        model=None,  # type: ignore[arg-type]
        queue=None,  # type: ignore[arg-type]
        trigger=None,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        publisher=EventPublisher(events, "bus", "autolabel"),
        clock=lambda: datetime(2026, 11, 24, 9, 1, tzinfo=UTC),
    )
    manager._announce(previous, status, "work is waiting")
    (entry,) = events.entries
    assert entry["DetailType"] == MODEL_STATE_CHANGED
    return {"detail-type": entry["DetailType"], "detail": json.loads(entry["Detail"])}


@pytest.mark.parametrize(("previous", "status", "max_units"), [("STOPPED", "STARTING", None), (None, "STOPPING", 4)])
def test_the_managers_events_follow_the_schema(previous: str | None, status: str, max_units: int | None) -> None:
    jsonschema.validate(announced(previous, status, max_units), SCHEMA)


def test_the_schema_refuses_a_malformed_model_event() -> None:
    event = announced("STOPPED", "STARTING", None)
    for broken in ({"status": "RUNNING"}, {"minInferenceUnits": 0}, {"at": "yesterday"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**event, "detail": {**event["detail"], **broken}}, SCHEMA)


def test_the_documented_example_follows_the_schema() -> None:
    text = (DOCS / "events.md").read_text()
    section = text[text.index("## Model State Changed") :]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    jsonschema.validate(example, SCHEMA)


@pytest.mark.parametrize("value", [-0.5, 100.5])
def test_min_confidence_is_bounded_to_0_100(value: float) -> None:
    detail_schema = {"$defs": SCHEMA["$defs"], **SCHEMA["$defs"]["detected"]["properties"]["minConfidence"]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(value, detail_schema)
    for ok in (0, 100, None, 55.5):
        jsonschema.validate(ok, detail_schema)


def validate_detail(detail_type: str, detail: dict[str, Any]) -> None:
    """Raise unless ``detail`` is a valid detail of ``detail_type`` in docs/event-schema.json."""
    jsonschema.validate({"detail-type": detail_type, "detail": detail}, SCHEMA)


def _removed_entry(version_id: str | None, sequencer: str | None, event_name: str) -> dict[str, Any]:
    from labeler.domain.removal import Deletion, Removal
    from labeler.domain.result_event import REMOVED, build_removed_entry

    deletion = Deletion("rm1", "2026-11-24T10:20:00.123Z", event_name, version_id, sequencer)
    removal = Removal("r1", "bucket", "dir/a b.png", version_id, ARN, ["scratch", "dent"], deletion)
    entry = build_removed_entry(removal, "autolabel")
    assert entry.detail_type == REMOVED and entry.result_id == "rm1"  # keyed by the deletion, not the result
    assert json.loads(entry.detail_json) == entry.detail
    return entry.detail


@pytest.mark.parametrize(
    ("version_id", "sequencer", "event_name"),
    [
        ("dm1", "0055AED6DCD902A0F1", "ObjectRemoved:DeleteMarkerCreated"),
        ("v1", "0A", "ObjectRemoved:Delete"),
        (None, None, "ObjectRemoved:Delete"),  # unversioned bucket, an emulator without sequencers
    ],
)
def test_built_removed_events_follow_the_schema(version_id: str | None, sequencer: str | None, event_name: str) -> None:
    detail = _removed_entry(version_id, sequencer, event_name)
    validate_detail("Custom Labels Removed", detail)
    assert detail["sequencer"] == detail["deletion"]["sequencer"] == sequencer  # top level too, null when none


def test_the_schema_refuses_a_malformed_removed_event() -> None:
    detail = _removed_entry("dm1", "0A", "ObjectRemoved:DeleteMarkerCreated")
    broken_details = [
        {**detail, "schemaVersion": "2"},
        {**detail, "deletedAt": "yesterday"},
        {**detail, "deletion": {**detail["deletion"], "eventName": "ObjectCreated:Put"}},
        {k: v for k, v in detail.items() if k != "removalId"},
        {k: v for k, v in detail.items() if k != "sequencer"},  # consumers order by detail.sequencer
    ]
    for broken in broken_details:
        with pytest.raises(jsonschema.ValidationError):
            validate_detail("Custom Labels Removed", broken)


def test_the_documented_removed_example_follows_the_schema() -> None:
    text = (DOCS / "events.md").read_text()
    section = text[text.index("## Custom Labels Removed") :]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    assert example["detail-type"] == "Custom Labels Removed"
    jsonschema.validate(example, SCHEMA)
