"""Serve mode you can watch: one line per labeled, failed, removed or retried image, files kept current.

:class:`ServeWatch` wraps the labeler handler (to see which messages of a
batch are retried, and when each was sent) and reads the example consumer's
queue after every poll (the Detected / Failed / Removed events). For each it
prints one line (key, labels or error, latency from the message's send to
the stored result), appends the event to ``events.json`` and redraws or
removes the annotated image. :meth:`ServeWatch.summary` is what Ctrl-C prints.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote_plus

from local.emulator import consumed_events

Handler = Callable[[dict[str, Any], Any], Any]
Annotate = Callable[[dict[str, Any]], Path]


def keys_of(body: str) -> list[str]:
    """The object keys a message names: an S3 notification's records, or a backfill request's key."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        parsed = json.loads(body)
        if "Records" in parsed:
            return [unquote_plus(r["s3"]["object"]["key"]) for r in parsed["Records"] if "s3" in r]
        if "key" in parsed:
            return [str(parsed["key"])]
    return []


def _seconds_since(sent_millis: float | None, processed_at: str | None) -> str:
    if sent_millis is None or not processed_at:
        return ""
    processed = datetime.fromisoformat(processed_at.replace("Z", "+00:00")).timestamp()
    return f"{max(0.0, processed - sent_millis / 1000):.2f} s"


class ServeWatch:
    def __init__(
        self,
        *,
        sqs: Any,
        consumer_queue_url: str,
        events_path: Path,
        annotate: Annotate,
        annotated_path: Callable[[str], Path],
        out: TextIO,
    ) -> None:
        self._sqs = sqs
        self._consumer = consumer_queue_url
        self._events_path = events_path
        self._annotate = annotate
        self._annotated_path = annotated_path
        self._out = out
        self._sent: dict[str, float] = {}  # key -> when its (oldest pending) message was sent, ms
        self.counts: Counter[str] = Counter()
        self.events: list[dict[str, Any]] = json.loads(events_path.read_text()) if events_path.exists() else []
        self._started = time.monotonic()

    def wrap(self, handler: Handler) -> Handler:
        """The handler, seen from outside: when each message was sent, which ones come back for a retry."""

        def watched(event: dict[str, Any], context: Any) -> Any:
            by_id = {r["messageId"]: keys_of(r["body"]) for r in event.get("Records", [])}
            for record in event.get("Records", []):
                sent = record.get("attributes", {}).get("SentTimestamp")
                for key in by_id[record["messageId"]]:
                    if sent is not None:
                        self._sent.setdefault(key, float(sent))
            try:
                response = handler(event, context)
            except Exception as error:
                for keys in by_id.values():
                    self._line("retried", keys, f"the invocation failed: {type(error).__name__}")
                raise
            for item in (response or {}).get("batchItemFailures", []):
                self._line("retried", by_id.get(item["itemIdentifier"], []), "delivered again after its delay")
            return response

        return watched

    def after_poll(self) -> int:
        """Report the events the consumer received since the last look; returns how many."""
        events = consumed_events(self._sqs, self._consumer)
        for event in events:
            self._report(event)
        if events:
            self.events.extend(events)
            self._events_path.write_text(json.dumps(self.events, indent=2))
        return len(events)

    def _report(self, event: dict[str, Any]) -> None:
        detail = event["detail"]
        key = detail["key"]
        latency = _seconds_since(self._sent.pop(key, None), detail.get("processedAt") or detail.get("deletedAt"))
        kind = event["detail-type"]
        if kind.endswith("Detected"):
            labels = ", ".join(f"{x['Name']} {x['Confidence']:.1f}" for x in detail.get("customLabels", []))
            self._annotate(detail)
            self._line("labeled", [key], labels or "(no labels)", latency)
        elif kind.endswith("Failed"):
            error = detail.get("error", {})
            self._line("failed", [key], f"{error.get('code')}: {error.get('message')}", latency)
        elif kind.endswith("Removed"):
            self._annotated_path(key).unlink(missing_ok=True)
            self._line("removed", [key], f"had {', '.join(detail.get('labelNames', [])) or 'no labels'}", latency)

    def _line(self, what: str, keys: list[str], text: str, latency: str = "") -> None:
        for key in keys or ["?"]:
            self.counts[what] += 1
            took = f"  ({latency})" if latency else ""
            print(f"{time.strftime('%H:%M:%S')}  {what:<8} {key}  {text}{took}", file=self._out, flush=True)

    def summary(self) -> str:
        minutes, seconds = divmod(int(time.monotonic() - self._started), 60)
        counts = ", ".join(f"{self.counts[k]} {k}" for k in ("labeled", "failed", "removed", "retried"))
        folder = self._annotated_path("x").parent
        return (
            f"stopped after {minutes}m{seconds:02d}s of serving: {counts}; "
            f"{len(self.events)} event(s) in {self._events_path}, annotated images in {folder}/"
        )
