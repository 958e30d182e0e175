"""How many messages an SQS queue holds, for the backfill's pace: the command and the job read it alike.

The stack's state machine asks the same three attributes in its own
GetQueueAttributes step, so they are named once here. No Powertools: the
command line imports this module.
"""

from __future__ import annotations

from typing import Any

# Waiting, in flight and delayed: every message not yet deleted.
BACKLOG_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def queue_backlog(sqs: Any, queue_url: str) -> int:
    """Messages in the queue: waiting, in flight and delayed."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(BACKLOG_ATTRIBUTES))["Attributes"]
    return sum(int(value) for value in attributes.values() if str(value).isdigit())
