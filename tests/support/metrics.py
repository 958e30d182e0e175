"""Reading the handler's EMF metrics back from what it printed."""

from __future__ import annotations

import json


def emitted(stdout: str, metric: str) -> float:
    """Sum of one EMF metric's values in the handler's stdout."""
    total = 0.0
    for line in stdout.splitlines():
        if line.startswith('{"_aws"'):
            total += sum(json.loads(line).get(metric, []))
    return total
