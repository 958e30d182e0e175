"""Every command in README.md and docs/*.md is copy-pasteable as written.

Nothing is executed and nothing touches the network. Each fenced ``bash``
block must pass ``bash -n``; each command in it, and each inline code span
that starts with a command, is checked against what it names:

- ``autolabel ...`` / ``.venv/bin/autolabel ...``: parsed by the real argparse parser;
- ``[.venv/bin/]python -m M args``: M is importable and runnable (``main`` and a
  ``__main__`` guard, or a package ``__main__``), and its own parser accepts the args;
- ``make T VAR=...``: T is a Makefile target and VAR is used by the Makefile;
- ``npx cdk X -c key=value``: X is a CDK CLI command and every key a context key;
- ``aws ...``, ``npm ...``, ``pip ...``: need credentials or a registry; syntax only.

Fenced ``python`` blocks must compile, ``json`` blocks must parse.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import itertools
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from autolabel.cli import build_parser
from infra.settings import SettingsError, check_context_keys

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)*)`")

AUTOLABEL = {"autolabel", ".venv/bin/autolabel"}
PYTHON = {".venv/bin/python"}  # what `make setup` installs into; a bare `python` may lack everything
BARE_PYTHON = {"python", "python3"}
# Commands we only syntax-check: they need AWS credentials or a package registry.
EXTERNAL = {"aws", "npm", "pip", "export", "source", "cd"}
CDK_COMMANDS = {"synth", "deploy", "bootstrap", "diff", "destroy", "ls", "list", "watch", "context"}
PUNCTUATION = set("();<>|&")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclasses.dataclass(frozen=True)
class Command:
    where: str  # file:line
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


@dataclasses.dataclass(frozen=True)
class Block:
    where: str
    lang: str
    body: str


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def blocks() -> list[Block]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            where = f"{path.relative_to(ROOT)}:{_line(text, match.start())}"
            found.append(Block(where, match["lang"], match["body"]))
    return found


def _simple_commands(tokens: list[str]) -> Iterator[list[str]]:
    """Split a token list at shell operators, dropping redirections and their targets."""
    current: list[str] = []
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif set(token) <= PUNCTUATION and ("<" in token or ">" in token):  # > file, >> file, < file
            skip_next = True
        elif set(token) <= PUNCTUATION or token in ("{", "}"):  # ; && || | & ( ) ); { }
            if current:
                yield current
            current = []
        else:
            current.append(token)
    if current:
        yield current


def _without_placeholders(argv: list[str]) -> list[str]:
    """``[--model ARN]`` (optional, shown in brackets) is checked as given; ``...`` is dropped."""
    out = []
    for token in argv:
        bare = token.removeprefix("[").removesuffix("]")
        if bare and bare != "...":
            out.append(bare)
    return out


def fenced_commands() -> list[Command]:
    commands = []
    for block in blocks():
        if block.lang not in ("bash", "sh", "shell"):
            continue
        logical = block.body.replace("\\\n", " ")
        functions: set[str] = set()
        for number, line in enumerate(logical.splitlines()):
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            tokens = list(lexer)
            # out() { ...; }: a function the block defines, called later in the block
            functions.update(t for t, after in itertools.pairwise(tokens) if after == "()")
            for argv in _simple_commands(tokens):
                if ASSIGNMENT.match(argv[0]) or argv[0] in functions:
                    continue
                commands.append(Command(f"{block.where}+{number + 1}", tuple(_without_placeholders(argv))))
    return commands


def _alternatives(argv: list[str]) -> Iterator[list[str]]:
    """Prose notation: ``model start|stop`` stands for two commands."""
    for index, token in enumerate(argv):
        if "|" in token:
            for choice in token.split("|"):
                yield from _alternatives([*argv[:index], choice, *argv[index + 1 :]])
            return
    yield argv


def inline_commands() -> list[Command]:
    commands = []
    starts = AUTOLABEL | PYTHON | BARE_PYTHON | EXTERNAL | {"make", "npx", "cdk"}
    for path in DOCS:
        text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text())
        for match in INLINE.finditer(text):
            words = shlex.split(" ".join(match.group(1).split()))
            if len(words) < 2 or words[0] not in starts:
                continue  # a path or a program named in prose, not a command
            if words[0] in PYTHON | BARE_PYTHON and words[1] != "-m":
                continue
            where = f"{path.relative_to(ROOT)}:{_line(text, match.start())}"
            for argv in _alternatives(_without_placeholders(words)):
                commands.append(Command(where, tuple(argv)))
    return commands


ALL_COMMANDS = fenced_commands() + inline_commands()


def _ids(items: list[Any]) -> list[str]:
    return [str(item)[:90] for item in items]


# --- checks -------------------------------------------------------------------------------------------


class _Parsed(Exception):
    pass


def _check_autolabel(argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as done:  # --help / --version
        assert done.code in (0, None), argv
    except Exception as error:  # autolabel's parser raises its usage error instead of exiting
        pytest.fail(f"autolabel does not accept {argv}: {getattr(error, 'message', error)}")


def _check_runnable(module_name: str) -> str:
    """``python -m M`` runs something: a package with ``__main__``, or a module with a main() it calls."""
    main_spec = importlib.util.find_spec(f"{module_name}.__main__") if "." not in module_name else None
    if main_spec is not None and main_spec.origin:
        return Path(main_spec.origin).read_text()
    spec = importlib.util.find_spec(module_name)
    assert spec is not None and spec.origin, f"no module {module_name}"
    source = Path(spec.origin).read_text()
    assert 'if __name__ == "__main__":' in source, f"{module_name} does nothing under python -m"
    assert callable(getattr(importlib.import_module(module_name), "main", None)), f"{module_name} has no main()"
    return source


def _check_module(module_name: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if module_name == "autolabel":
        _check_autolabel(args)
        return
    source = _check_runnable(module_name)
    module = importlib.import_module(module_name)
    # Run main() only as far as its argument parsing: every local.* entry point parses first.
    assert "parse_args(" in source, f"{module_name}.main() takes no arguments (no argparse)"

    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *a: Any, **k: Any) -> NoReturn:
        raise _Parsed(original(self, *a, **k))

    def error(self: argparse.ArgumentParser, message: str) -> NoReturn:
        pytest.fail(f"python -m {module_name} does not accept {args}: {message}")

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(argparse.ArgumentParser, "error", error)
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises((_Parsed, SystemExit)) as stopped:
        module.main(args)
    if isinstance(stopped.value, SystemExit):
        assert stopped.value.code in (0, None)


def _makefile() -> tuple[set[str], str]:
    text = (ROOT / "Makefile").read_text()
    targets = {m[1] for m in re.finditer(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.MULTILINE)}
    return targets, text


def _context_keys(args: list[str]) -> list[str]:
    keys = []
    for index, token in enumerate(args):
        if token in ("-c", "--context") and index + 1 < len(args):
            keys.append(args[index + 1].split("=", 1)[0])
    return keys


def _check_context(keys: list[str]) -> None:
    try:
        check_context_keys(keys)
    except SettingsError as error:
        pytest.fail(str(error))


def _check_make(args: list[str]) -> None:
    targets, text = _makefile()
    assert args, "make without a target"
    for arg in args:
        if "=" in arg:
            variable, value = arg.split("=", 1)
            assert f"$({variable})" in text or f"$(filter 1 true yes,$({variable}))" in text, (
                f"the Makefile does not use {variable}"
            )
            if variable == "CDK_ARGS":
                _check_context(_context_keys(shlex.split(value)))
        else:
            assert arg in targets, f"no make target {arg!r} (targets: {sorted(targets)})"


def _check_cdk(args: list[str]) -> None:
    if not args:  # `npx cdk ...` named in prose
        return
    assert args[0] in CDK_COMMANDS, f"not a CDK CLI command: {args}"
    _check_context(_context_keys(args))


def check(command: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    program, *args = command.argv
    if program in PYTHON and len(args) == 2:  # `python -m module` named in prose: runnable is enough
        _check_runnable(args[1])
    elif program in AUTOLABEL:
        _check_autolabel(args)
    elif program in PYTHON:
        assert args[:1] == ["-m"] and len(args) >= 2, "python commands are `python -m module ...`"
        _check_module(args[1], args[2:], monkeypatch)
    elif program == "make":
        _check_make(args)
    elif program == "npx":
        assert args[:1] == ["cdk"], "npx runs the pinned CDK CLI only"
        _check_cdk(args[1:])
    elif program in BARE_PYTHON:
        pytest.fail("write .venv/bin/python: the project and its pins are installed there (make setup)")
    elif program == "cdk":
        pytest.fail("the CDK CLI is pinned in node_modules: write `npx cdk ...` (or a make target)")
    else:
        assert program in EXTERNAL, f"unknown command {program!r}: add a check for it"


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=_ids(ALL_COMMANDS))
def test_command(command: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched:
        check(command, patched)


def test_the_commands_that_matter_are_found() -> None:
    """The extraction itself: if it silently found nothing, every test above would pass."""
    programs = {c.argv[0] for c in ALL_COMMANDS}
    assert {"make", "autolabel", ".venv/bin/autolabel", ".venv/bin/python", "npx", "aws"} <= programs
    joined = {shlex.join(c.argv) for c in ALL_COMMANDS}
    assert "autolabel show s3://my-bucket/line-1/part.png --model ARN" in joined
    assert "autolabel model start" in joined and "autolabel model stop" in joined  # `model start|stop`
    assert "make local SERVE=1" in joined
    assert len(ALL_COMMANDS) > 40


SHELL_BLOCKS = [b for b in blocks() if b.lang in ("bash", "sh", "shell")]


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.where for b in SHELL_BLOCKS])
def test_shell_block_syntax(block: Block) -> None:
    result = subprocess.run(["bash", "-n"], input=block.body, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{block.where}: {result.stderr}"


CODE_BLOCKS = [b for b in blocks() if b.lang in ("python", "json")]


@pytest.mark.parametrize("block", CODE_BLOCKS, ids=[b.where for b in CODE_BLOCKS])
def test_code_block(block: Block) -> None:
    if block.lang == "python":
        compile(block.body, block.where, "exec")
    else:
        json.loads(block.body)


def test_every_fenced_block_has_a_known_language() -> None:
    """An unlabeled block would escape every check above."""
    unknown = [b.where for b in blocks() if b.lang not in ("bash", "python", "json", "text", "")]
    assert not unknown, f"label these fences bash, python, json or text (or nothing, for output): {unknown}"


@pytest.mark.parametrize(
    "bad",
    [
        "autolabel show",  # missing URI
        "autolabel find scratch --min-confidnece 80",
        "autolabel model restart",
        ".venv/bin/python -m local.cost_sim --burst-count 3",
        ".venv/bin/python -m local.nothing",
        "make deplyo",
        "make local SERVER=1",
        'make synth CDK_ARGS="-c projectVersionArm=arn"',
        "npx cdk deploy -c minConfidnece=80",
        "cdk synth",
        "python -m local.benchmark",
        "terraform apply",
    ],
)
def test_a_wrong_command_fails(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched, pytest.raises((pytest.fail.Exception, AssertionError)):
        check(Command("example", tuple(shlex.split(bad))), patched)
