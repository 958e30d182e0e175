"""The backfill ports with boto3 clients: S3 (image and report buckets) and SQS (the backfill queue)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from shared.queue_backlog import queue_backlog

# The codes of a missing object: HeadObject answers 404 (400 for a version id it cannot read).
MISSING_OBJECT = ("404", "NoSuchKey", "NoSuchVersion", "400")
MISSING_REPORT = ("NoSuchKey", "404")


def _code(error: ClientError) -> str | None:
    return error.response.get("Error", {}).get("Code")


class S3ImageObjects:
    """HeadObject and GetBucketVersioning of the image bucket; the versioning is asked once per bucket."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self._versioned: dict[str, bool] = {}

    def is_versioned(self, bucket: str) -> bool:
        if bucket not in self._versioned:
            status = self._s3.get_bucket_versioning(Bucket=bucket).get("Status")
            self._versioned[bucket] = status in ("Enabled", "Suspended")
        return self._versioned[bucket]

    def head(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any] | None:
        request = {"Bucket": bucket, "Key": key} | ({"VersionId": version_id} if version_id else {})
        try:
            return dict(self._s3.head_object(**request))
        except ClientError as error:
            if _code(error) in MISSING_OBJECT:
                return None
            raise


class S3Reports:
    """The report bucket's ledgers, lists and report, and the ResultWriter's manifests (in any bucket)."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    @property
    def bucket(self) -> str:
        return self._bucket

    def write(self, key: str, text: str) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=text.encode())

    def read_lines(self, key: str) -> list[dict[str, Any]]:
        body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read().decode()
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def read_lines_if_any(self, key: str) -> list[dict[str, Any]] | None:
        try:
            return self.read_lines(key)
        except ClientError as error:
            if _code(error) in MISSING_REPORT:
                return None
            raise

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if _code(error) in ("404", "NoSuchKey"):
                return False
            raise
        return True

    def read_json(self, bucket: str, key: str) -> Any:
        return json.loads(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())


class SqsBackfillQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def backlog(self) -> int:
        return queue_backlog(self._sqs, self._url)

    def send_batch(self, entries: Sequence[dict[str, str]]) -> set[str]:
        response = self._sqs.send_message_batch(QueueUrl=self._url, Entries=list(entries))
        return {entry["Id"] for entry in response.get("Failed", [])}
