"""Compatibility names for code written against ``python -m ops`` (e.g. ``local/outage_sim.py``).

The commands live in :mod:`autolabel.operations`. ``redrive`` here keeps its
old meaning: receive/send/delete with an optional limit, returning how many
messages moved (``autolabel dlq redrive --by-copy``), which works in moto; the
command line's default redrive is SQS's own message move task.
"""

from autolabel.operations import StackOutputs, model_start, model_status, model_stop
from autolabel.operations import redrive_by_copy as redrive

__all__ = ["StackOutputs", "model_start", "model_status", "model_stop", "redrive"]
