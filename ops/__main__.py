"""python -m ops [--stack NAME] model status|start|stop | dlq redrive [--limit N]

Kept as an alias: it runs ``autolabel`` (``autolabel --help``), translating
``--stack`` to ``--stack-name`` and ``dlq redrive --limit N`` to the
receive/send/delete redrive that option always meant (``--by-copy``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from autolabel.cli import main as autolabel_main


def translate(argv: Sequence[str]) -> list[str]:
    args: list[str] = []
    for arg in argv:
        if arg == "--stack":
            args.append("--stack-name")
        elif arg.startswith("--stack="):
            args.append("--stack-name=" + arg.split("=", 1)[1])
        else:
            args.append(arg)
    limited = any(a == "--limit" or a.startswith("--limit=") for a in args)
    if "dlq" in args and "redrive" in args and limited and "--by-copy" not in args:
        args.append("--by-copy")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    print("note: `python -m ops` is now `autolabel` (see `autolabel --help`)", file=sys.stderr)
    return autolabel_main(translate(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
