"""The cost simulation's claims on a short day (the full day: python -m local.cost_sim)."""

from __future__ import annotations

from local.cost_sim import simulate


def test_bursts_are_labeled_without_burning_receives_at_a_fraction_of_always_on() -> None:
    result = simulate(
        ["00:30", "02:30"], burst_size=120, start_minutes=6, idle_minutes=15, images_per_minute=60, hours=4
    )
    assert result.labeled == result.images == 240
    assert result.receives_while_not_running == 0
    assert result.starts == 2 and result.stops == 2
    # Two starts of 6 min, ~2 min of labeling, 15 idle, ~1 stopping, billed pessimistically: under an hour of 4.
    assert result.billed_hours < 1.0
    assert 6 <= result.worst_first_image_wait_minutes <= 8  # the next manager tick + the model's start
