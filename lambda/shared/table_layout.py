"""Single-table layout of the results table (keys and item types; docs/behaviour.md#stored-attributes).

Object partitions, ``pk`` = ``<bucket>/<key>`` (bucket names cannot contain
'/' or '#'): every item about one object, so one Query answers "results for
this object". Sort key ``sk``:

- ``RESULT#<projectVersionArn>``: the current result of that model version;
- ``RESULT#<projectVersionArn>#PART#<indexId>#<n>``: continuation items of a
  result whose labels do not fit in one 400 KB item, keyed by the write that
  stored them (``<resultId>`` for results written before indexIds);
- ``PUBLISHED#<projectVersionArn>#<writeId>``: the event of the result (or
  deletion) written by the attempt ``writeId`` was accepted by EventBridge. A
  small item of its own, so recording a publication never rewrites the
  (possibly large) result item.

Label partitions, ``pk`` = ``LABEL#<labelName>``: the label index, one entry
per distinct label of each result, ``sk`` = ``<confidence>#<indexId>`` with
the confidence zero-padded so that the string order is the numeric order.
One Query answers "objects with label X at confidence >= C, most confident
first". ``indexId`` is the token of the write that stored the result, so two
results never share an entry: an entry is current only while the result item
of its object still carries that ``indexId`` (``queries.find_by_label``
checks), and deleting a replaced result's entries can never touch a newer
result's. Written with plain (non-transactional) writes; no secondary index.

'#' cannot occur in a model version ARN or a bucket name, so these prefixes
never collide.
"""

from __future__ import annotations

PARTITION_KEY = "pk"
SORT_KEY = "sk"
# Attributes of a label-index entry besides its keys.
LABEL_NAME = "labelName"
LABEL_CONFIDENCE = "labelConfidence"
INDEX_ID = "indexId"

ITEM_TYPE_RESULT = "RESULT"
ITEM_TYPE_RESULT_PART = "RESULT_PART"
ITEM_TYPE_LABEL = "LABEL"
ITEM_TYPE_PUBLISHED = "PUBLISHED"

RESULT_PREFIX = "RESULT#"
LABEL_PARTITION_PREFIX = "LABEL#"
PUBLISHED_PREFIX = "PUBLISHED#"


def object_partition(bucket: str, key: str) -> str:
    return f"{bucket}/{key}"


def result_sort_key(project_version_arn: str) -> str:
    return f"{RESULT_PREFIX}{project_version_arn}"


def part_sort_key_prefix(project_version_arn: str, part_id: str) -> str:
    return f"{RESULT_PREFIX}{project_version_arn}#PART#{part_id}#"


def part_sort_key(project_version_arn: str, part_id: str, number: int) -> str:
    return f"{part_sort_key_prefix(project_version_arn, part_id)}{number:04d}"


def publication_sort_key(project_version_arn: str, write_id: str) -> str:
    return f"{PUBLISHED_PREFIX}{project_version_arn}#{write_id}"


def label_partition(label_name: str) -> str:
    return f"{LABEL_PARTITION_PREFIX}{label_name}"


def confidence_key(confidence: float) -> str:
    """A confidence (0-100) as a fixed-width string whose order is the numeric order: 87.5 -> '087.500000'."""
    return f"{float(confidence):010.6f}"


def label_entry_sort_key(confidence: float, index_id: str) -> str:
    return f"{confidence_key(confidence)}#{index_id}"
