"""The backfill lane: its own SQS queue (and DLQ) that `autolabel backfill` fills with listed objects.

Separate from the ingest queue so that a backfill of many objects never sits
in front of fresh uploads: the labeler reads it through its own event source
mapping, with its own share of concurrency (``backfillMaxConcurrency``).
Nothing but the operator's `autolabel backfill` sends to it (IAM: whoever may
send to it in the account; no service principal is granted).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from autolabel.cdk.alarms import at_least
from autolabel.cdk.ingest_queue import queue_with_dead_letters

# `autolabel backfill` never enqueues more than the model labels in half the
# retention; a message this old means that pace was not kept (the model did
# not run, or ran slower than assumed): 4 days before SQS would delete it.
BACKFILL_EXPIRY_WARNING = Duration.days(10)


class BackfillQueue(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, visibility_timeout: Duration, max_receive_count: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.queue, self.dead_letter_queue = queue_with_dead_letters(self, visibility_timeout, max_receive_count)
        self.alarms: list[cloudwatch.Alarm] = [
            at_least(
                self,
                "BackfillDeadLetterQueueNotEmpty",
                self.dead_letter_queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(1)),
                1,
                "Backfill messages reached the backfill DLQ: fix the cause, then redrive it (docs/runbook.md).",
            ),
            at_least(
                self,
                "BackfillMessagesExpiringSoon",
                self.queue.metric_approximate_age_of_oldest_message(period=Duration.hours(1), statistic="Maximum"),
                BACKFILL_EXPIRY_WARNING.to_seconds(),
                "A backfill message has waited 10 days; SQS deletes it at 14. Start the model (or let the manager), "
                "or pause the backfill; see docs/runbook.md.",
            ),
        ]
