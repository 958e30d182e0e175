"""A model whose answer overflows one result item, at two scales.

``small``: the store's item budget lowered to 24 KB and short polygons, so the
result spans continuation items while moto serializes little (seconds).
``full``: DynamoDB's real 400 KB limit, 120 labels with 150-point polygons
(minutes in moto: ``make soak`` runs it, marked ``slow``).
"""

from __future__ import annotations

from typing import Any

import pytest

from labeler.adapters import result_items

SMALL_ITEM_BUDGET_BYTES = 24 * 1024
SCALES = ["small", pytest.param("full", marks=pytest.mark.slow)]


class BigResultModel:
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


def big_result_model(scale: str, monkeypatch: pytest.MonkeyPatch) -> BigResultModel:
    if scale == "small":
        monkeypatch.setattr(result_items, "ITEM_BUDGET_BYTES", SMALL_ITEM_BUDGET_BYTES)
        return BigResultModel(points=12)
    return BigResultModel()
