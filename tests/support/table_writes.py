"""What a DynamoDB write call of the labeler is, from its parameters (for faults that pick their target)."""

from __future__ import annotations

from typing import Any

from shared import table_layout as layout


def batch_write_keys(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """The items put or keys deleted by a BatchWriteItem call (low-level format)."""
    return [
        request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
        for requests in kwargs.get("RequestItems", {}).values()
        for request in requests
    ]


def is_mark(kwargs: dict[str, Any]) -> bool:
    """The write that records events as published: a BatchWriteItem of publication items."""
    keys = batch_write_keys(kwargs)
    return bool(keys) and all(k[layout.SORT_KEY]["S"].startswith(layout.PUBLISHED_PREFIX) for k in keys)


def is_index_only_write(kwargs: dict[str, Any]) -> bool:
    """A BatchWriteItem of label-index entries only (after the result item went in)."""
    keys = batch_write_keys(kwargs)
    return bool(keys) and all(k[layout.PARTITION_KEY]["S"].startswith(layout.LABEL_PARTITION_PREFIX) for k in keys)
