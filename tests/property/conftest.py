"""Hypothesis profiles of the property tests.

- ``ci`` (default, what ``make test`` runs): derandomized, so every run tries
  the same examples; small enough for the suite's time budget on 2 cores.
- ``deep``: many more and longer random runs (``make property``); the seed is
  printed, ``HYPOTHESIS_SEED=<n>`` replays it.

No example database in either: a failure is reproduced from the printed seed
or blob, and nothing is written to the work tree.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_BASE = settings(
    deadline=None,  # moto's speed varies; the budget is per profile, not per example
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
    # No "explain" phase: it reruns the failing example many times under coverage.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)

settings.register_profile(
    "ci", _BASE, max_examples=30, stateful_step_count=12, derandomize=True, report_multiple_bugs=False
)
settings.register_profile("deep", _BASE, max_examples=400, stateful_step_count=30)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
