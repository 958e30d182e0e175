"""Fixtures shared by the labeler's integration tests."""

from __future__ import annotations

import pytest

from local.fakes.canned_models import BigResultModel
from tests.support.big_results import SCALES, big_result_model


@pytest.fixture(params=SCALES)
def big_model(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> BigResultModel:
    """A model whose result spans continuation items (see tests/support/big_results.py for the two scales)."""
    return big_result_model(request.param, monkeypatch)
