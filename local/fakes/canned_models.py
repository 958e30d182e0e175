"""Fake models that answer without reading the image: scripted, canned, slow, or too big for one item.

Each fills the detector's client port (``labeler.ports.CustomLabelsClient``),
declared so that mypy checks it; ``fake_model.FakeCustomLabelsModel`` is the one
that looks at the pixels.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from labeler.ports import CustomLabelsClient
from local.fakes.fake_model import synthetic_labels
from local.fakes.faults import client_error


class ScriptedRekognition(CustomLabelsClient):
    """DetectCustomLabels returning, for each (bucket, key, version), the labels set with ``script``."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        # Called with (bucket, key, version) before answering; may raise AssertionError.
        self.on_call: Callable[[str, str, str], None] | None = None

    def script(self, bucket: str, key: str, version_id: str, labels: list[dict[str, Any]]) -> None:
        self._answers[(bucket, key, version_id)] = copy.deepcopy(labels)

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        s3_object = request["Image"]["S3Object"]
        target = (s3_object["Bucket"], s3_object["Name"], s3_object.get("Version", ""))
        with self._lock:
            self.calls.append(target)
        if self.on_call is not None:
            self.on_call(*target)
        if target not in self._answers:
            raise client_error("InvalidS3ObjectException", f"no such object version {target}")
        return {"CustomLabels": copy.deepcopy(self._answers[target])}


class FixedLatencyModel(CustomLabelsClient):
    """DetectCustomLabels that answers a canned result after a fixed latency (no image decoding:
    the emulated model's pixel loop would hold the GIL and measure itself, not the handler)."""

    ANSWER = {
        "CustomLabels": [
            {
                "Name": "scratch",
                "Confidence": 97.5,
                "Geometry": {"BoundingBox": {"Width": 0.3, "Height": 0.3, "Left": 0.1, "Top": 0.1}},
            }
        ]
    }

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.calls = 0

    def detect_custom_labels(self, **_request: Any) -> dict[str, Any]:
        self.calls += 1
        time.sleep(self.latency)
        return self.ANSWER


class CannedLabelsModel(CustomLabelsClient):
    """DetectCustomLabels answering ``count`` distinct labels at once (a third with polygons), for P7."""

    def __init__(self, count: int) -> None:
        self.count = count

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        s3_object = request["Image"]["S3Object"]
        return {"CustomLabels": synthetic_labels(s3_object, self.count) if self.count else []}


class BigResultModel(CustomLabelsClient):
    """Answers many labels of ONE name, each with a large polygon: a result over the item budget, 1 index item."""

    def __init__(self, points: int = 150) -> None:
        self.name = "scratch"
        self.points = points
        self.calls: list[dict[str, Any]] = []

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        polygon = [{"X": 0.123456789 + i * 1e-6, "Y": 0.987654321 - i * 1e-6} for i in range(self.points)]
        return {
            "CustomLabels": [
                {
                    "Name": self.name,
                    "Confidence": 90.0 - n * 0.01,
                    "Geometry": {
                        "BoundingBox": {"Width": 0.1, "Height": 0.1, "Left": 0.1, "Top": 0.1},
                        "Polygon": polygon,
                    },
                }
                for n in range(120)
            ]
        }
