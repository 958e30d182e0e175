"""Single-table layout of the results table (keys and item types; docs/behaviour.md#stored-attributes).

Partition ``pk`` = ``<bucket>/<key>`` (bucket names cannot contain '/'), so
every item about one object lives in one partition and one Query answers
"results for this object". Sort key ``sk``:

- ``RESULT#<projectVersionArn>``: the current result of that model version;
- ``RESULT#<projectVersionArn>#PART#<resultId>#<n>``: continuation items of a
  result whose labels do not fit in one 400 KB item;
- ``LABEL#<projectVersionArn>#<labelName>``: one index item per distinct label
  of the current result, projected into the ``byLabel`` GSI
  (``labelName`` HASH, ``labelConfidence`` RANGE), which answers "objects with
  label X at confidence >= C, most confident first" with one Query.

'#' cannot occur in a model version ARN, so these prefixes never collide.
"""

from __future__ import annotations

PARTITION_KEY = "pk"
SORT_KEY = "sk"
LABEL_INDEX_NAME = "byLabel"
LABEL_INDEX_PARTITION_KEY = "labelName"
LABEL_INDEX_SORT_KEY = "labelConfidence"
# Attributes copied into the label index (besides the table and index keys).
LABEL_INDEX_ATTRIBUTES = ("bucket", "key", "versionId", "projectVersionArn", "resultId")

ITEM_TYPE_RESULT = "RESULT"
ITEM_TYPE_RESULT_PART = "RESULT_PART"
ITEM_TYPE_LABEL = "LABEL"

RESULT_PREFIX = "RESULT#"


def object_partition(bucket: str, key: str) -> str:
    return f"{bucket}/{key}"


def result_sort_key(project_version_arn: str) -> str:
    return f"{RESULT_PREFIX}{project_version_arn}"


def part_sort_key_prefix(project_version_arn: str, result_id: str) -> str:
    return f"{RESULT_PREFIX}{project_version_arn}#PART#{result_id}#"


def part_sort_key(project_version_arn: str, result_id: str, number: int) -> str:
    return f"{part_sort_key_prefix(project_version_arn, result_id)}{number:04d}"


def label_sort_key(project_version_arn: str, label_name: str) -> str:
    return f"LABEL#{project_version_arn}#{label_name}"
