"""The SQS buffer between S3 and the labeler, with its dead-letter queue."""

from __future__ import annotations

import jsii
from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces.aws_s3 import IBucketRef
from constructs import Construct, IDependable

# SQS's maximum: work waiting on a model that cannot run is moved to the DLQ by
# the model manager after its grace period, long before this.
RETENTION = Duration.days(14)


@jsii.implements(s3.IBucketNotificationDestination)
class AccountPinnedQueueDestination:
    """Like ``aws_s3_notifications.SqsDestination``, with the confused-deputy guard.

    S3 may send to the queue only for this bucket (``aws:SourceArn``) *and* this
    account (``aws:SourceAccount``): a bucket ARN carries no account, so with
    an existing bucket (``bucketName``) a same-named bucket elsewhere must not
    qualify. Only ``sqs:SendMessage`` is granted (all S3 needs).
    """

    def __init__(self, queue: sqs.Queue) -> None:
        self._queue = queue

    def bind(self, scope: Construct, bucket: IBucketRef) -> s3.BucketNotificationDestinationConfig:
        added = self._queue.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self._queue.queue_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": bucket.bucket_ref.bucket_arn},
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )
        # The notification is configured only once S3 may send (S3 checks it then).
        dependencies: list[IDependable] = [added.policy_dependable] if added.policy_dependable is not None else []
        return s3.BucketNotificationDestinationConfig(
            arn=self._queue.queue_arn, type=s3.BucketNotificationDestinationType.QUEUE, dependencies=dependencies
        )


class IngestQueue(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        key_prefix: str,
        visibility_timeout: Duration,
        max_receive_count: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=RETENTION,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            retention_period=RETENTION,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=max_receive_count),
        )
        # One notification for every ObjectCreated event; the extension filter
        # lives in the labeler because S3 suffix filters are case-sensitive.
        filters = [s3.NotificationKeyFilter(prefix=key_prefix)] if key_prefix else []
        bucket.add_event_notification(s3.EventType.OBJECT_CREATED, AccountPinnedQueueDestination(self.queue), *filters)
