"""A local server in its own process on a free loopback port: started, awaited, stopped.

The moto server (local.moto_process) and the emulated model's server
(local.fakes.model_server) run this way, so that their work is not billed to
the labeler's process.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def server_process(command: Callable[[int], list[str]], answers: Callable[[str], object], name: str) -> Iterator[str]:
    """Run ``python -m command(port)``, wait until ``answers(url)`` stops raising OSError, yield the URL; stop it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", *command(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answers(url)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the {name} process did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
