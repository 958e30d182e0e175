"""Test-only speed-up of moto's DynamoDB transactions; semantics unchanged.

moto 5.2 backs up the whole table with ``copy.deepcopy`` once per *action* of
a TransactWriteItems call (before applying any of them), so a 100-action
transaction on a table of N items deep-copies it 100 times: a result with 150
distinct labels takes seconds to store. Every one of those copies is taken
before the first action is applied, so they are all equal: taking one copy per
table per transaction and reusing it is the same backup, made once.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table

_lock = threading.Lock()


@contextmanager
def one_backup_per_transaction() -> Iterator[None]:
    """Within the block, moto copies each table once per TransactWriteItems call."""
    backend = dynamodb_models.DynamoDBBackend
    original = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        copies: dict[int, Any] = {}

        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            if isinstance(value, Table):
                if id(value) not in copies:
                    copies[id(value)] = copy.deepcopy(value, memo)
                return copies[id(value)]
            return copy.deepcopy(value, memo)

        # Transactions run one at a time here (moto would not isolate them either).
        with _lock:
            dynamodb_models.copy = SimpleNamespace(deepcopy=deepcopy)  # type: ignore[assignment]
            try:
                original(self, transact_items)
            finally:
                dynamodb_models.copy = copy

    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        backend.transact_write_items = original  # type: ignore[method-assign]
