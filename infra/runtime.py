"""The one Python version of the project: the Lambda runtime, the build and the tests.

Pinned in ``.python-version`` (the Makefile creates the venv with it). The
functions run exactly the Python the code is tested and type-checked with,
and the bytecode shipped in the asset is compiled by that interpreter, so
Lambda can use it instead of compiling at cold start.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aws_cdk import aws_lambda as lambda_

PYTHON_VERSION_FILE = Path(__file__).resolve().parent.parent / ".python-version"
PYTHON_VERSION = PYTHON_VERSION_FILE.read_text().strip()
RUNTIME = lambda_.Runtime(f"python{PYTHON_VERSION}", lambda_.RuntimeFamily.PYTHON)


def require_build_python() -> None:
    """Refuse to build an asset with another interpreter: its bytecode would be ignored at run time."""
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != PYTHON_VERSION:
        raise RuntimeError(
            f"The Lambda runtime is python{PYTHON_VERSION} (.python-version) but this is Python {running}; "
            "run `make setup` to build the venv with the pinned version"
        )
