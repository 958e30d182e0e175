"""local.benchmark's command line, target formatting and busy-machine warning (no benchmark is run)."""

from __future__ import annotations

import pytest

from local import benchmark
from local.benchmark import busy_warning, target


@pytest.mark.parametrize(
    ("value", "limit", "at_most", "unit", "expected"),
    [
        (1.16, 1.5, True, "", "target <= 1.5"),
        (1.5, 1.5, True, "", "target <= 1.5"),  # exactly on target meets it
        (1.51, 1.5, True, "", "target <= 1.5 MISSED"),
        (1.39, 1.2, True, "", "target <= 1.2 MISSED"),
        (100.0, 90.0, False, "%", "target >= 90%"),
        (88.0, 90.0, False, "%", "target >= 90% MISSED"),
    ],
)
def test_target(value: float, limit: float, at_most: bool, unit: str, expected: str) -> None:
    assert target(value, limit, at_most=at_most, unit=unit) == expected


def test_help_lists_every_benchmark_and_the_make_target(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        benchmark.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for name in ("P1", "P2", "P3", "P4", "P5", "P6", "P7"):
        lines = [line for line in out.splitlines() if line.strip().startswith(name + " ")]
        assert len(lines) == 1, (name, out)
    assert "make benchmark" in out
    assert f"target <= {benchmark.COLD_START_RATIO_TARGET:g}" in out


def test_an_unknown_benchmark_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    monkeypatch.setattr(
        benchmark, "BENCHMARKS", {name: lambda n=name, **_options: ran.append(n) for name in benchmark.BENCHMARKS}
    )
    monkeypatch.setattr(benchmark, "busy_warning", lambda: None)
    with pytest.raises(SystemExit) as done:
        benchmark.main(["p1", "p9"])
    assert done.value.code == 2 and ran == []
    assert "unknown benchmark(s) p9" in capsys.readouterr().err
    assert benchmark.main(["P3", "p1"]) == 0 and ran == ["p3", "p1"]  # any case, in the order given
    assert benchmark.main([]) == 0 and ran[2:] == ["p1", "p2", "p7", "p3", "p4", "p5", "p6"]  # P7 beside P2


def test_busy_warning() -> None:
    assert busy_warning(load=1.9, cores=2, steal_share=0.0) is None
    loaded = busy_warning(load=3.5, cores=2, steal_share=0.0)
    assert loaded is not None and loaded.startswith("WARNING") and "load average 3.50 above the 2 core(s)" in loaded
    stolen = busy_warning(load=0.5, cores=2, steal_share=0.2)
    assert stolen is not None and "20% of CPU time stolen" in stolen


def test_the_warning_is_printed_before_the_figures(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(benchmark, "BENCHMARKS", {"p2": lambda: print("P2  figure")})
    monkeypatch.setattr(benchmark, "busy_warning", lambda: "WARNING: busy")
    benchmark.main(["p2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["WARNING: busy", "P2  figure"]
    assert len(lines) == 3 and lines[2].startswith("    (P2 took ")  # how long each took: the budget


def test_the_scaling_curve_option_reaches_p4(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, ...]] = []

    def p4(curve: tuple[int, ...]) -> None:
        seen.append(curve)

    monkeypatch.setattr(benchmark, "BENCHMARKS", {**benchmark.BENCHMARKS, "p4": p4})
    monkeypatch.setattr(benchmark, "busy_warning", lambda: None)
    assert benchmark.main(["p4", "--curve", "250,1000,4000,10000"]) == 0
    assert benchmark.main(["p4"]) == 0
    assert seen == [(250, 1000, 4000, 10000), benchmark.DEFAULT_CURVE]
    with pytest.raises(SystemExit):
        benchmark.main(["p4", "--curve", "many"])
