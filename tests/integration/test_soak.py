"""The soak's invariant on a small N, every fault type on (the full run: python -m local.soak)."""

from __future__ import annotations

import pytest

from local.soak import SoakConfig, print_accounting, run


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_small_soak_accounts_for_every_object(capsys: pytest.CaptureFixture[str]) -> None:
    # Fault rates well above the defaults so that a small N still meets each fault.
    config = SoakConfig(
        images=80,
        seed=11,
        throttle_rate=0.15,
        dynamodb_throttle_rate=0.08,
        put_events_failure_rate=0.1,
        duplicate_rate=0.15,
        out_of_order_rate=0.1,
        bad_rate=0.3,
        not_ready_every_seconds=6.0,
        not_ready_seconds=0.5,
        burst_every_seconds=5.0,
        burst_seconds=0.3,
        max_seconds=240.0,
    )
    account = run(config)
    print_accounting(config, account)
    assert account.ok, account.problems
    kinds = {kind for kind, _ in account.rows}
    assert {"good", "good (superseded)", "nonimage", "invalid message"} <= kinds  # the faults were met
    assert kinds & {"empty", "corrupt", "oversized", "tiny", "deleted"}
    assert sum(s["item_failures"] for s in account.worker_stats) > 0  # retries happened
    labeled = sum(count for (kind, outcome), count in account.rows.items() if outcome == "LABELED")
    assert labeled > 40
