"""EventBridge adapter: PutEvents in requests of up to 10 entries and 256 KB.

PutEvents reports per-entry failures inside a 200 response; every failed entry
is returned to the caller so its record is retried, never dropped. A call that
failed after the request was sent (read timeout, connection closed) has an
unknown outcome: EventBridge may have accepted its events. Those entries are
failed too (so nothing is lost) and also reported as ambiguous: their retry may
announce a result twice, with the same resultId, and is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.deadline import outcome_unknown
from shared.event_entry import MAX_ENTRY_BYTES, EventEntry, PublishOutcome

MAX_ENTRIES_PER_REQUEST = 10


class EventPublisher:
    def __init__(self, client: Any, event_bus_name: str, source: str) -> None:
        self._client = client
        self._bus = event_bus_name
        self._source = source

    def requests_for(self, entries: Sequence[EventEntry]) -> list[list[EventEntry]]:
        requests: list[list[EventEntry]] = []
        current: list[EventEntry] = []
        current_bytes = 0
        for entry in entries:
            size = entry.size(self._source)
            if current and (len(current) == MAX_ENTRIES_PER_REQUEST or current_bytes + size > MAX_ENTRY_BYTES):
                requests.append(current)
                current, current_bytes = [], 0
            current.append(entry)
            current_bytes += size
        if current:
            requests.append(current)
        return requests

    def publish(self, entries: Sequence[EventEntry]) -> PublishOutcome:
        """Publish all entries; report those not accepted, and which of them may have been."""
        outcome = PublishOutcome()
        failures = outcome.failures
        for request in self.requests_for(entries):
            try:
                response = self._client.put_events(
                    Entries=[
                        {
                            "EventBusName": self._bus,
                            "Source": self._source,
                            "DetailType": entry.detail_type,
                            "Detail": entry.detail_json,
                        }
                        for entry in request
                    ]
                )
            except (ClientError, BotoCoreError) as error:
                failures.update({entry.result_id: f"PutEvents failed: {error}" for entry in request})
                if outcome_unknown(error):
                    outcome.ambiguous.update(entry.result_id for entry in request)
                continue
            if not response.get("FailedEntryCount"):
                continue
            # Results come back in request order.
            for entry, answer in zip(request, response.get("Entries", []), strict=False):
                if answer.get("ErrorCode") or not answer.get("EventId"):
                    failures[entry.result_id] = f"{answer.get('ErrorCode')}: {answer.get('ErrorMessage')}"
            if len(response.get("Entries", [])) < len(request):
                for entry in request[len(response.get("Entries", [])) :]:
                    failures[entry.result_id] = "PutEvents returned no outcome for this entry"
        return outcome
