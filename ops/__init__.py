"""Operator commands for a deployed autolabel stack: ``python -m ops --help``."""

import sys
from pathlib import Path

# lambda/ is not an importable name: the commands reuse the manager's adapters.
_LAMBDA_DIR = str(Path(__file__).resolve().parent.parent / "lambda")
if _LAMBDA_DIR not in sys.path:
    sys.path.insert(0, _LAMBDA_DIR)
