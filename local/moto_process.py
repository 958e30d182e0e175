"""moto server in its own process on loopback (for the soak and the benchmarks).

In its own process, the labeler's AWS calls are real I/O waits as in Lambda,
instead of emulator CPU competing with the handler for one GIL. It also fixes
one moto cost that real DynamoDB does not have: TransactWriteItems deep-copies
the whole table once per action (for rollback); here once per table.

    python -m local.moto_process PORT
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any


def _copy_tables_once_per_transaction() -> None:
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    memo = threading.local()

    class CopyOncePerTransaction:
        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        def deepcopy(self, value: Any, *args: Any, **kwargs: Any) -> Any:
            cache = getattr(memo, "tables", None)
            if cache is None or not isinstance(value, Table):
                return copy.deepcopy(value, *args, **kwargs)
            if id(value) not in cache:
                cache[id(value)] = copy.deepcopy(value)
            return cache[id(value)]

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: Any) -> None:
        memo.tables = {}
        try:
            original(self, transact_items)
        finally:
            memo.tables = None

    models.copy = CopyOncePerTransaction()  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def serve(port: int) -> None:
    _copy_tables_once_per_transaction()
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
    saved = {
        name: os.environ.get(name)
        for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
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
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_DEFAULT_REGION="us-east-1",
        )
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
