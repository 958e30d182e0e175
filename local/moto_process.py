"""moto server in its own process on loopback (for the soak and the benchmarks).

In its own process, the labeler's AWS calls are real I/O waits as in Lambda,
instead of emulator CPU competing with the handler for one GIL. It also removes
two moto costs that real DynamoDB does not have: TransactWriteItems deep-copies
the whole table once per action (for rollback), here only the touched items;
a Query on the table sorts every item of the table to find one partition,
here only that partition's items; and SQS walks the whole queue several times
per message received, deleted or made visible again, here once per receive
(see _sqs_without_queue_scans).

    python -m local.moto_process PORT
"""

from __future__ import annotations

import contextlib
import copy
import sys
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

from local.emulator import environment, local_aws_environment
from local.server_process import server_process


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


def _sqs_without_queue_scans() -> None:
    """moto's SQS costs O(queue) Python work several times per message, so at a few
    thousand messages the emulator, not the labeler, sets the pace:

    - ReceiveMessage builds the list of every visible message (two clock reads per
      message) before taking the first ten, and then, for each message it returns,
      checks the retention period through ``get_queue_attributes``, which computes
      every queue attribute (three full counts) three times;
    - DeleteMessage and ChangeMessageVisibility look the receipt handle up by
      walking the queue, building each message's list of handles on the way.

    Here: the visible messages are produced lazily (ReceiveMessage stops after the
    ten it wants, in the same order), the retention period is read from the queue,
    the queue's counts read the clock once, GetQueueAttributes computes the
    attributes once per call, and receipt handles are found through an index.
    Everything decided (visibility, delays, receive counts, redrive to the DLQ,
    retention, which handles are valid) is moto's own code, unchanged.
    """
    _sqs_visible_messages_lazily()
    _sqs_receipt_handle_index()


def _sqs_visible_messages_lazily() -> None:
    from moto.sqs import models

    def now_millis() -> float:
        return float(models.unix_time_millis())  # looked up on the module: a patched clock still applies

    class VisibleMessages:
        """``Queue.messages`` (visible and not delayed), computed as it is iterated."""

        def __init__(self, queue: Any) -> None:
            self._queue = queue

        def __iter__(self) -> Iterator[Any]:
            now = now_millis()
            # Deletes replace the list (as moto does); a concurrent redrive may make this pass skip
            # one message, which a standard queue's receive is allowed to do.
            for message in self._queue._messages:
                if now > message.visible_at and not now < message.delayed_until:
                    yield message

        def __len__(self) -> int:
            return sum(1 for _ in self)

        def __bool__(self) -> bool:
            return any(True for _ in self)

    def messages(self: Any) -> VisibleMessages:
        return VisibleMessages(self)

    def not_visible(self: Any) -> int:
        now = now_millis()
        return sum(1 for message in self._messages if not now > message.visible_at)

    def delayed(self: Any) -> int:
        now = now_millis()
        return sum(1 for message in self._messages if now < message.delayed_until)

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = self.get_queue(queue_name).message_retention_period
        return bool(retention_period + message.sent_timestamp / 1000 > models.unix_time())  # moto: <= is invalid

    original_get_queue_attributes = models.SQSBackend.get_queue_attributes

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        queue = self.get_queue(queue_name)
        if not attribute_names or "All" in attribute_names:
            return original_get_queue_attributes(self, queue_name, attribute_names)
        valid = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
        if any(name not in valid for name in attribute_names):
            return original_get_queue_attributes(self, queue_name, attribute_names)  # its error
        computed = queue.attributes  # once, not three times per name
        return {name: computed[name] for name in attribute_names if computed.get(name) is not None}

    models.Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    models.Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[assignment,method-assign]
    models.Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[assignment,method-assign]
    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    models.SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]


def _sqs_receipt_handle_index() -> None:
    from moto.sqs import models
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    # Every receipt handle a message was ever given -> that message (moto accepts old handles too).
    handles: dict[str, Any] = {}
    original_mark_received = models.Message.mark_received

    def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        original_mark_received(self, visibility_timeout)
        handles[self.receipt_handle] = self

    def find(queue: Any, receipt_handle: str) -> Any:
        """The message of ``queue`` that ever had this handle, or None (what moto's scans decide)."""
        message = handles.get(receipt_handle)
        if message is None:
            return None
        # Still in this queue (not deleted, not moved to the DLQ)? ``in`` compares by identity
        # (Message has no __eq__) in C: no handle lists built per message.
        return message if message in queue._messages else None

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # already deleted: moto accepts it again
        message = find(self, receipt_handle)
        if message is None:
            raise ReceiptHandleIsInvalid()
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)
        remaining = list(self._messages)  # a new list, as moto does: a receive iterating the old one is unaffected
        remaining.remove(message)
        self._messages = remaining

    original_change_visibility = models.SQSBackend.change_message_visibility

    def change_message_visibility(self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
        queue = self.get_queue(queue_name)
        message = find(queue, receipt_handle)
        if message is None:
            raise ReceiptHandleIsInvalid
        # moto's own code, on a queue holding just that message: the same checks and effects.
        only = _SingleMessageQueue(queue, message)
        original_change_visibility(_OneQueueBackend(only), queue_name, receipt_handle, visibility_timeout)  # type: ignore[arg-type]

    models.Message.mark_received = mark_received  # type: ignore[method-assign]
    models.Queue.delete_message = delete_message  # type: ignore[method-assign]
    models.SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign]


class _SingleMessageQueue:
    """A queue seen by moto's change_message_visibility as holding one message (the rest is the real queue)."""

    def __init__(self, queue: Any, message: Any) -> None:
        self.__dict__["_queue"] = queue
        self.__dict__["_messages"] = [message]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._queue, name, value)


class _OneQueueBackend:
    def __init__(self, queue: _SingleMessageQueue) -> None:
        self._queue = queue

    def get_queue(self, _queue_name: str) -> _SingleMessageQueue:
        return self._queue


def serve(port: int) -> None:
    _snapshot_touched_items_instead_of_tables()
    _query_reads_only_its_partition()
    _sqs_without_queue_scans()
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    threading.Event().wait()  # until terminated


@contextlib.contextmanager
def moto_server_process() -> Iterator[str]:
    """Start a server, point AWS_ENDPOINT_URL at it, stop it afterwards."""
    with (
        server_process(
            lambda port: ["local.moto_process", str(port)],
            lambda url: urllib.request.urlopen(f"{url}/moto-api/", timeout=1),
            "moto server",
        ) as endpoint,
        environment(local_aws_environment(endpoint)),
    ):
        yield endpoint


if __name__ == "__main__":
    serve(int(sys.argv[1]))
