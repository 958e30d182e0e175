"""The command line's test kit: run `autolabel` in-process and capture what it prints (fixtures for conftest)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from autolabel.cli import main
from autolabel.config import OUTPUT_ENVIRONMENT, STACK_NAME_VARIABLE


@dataclass
class Run:
    code: int
    out: str
    err: str


RunCli = Callable[..., Run]


@pytest.fixture(autouse=True)
def no_autolabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*OUTPUT_ENVIRONMENT.values(), STACK_NAME_VARIABLE, "AWS_REGION", "AWS_CONFIG_FILE"]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    def run(*argv: str, clients: dict[str, Any] | None = None) -> Run:
        factory = (lambda service: clients[service]) if clients is not None else None
        code = main(list(argv), client_factory=factory)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
