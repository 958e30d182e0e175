"""moto server in its own process on loopback (for the soak and the benchmarks).

In its own process, the labeler's AWS calls are real I/O waits as in Lambda,
instead of emulator CPU competing with the handler for one GIL. It also removes
two moto costs that real DynamoDB does not have: TransactWriteItems deep-copies
the whole table once per action (for rollback), here only the touched items;
and a Query on the table sorts every item of the table to find one partition,
here only that partition's items.

    python -m local.moto_process PORT
"""

from __future__ import annotations

import contextlib
import copy
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from local.emulator import environment, local_aws_environment


def _snapshot_touched_items_instead_of_tables() -> None:
    """moto backs up the whole table for each transaction action (for rollback), which
    makes a transaction cost grow with the table; back up only the items it touches."""
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    skip = threading.local()

    class NoTableCopies:
        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        def deepcopy(self, value: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(skip, "tables", False) and isinstance(value, Table):
                return value  # rollback is done item by item below
            return copy.deepcopy(value, *args, **kwargs)

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: Any) -> None:
        snapshots = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            key = op.get("Key") or op.get("Item") or {}
            if table is None or table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_attr = table.range_key_attr
            range_value = DynamoType(key[range_attr]) if range_attr and range_attr in key else None
            snapshots.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
        skip.tables = True
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(snapshots):
                if range_value is None:
                    if item is None:
                        table.items.pop(hash_value, None)
                    else:
                        table.items[hash_value] = item
                elif item is None:
                    table.items[hash_value].pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = item
            raise
        finally:
            skip.tables = False

    models.copy = NoTableCopies()  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _query_reads_only_its_partition() -> None:
    """moto's Table.query sorts ``all_items()`` (the whole table) and then keeps one
    partition, so a Query costs O(table log table); with tens of thousands of
    label-index items that is a second per call. For a Query on the table itself
    (not an index), hand it only the items of the queried partition."""
    from moto.dynamodb.models.table import Table

    only = threading.local()
    original_all_items = Table.all_items
    original_query = Table.query

    def all_items(self: Any) -> Any:
        hash_key = getattr(only, "hash_key", None)
        if hash_key is None or not self.range_key_attr:
            return original_all_items(self)
        partition = self.items.get(hash_key, {})  # .get: never creates the partition
        return sorted(partition.values(), key=lambda item: item.range_key)

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        only.hash_key = hash_key
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            only.hash_key = None

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query  # type: ignore[method-assign]


def serve(port: int) -> None:
    _snapshot_touched_items_instead_of_tables()
    _query_reads_only_its_partition()
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    threading.Event().wait()  # until terminated


@contextlib.contextmanager
def moto_server_process() -> Iterator[str]:
    """Start a server, point AWS_ENDPOINT_URL at it, stop it afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "local.moto_process", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the moto server process did not start") from None
                time.sleep(0.1)
        with environment(local_aws_environment(endpoint)):
            yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
