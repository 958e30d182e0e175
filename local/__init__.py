"""Local run of autolabel: embedded moto server, emulated model, ESM-like poller.

Also the building blocks the tests reuse: resources derived from the
synthesized template, the emulated Custom Labels model and fault injection.
"""

import sys
from pathlib import Path

# lambda/ is not an importable name: make the labeler package importable, as
# pytest's pythonpath and app.py do.
_LAMBDA_DIR = str(Path(__file__).resolve().parent.parent / "lambda")
if _LAMBDA_DIR not in sys.path:
    sys.path.insert(0, _LAMBDA_DIR)
