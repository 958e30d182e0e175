"""README's "Project layout" table matches the tree: everything it names exists, nothing is left out."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = re.compile(r"`([^`]+)`")
BRACES = re.compile(r"\{([^}]*)\}")
NAMED = (".py", ".md", ".json", "/")


def _expand(path: str) -> list[str]:
    """``lambda/labeler/{detector,store}.py`` -> both paths."""
    match = BRACES.search(path)
    if not match:
        return [path]
    return [p for choice in match[1].split(",") for p in _expand(path[: match.start()] + choice + path[match.end() :])]


def layout() -> list[tuple[list[str], list[str]]]:
    """(paths of the first column, code spans of the second) for each row."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Project layout", 1)[1].split("\n\n", 2)[1]
    rows = []
    for line in section.splitlines()[2:]:
        _, path_cell, what_cell, _ = line.split("|")
        paths = [p for span in CODE.findall(path_cell) for p in _expand(span)]
        rows.append((paths, CODE.findall(what_cell)))
    return rows


def test_the_table_is_found() -> None:
    rows = layout()
    assert len(rows) > 10 and ["autolabel/"] in [paths for paths, _ in rows]


def test_everything_the_table_names_exists() -> None:
    missing = []
    for paths, spans in layout():
        missing += [p for p in paths if not (ROOT / p).exists()]
        # Files and folders named in the second column live in the row's folder.
        base = next((ROOT / p for p in paths if p.endswith("/")), None)
        for span in spans:
            if base is None or " " in span or not span.endswith(NAMED):
                continue
            missing += [f"{base.relative_to(ROOT)}/{name}" for name in _expand(span) if not (base / name).exists()]
    assert not missing, f"README's Project layout names what does not exist: {missing}"


def _named() -> set[str]:
    named = set()
    for paths, spans in layout():
        named.update(paths)
        for path in paths:
            if path.endswith("/"):
                named.update(f"{path}{name}" for span in spans for name in _expand(span))
    return named


def test_nothing_is_left_out() -> None:
    named = _named()
    expected = [
        f"{d.name}/"
        for d in ROOT.iterdir()
        if d.is_dir() and d.name in {"autolabel", "infra", "local", "tests", "docs"}
    ]
    expected += [f"lambda/{d.name}/" for d in (ROOT / "lambda").iterdir() if d.is_dir() and not d.name.startswith("_")]
    for folder, pattern in (("autolabel", "*.py"), ("infra", "*.py"), ("docs", "*.*")):
        expected += [
            f"{folder}/{f.name}" for f in (ROOT / folder).glob(pattern) if f.name not in ("__init__.py", "__main__.py")
        ]
    expected += [
        f"tests/{d.name}/" for d in (ROOT / "tests").iterdir() if d.is_dir() and not d.name.startswith(("_", "."))
    ]
    # lambda/labeler/ is listed file by file: every module of it is named.
    expected.remove("lambda/labeler/")
    expected += [
        f"lambda/labeler/{f.name}" for f in (ROOT / "lambda" / "labeler").glob("*.py") if f.name != "__init__.py"
    ]
    missing = [p for p in expected if p not in named]
    assert not missing, f"add these to README's Project layout: {missing}"
