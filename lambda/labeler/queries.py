"""The public queries of the results table: the object and by-label questions, each answered by a DynamoDB Query.

They read through the read side (``labeler.read_side``), as the command line does.

Importing this module reads no environment variable: operator tools use it
from a laptop with their own credentials and an explicit table name.
"""

from __future__ import annotations

from typing import Any

from labeler.adapters.result_items import IncompleteResultError, assemble, public_view
from labeler.read_side import ResultsReader
from shared import table_layout as layout

# Smallest page of label-index entries find_by_label asks for with a limit.
MIN_PAGE = 25
# Reads of an object's partition before get_result gives up on a result that keeps being replaced
# while it is read (each torn read means another write landed between two Query pages).
MAX_RESULT_READS = 5


def _client_or_default(client: Any | None) -> Any:
    if client is not None:
        return client
    import boto3  # only when the caller brings no client

    return boto3.client("dynamodb")


def get_result(
    table_name: str,
    bucket: str,
    key: str,
    project_version_arn: str | None = None,
    *,
    client: Any | None = None,
) -> dict[str, Any] | None:
    """The current result for an object (for one model, or the latest of any model).

    ``customLabels`` is the full list in Rekognition's order, reassembled from
    continuation items when the result did not fit in one item.

    A result too large for one Query page (about 1 MB) may be replaced between
    two pages: the first page's result item then points at continuation items
    that are gone. Such a torn read is read again (up to ``MAX_RESULT_READS``
    times), so the answer is the old result or the new one; IncompleteResultError
    only when every read was torn.
    """
    reader = ResultsReader(_client_or_default(client), table_name)
    for _ in range(MAX_RESULT_READS - 1):
        try:
            return _read_result(reader, bucket, key, project_version_arn)
        except IncompleteResultError:
            continue  # replaced between two pages: read again
    return _read_result(reader, bucket, key, project_version_arn)


def _read_result(
    reader: ResultsReader, bucket: str, key: str, project_version_arn: str | None
) -> dict[str, Any] | None:
    # The whole object partition: its results, their continuation items and their publication items.
    items = reader.object_items(bucket, key)
    current = assemble(items.values(), project_version_arn)
    return public_view(current, items) if current is not None else None


def find_by_label(
    table_name: str,
    label: str,
    min_confidence: float = 0.0,
    *,
    limit: int | None = None,
    client: Any | None = None,
) -> list[dict[str, Any]]:
    """Objects whose current result carries ``label`` at >= ``min_confidence``.

    One entry per (object, model version), most confident first; ``limit``
    keeps the N most confident. One Query of the label's partition, page by
    page; each page's entries are checked against their objects' result items
    (one BatchGetItem) and an entry of a result replaced or deleted since is
    left out, so an object never shows up for a label it no longer has.
    """
    if limit is not None and limit < 1:
        raise ValueError("limit must be >= 1")
    reader = ResultsReader(_client_or_default(client), table_name)
    found: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while True:
        # With a limit, a few more than still needed: entries of replaced results are skipped, and each
        # page costs a Query and a BatchGetItem.
        page_size = max(limit - len(found), MIN_PAGE) if limit is not None else None
        entries, start = reader.label_entries(label, min_confidence, page_size=page_size, start=start)
        current = reader.current_index_ids(entries)
        for item in entries:
            if current.get((item["bucket"], item["key"], item["projectVersionArn"])) != item[layout.INDEX_ID]:
                continue  # an entry of a result replaced or deleted since
            entry = {
                "bucket": item["bucket"],
                "key": item["key"],
                "projectVersionArn": item["projectVersionArn"],
                "confidence": float(item[layout.LABEL_CONFIDENCE]),
            }
            if item.get("versionId"):
                entry["versionId"] = item["versionId"]
            found.append(entry)
            if limit is not None and len(found) >= limit:
                return found
        if start is None:
            return found
