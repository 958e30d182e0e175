"""A model whose answer overflows one result item, at two scales.

``small``: the store's item budget lowered to 24 KB and short polygons, so the
result spans continuation items while moto serializes little (seconds).
``full``: DynamoDB's real 400 KB limit, 120 labels with 150-point polygons
(minutes in moto: ``make soak`` runs it, marked ``slow``).
"""

from __future__ import annotations

import pytest

from labeler.adapters import result_items
from local.fakes.canned_models import BigResultModel

SMALL_ITEM_BUDGET_BYTES = 24 * 1024
SCALES = ["small", pytest.param("full", marks=pytest.mark.slow)]


def big_result_model(scale: str, monkeypatch: pytest.MonkeyPatch) -> BigResultModel:
    if scale == "small":
        monkeypatch.setattr(result_items, "ITEM_BUDGET_BYTES", SMALL_ITEM_BUDGET_BYTES)
        return BigResultModel(points=12)
    return BigResultModel()
