"""The Lambda runtime's Python: the one the project builds, tests and type-checks with.

``LAMBDA_PYTHON`` is the repository's ``.python-version`` (a test keeps the two
equal; the Makefile creates the dev venv with it). The bytecode shipped in
the asset is compiled by the synthesizing interpreter, so it is compiled only
when that interpreter is the runtime's version; a host app on another Python
still synthesizes, without bytecode: the functions then compile their
modules at each cold start, as Lambda's /var/task is read-only (P3 in
docs/performance.md: 1.47 times the boto3 floor instead of 1.17).
"""

from __future__ import annotations

import sys
import threading

from aws_cdk import aws_lambda as lambda_

LAMBDA_PYTHON = "3.13"
RUNTIME = lambda_.Runtime(f"python{LAMBDA_PYTHON}", lambda_.RuntimeFamily.PYTHON)

_warned = threading.Event()


def host_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def host_compiles_for_runtime() -> bool:
    """True when this interpreter's bytecode is the runtime's (same minor version)."""
    return host_python() == LAMBDA_PYTHON


def warn_no_bytecode_once() -> None:
    """One line on stderr, once per process, when the asset is built without bytecode."""
    if _warned.is_set():
        return
    _warned.set()
    print(
        f"autolabel: synthesizing with Python {host_python()}, the functions run python{LAMBDA_PYTHON}: "
        "the asset ships no bytecode, so each cold start compiles the modules (about 30% slower, P3)",
        file=sys.stderr,
    )
