"""DynamoDB write units, counted by DynamoDB's documented rules (for benchmark P7).

moto answers ReturnConsumedCapacity with constants (1.0 per PutItem whatever
the item's size, nothing for TransactWriteItems), so the benchmark counts
write units itself, from the items before and after each write:

- item size: attribute names plus values (strings in UTF-8 bytes, numbers one
  byte per two significant digits plus one, binary raw bytes, null/boolean 1
  byte, lists and maps 3 bytes plus 1 per element plus their elements), per
  "DynamoDB item sizes and formats" in the DynamoDB Developer Guide;
- a write costs 1 unit per started KB of the larger of the item before and
  after it (PutItem, UpdateItem, DeleteItem; at least 1), per item of a
  BatchWriteItem;
- a transactional write costs twice that, per item ("two underlying writes,
  prepare and commit"); a ConditionCheck in a transaction is counted the same
  way (an upper bound: the guide bills it as a transactional operation on the
  item it reads);
- each global secondary index the write changes costs the index's own units
  on the projected item: one write when an index entry appears, disappears or
  changes in place, two when the write moves it to another index key.

``WriteMeter.install`` hooks a boto3 DynamoDB client (botocore events): before
each write it reads the items the write touches through a second client, after
a successful one it reads them again and adds the units.
"""

from __future__ import annotations

import base64
import math
import threading
from collections import Counter
from typing import Any

WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
Item = dict[str, dict[str, Any]]


def _number_size(text: str) -> int:
    digits = text.lstrip("+-").lower().split("e")[0].replace(".", "").strip("0")
    return math.ceil(max(1, len(digits)) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """Size of one attribute value, without its name."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data) if isinstance(data, bytes) else len(base64.b64decode(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(n) for n in data)
    if kind == "BS":
        return sum(len(b) if isinstance(b, bytes) else len(base64.b64decode(b)) for b in data)
    if kind == "L":
        return 3 + sum(value_size(element) + 1 for element in data)
    if kind == "M":
        return 3 + sum(len(name.encode()) + value_size(element) + 1 for name, element in data.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Item | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def units(size: int) -> int:
    """Write units for an item of ``size`` bytes: 1 per started KB, at least 1."""
    return max(1, math.ceil(size / 1024))


def _fingerprint(key: Item) -> str:
    return repr(sorted(key.items()))


class TableShape:
    """A table's key attributes and, per global secondary index, its key and projected attributes."""

    def __init__(self, description: dict[str, Any]) -> None:
        self.key = [k["AttributeName"] for k in description["KeySchema"]]
        self.indexes: list[tuple[list[str], list[str] | None]] = []  # (index key, projected; None: ALL)
        for index in description.get("GlobalSecondaryIndexes", []):
            index_key = [k["AttributeName"] for k in index["KeySchema"]]
            projection = index["Projection"]
            kind = projection.get("ProjectionType", "ALL")
            projected = None if kind == "ALL" else list(projection.get("NonKeyAttributes", []))
            self.indexes.append((index_key, projected))

    def index_units(self, before: Item | None, after: Item | None) -> int:
        total = 0
        for index_key, projected in self.indexes:

            def entry(
                item: Item | None, index_key: list[str] = index_key, projected: list[str] | None = projected
            ) -> Item | None:
                if not item or any(name not in item for name in index_key):
                    return None
                if projected is None:
                    return item
                names = {*self.key, *index_key, *projected}
                return {name: value for name, value in item.items() if name in names}

            old, new = entry(before), entry(after)
            if old == new:
                continue
            if old is None or new is None:
                total += units(item_size(old or new))
            elif all(old[name] == new[name] for name in index_key):
                total += units(max(item_size(old), item_size(new)))
            else:
                total += units(item_size(old)) + units(item_size(new))
        return total


class WriteMeter:
    """Write units consumed through the clients it is installed on (successful writes only)."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader  # an unmetered client to read items before and after each write
        self._shapes: dict[str, TableShape] = {}
        self._lock = threading.Lock()
        # "table", "index", "in transactions" (already in table), "item type <itemType>" (table units by item type)
        self.units: Counter[str] = Counter()
        self.failed_writes = 0

    def _shape(self, table: str) -> TableShape:
        if table not in self._shapes:
            self._shapes[table] = TableShape(self._reader.describe_table(TableName=table)["Table"])
        return self._shapes[table]

    def _key(self, table: str, item_or_key: Item) -> Item:
        return {name: item_or_key[name] for name in self._shape(table).key}

    def _read(self, targets: list[tuple[str, Item, int]]) -> list[Item | None]:
        """The current item (or None) of each target: strongly consistent BatchGetItems of up to 100 keys."""
        found: dict[tuple[str, str], Item] = {}
        wanted = [(table, key) for table, key, _ in targets]
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {}
            for table, key in wanted[start : start + 100]:
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})
                if key not in request[table]["Keys"]:
                    request[table]["Keys"].append(key)
            while request:
                answer = self._reader.batch_get_item(RequestItems=request)
                for table, items in answer.get("Responses", {}).items():
                    for item in items:
                        found[(table, _fingerprint(self._key(table, item)))] = item
                request = answer.get("UnprocessedKeys") or {}
        return [found.get((table, _fingerprint(key))) for table, key in wanted]

    def _targets(self, operation: str, params: dict[str, Any]) -> list[tuple[str, Item, int]]:
        """(table, key, multiplier) of every item the write touches."""
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            table = params["TableName"]
            return [(table, self._key(table, params.get("Item") or params["Key"]), 1)]
        if operation == "TransactWriteItems":
            targets = []
            for action in params["TransactItems"]:
                ((_kind, body),) = action.items()
                table = body["TableName"]
                targets.append((table, self._key(table, body.get("Item") or body["Key"]), 2))
            return targets
        targets = []
        for table, requests in params["RequestItems"].items():
            for request in requests:
                body = request.get("PutRequest") or request["DeleteRequest"]
                targets.append((table, self._key(table, body.get("Item") or body["Key"]), 1))
        return targets

    def install(self, client: Any) -> None:
        service = client.meta.service_model.service_id.hyphenize()

        def before(params: dict[str, Any], model: Any, context: dict[str, Any], **_kwargs: Any) -> None:
            targets = self._targets(model.name, params)
            context["write_units"] = (targets, self._read(targets))

        def after(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
            if http_response is None or http_response.status_code != 200:
                with self._lock:
                    self.failed_writes += 1
                return
            unprocessed = parsed.get("UnprocessedItems") or {}
            if unprocessed:
                raise RuntimeError("BatchWriteItem left items unprocessed: not counted")
            targets, olds = context.get("write_units", ([], []))
            for (table, _key, times), old, new in zip(targets, olds, self._read(targets), strict=True):
                table_units = times * units(max(item_size(old), item_size(new)))
                index_units = self._shape(table).index_units(old, new)
                kind = ((new or old or {}).get("itemType") or {}).get("S", "other")
                with self._lock:
                    self.units["table"] += table_units
                    self.units[f"item type {kind}"] += table_units
                    self.units["index"] += index_units
                    if times == 2:
                        self.units["in transactions"] += table_units

        for operation in WRITE_OPERATIONS:
            client.meta.events.register(f"before-parameter-build.{service}.{operation}", before)
            client.meta.events.register(f"after-call.{service}.{operation}", after)

    @property
    def total(self) -> int:
        return self.units["table"] + self.units["index"]
