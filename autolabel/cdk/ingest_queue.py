"""The SQS buffer between S3 and the labeler, with its dead-letter queue, and how object events reach it.

``notifications=s3``: an S3 event notification on the bucket (ObjectCreated,
and ObjectRemoved with deletions on). ``notifications=eventbridge``: a rule on
the account's default bus forwards the bucket's ``aws.s3`` events (Object
Created, and Object Deleted with deletions on); the bucket's notification
configuration is left untouched. ``notifications=sns``: the queue subscribes
(raw delivery) to the SNS topic an existing bucket already publishes to
(docs/behaviour.md#inbound-messages).
"""

from __future__ import annotations

import jsii
from aws_cdk import Aws, Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces.aws_events import IRuleRef
from aws_cdk.interfaces.aws_s3 import IBucketRef
from constructs import Construct, IDependable

# SQS's maximum: work waiting on a model that cannot run is moved to the DLQ by
# the model manager after its grace period, long before this.
RETENTION = Duration.days(14)


def queue_with_dead_letters(
    scope: Construct, visibility_timeout: Duration, max_receive_count: int
) -> tuple[sqs.Queue, sqs.Queue]:
    """(queue, its DLQ), ids ``Queue`` and ``DeadLetterQueue``: both encrypted, TLS only, kept 14 days."""
    dead_letters = sqs.Queue(
        scope,
        "DeadLetterQueue",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=RETENTION,
    )
    queue = sqs.Queue(
        scope,
        "Queue",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=RETENTION,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=max_receive_count),
    )
    return queue, dead_letters


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


@jsii.implements(events.IRuleTarget)
class SendOnlyQueueTarget:
    """Like ``aws_events_targets.SqsQueue``, granting EventBridge ``sqs:SendMessage`` only.

    The L2 target grants ``GetQueueAttributes`` and ``GetQueueUrl`` too, which
    delivery does not need. Each queue (the ingest queue, and the DLQ for
    events EventBridge cannot deliver) accepts events.amazonaws.com only for
    this rule (``aws:SourceArn``).
    """

    def __init__(self, queue: sqs.Queue, dead_letter_queue: sqs.Queue) -> None:
        self._queue = queue
        self._dead_letter_queue = dead_letter_queue

    def bind(self, rule: IRuleRef, id: str | None = None) -> events.RuleTargetConfig:  # IRuleTarget.bind
        for queue in (self._queue, self._dead_letter_queue):
            queue.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["sqs:SendMessage"],
                    resources=[queue.queue_arn],
                    conditions={"ArnEquals": {"aws:SourceArn": rule.rule_ref.rule_arn}},
                )
            )
        return events.RuleTargetConfig(
            arn=self._queue.queue_arn,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self._dead_letter_queue.queue_arn),
            # EventBridge's maximum: retried for a day before it gives up (to the DLQ).
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_event_age_in_seconds=24 * 3600, maximum_retry_attempts=185
            ),
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
        notifications: str = "s3",
        notification_topic_arn: str | None = None,
        deletions: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.queue, self.dead_letter_queue = queue_with_dead_letters(self, visibility_timeout, max_receive_count)
        self.notifications = notifications
        self.rule: events.Rule | None = None
        if notifications == "sns":
            # The bucket's notifications already go to this topic (its owner's
            # configuration, prefix and event types included): subscribe the queue
            # with raw delivery. The subscription adds the queue policy: the topic
            # (aws:SourceArn) may send, nothing else.
            if notification_topic_arn is None:
                raise ValueError("notifications=sns needs notification_topic_arn")
            topic = sns.Topic.from_topic_arn(self, "NotificationTopic", notification_topic_arn)
            topic.add_subscription(
                subscriptions.SqsSubscription(
                    self.queue, raw_message_delivery=True, dead_letter_queue=self.dead_letter_queue
                )
            )
            return
        self.rule = self.add_bucket(bucket, key_prefix=key_prefix, deletions=deletions)

    def add_bucket(
        self, bucket: s3.IBucket, *, key_prefix: str, deletions: bool, rule_id: str = "ObjectEvents"
    ) -> events.Rule | None:
        """The bucket's object events (under ``key_prefix``) to the queue: a notification, or a default-bus rule."""
        if self.notifications == "eventbridge":
            return self._eventbridge_rule(bucket, key_prefix, deletions, rule_id)
        # One notification for every ObjectCreated (and ObjectRemoved) event; the extension
        # filter lives in the labeler because S3 suffix filters are case-sensitive.
        filters = [s3.NotificationKeyFilter(prefix=key_prefix)] if key_prefix else []
        destination = AccountPinnedQueueDestination(self.queue)
        bucket.add_event_notification(s3.EventType.OBJECT_CREATED, destination, *filters)
        if deletions:
            bucket.add_event_notification(s3.EventType.OBJECT_REMOVED, destination, *filters)
        return None

    def _eventbridge_rule(self, bucket: s3.IBucket, key_prefix: str, deletions: bool, rule_id: str) -> events.Rule:
        """The default bus's aws.s3 events of this bucket (and prefix) to the queue.

        The target adds the queue policy: events.amazonaws.com may send, only
        for this rule (aws:SourceArn). Events EventBridge cannot deliver go to
        the DLQ (which alarms) instead of being dropped after its retries.
        """
        detail: dict[str, object] = {"bucket": {"name": [bucket.bucket_name]}}
        if key_prefix:
            detail["object"] = {"key": [{"prefix": key_prefix}]}
        return events.Rule(
            self,
            rule_id,
            description="autolabel: the image bucket's S3 object events to the ingest queue",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created", "Object Deleted"] if deletions else ["Object Created"],
                detail=detail,
            ),
            targets=[SendOnlyQueueTarget(self.queue, self.dead_letter_queue)],
        )
