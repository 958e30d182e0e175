"""--output json|table|text and --query (JMESPath) for every command."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from autolabel.errors import CliError, ParameterError

OUTPUT_FORMATS = ("json", "table", "text")


def apply_query(data: Any, query: str | None) -> Any:
    if not query:
        return data
    try:
        return jmespath.search(query, data)
    except JMESPathError as error:
        raise ParameterError(f"invalid --query {query!r}: {error}") from None


def render(
    data: Any,
    output: str,
    query: str | None = None,
    *,
    human: Callable[[Any], str] | None = None,
) -> str:
    """Text for stdout. ``human`` is the command's own table, used when there is no --query."""
    shown = apply_query(data, query)
    if output == "json":
        return json.dumps(shown, indent=4, ensure_ascii=False)
    if output == "text":
        return "\n".join(_text_lines(shown))
    if human is not None and not query:
        return human(data)
    if shown is None:  # a --query that matched nothing: an empty table, as the AWS CLI prints
        return ""
    return table(shown)


def _scalar(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _text_lines(value: Any, identifier: str = "") -> list[str]:
    """The AWS CLI's text format: tab-separated scalars, one line per object, nested under an identifier."""
    prefix = [identifier.upper()] if identifier else []
    if _is_scalar(value):
        return ["\t".join([*prefix, _scalar(value)])]
    if isinstance(value, list):
        if all(_is_scalar(item) for item in value):
            return ["\t".join([*prefix, *(_scalar(item) for item in value)])] if value else []
        return [line for item in value for line in _text_lines(item, identifier)]
    lines: list[str] = []
    scalars = [_scalar(v) for v in value.values() if _is_scalar(v)]
    if scalars:
        lines.append("\t".join([*prefix, *scalars]))
    for key, item in value.items():
        if not _is_scalar(item):
            lines.extend(_text_lines(item, key))
    return lines


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}, "c": [..]} -> {"a.b": 1, "c": "[..]"}: one table cell per leaf."""
    if isinstance(value, dict):
        cells: dict[str, Any] = {}
        for key, item in value.items():
            cells.update(flatten(item, f"{prefix}{key}."))
        return cells
    if isinstance(value, list):
        return {prefix.rstrip("."): json.dumps(value) if value else ""}
    return {prefix.rstrip("."): value}


def format_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"
    return "" if value is None else str(value)


def grid(rows: list[list[Any]], headers: list[str]) -> str:
    cells = [[format_cell(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*headers).rstrip(), line.format(*("-" * w for w in widths)).rstrip()]
    out.extend(line.format(*row).rstrip() for row in cells)
    return "\n".join(out)


def table(value: Any) -> str:
    """A generic table: a list of objects as rows, an object as key/value pairs."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
        value = next(iter(value.values()))  # {"CustomLabels": [...]} -> its rows
    if isinstance(value, list):
        if not value:
            return "(none)"
        if all(_is_scalar(item) for item in value):
            return "\n".join(_scalar(item) for item in value)
        rows = [flatten(item) if isinstance(item, dict) else {"value": item} for item in value]
        headers = list(dict.fromkeys(key for row in rows for key in row))
        return grid([[row.get(h) for h in headers] for row in rows], headers)
    if isinstance(value, dict):
        pairs = flatten(value)
        return grid([[k, v] for k, v in pairs.items()], ["field", "value"])
    return _scalar(value)


# --- where output goes: stdout and files --------------------------------------------------------


def write_stdout(text: str, end: str = "\n") -> None:
    """Print and flush now, so that a full disk or a closed pipe is seen here, not at exit.

    BrokenPipeError goes up (the reader went away: autolabel.cli ends quietly);
    any other failure to write is a CliError.
    """
    try:
        sys.stdout.write(text + end)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except UnicodeEncodeError as error:
        raise CliError(
            f"the output has characters that the output encoding {error.encoding} cannot write: "
            "set PYTHONIOENCODING=utf-8 (or use --output json)"
        ) from None
    except OSError as error:
        raise CliError(f"cannot write the output: {error.strerror or error}") from None


def check_output_path(path: str, option: str) -> Path:
    """Refuse, before any call is made, a file the command could not write."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ParameterError(f"{option} {path}: is a folder; name a file in it, e.g. {target / 'labeled.png'}")
    folder = target.parent
    if not folder.is_dir():
        raise ParameterError(f"{option} {path}: there is no folder {folder}")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ParameterError(f"{option} {path}: permission denied")
    return target


def write_file(target: Path, data: bytes) -> None:
    """Write the file; a failure (disk full...) is one line, and leaves no half-written file behind."""
    existed = target.exists()
    try:
        target.write_bytes(data)
    except OSError as error:
        if not existed and target.is_file():
            with contextlib.suppress(OSError):
                target.unlink()
        raise CliError(f"cannot write {target}: {error.strerror or error}") from None
