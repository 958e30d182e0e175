"""Alarms (DLQ depth and age, oldest message age, function errors) and a dashboard."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from autolabel.cdk._functions import names
from autolabel.cdk.alarms import app_metric as service_metric
from autolabel.cdk.alarms import at_least

OLDEST_MESSAGE_ALARM_SECONDS = 900
# The DLQ keeps a message 14 days (SQS's maximum): warn 4 days before it expires.
DEAD_LETTER_EXPIRY_WARNING_SECONDS = 10 * 24 * 3600


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        extra_alarms: Sequence[cloudwatch.Alarm] = (),
        other_lanes: Sequence[tuple[str, sqs.IQueue, sqs.IQueue]] = (),
    ) -> None:
        """The first lane's ``queue`` and ``dead_letter_queue``; ``other_lanes``: (prefix, queue, DLQ) of the rest."""
        super().__init__(scope, construct_id)
        # CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed
        # key alias/aws/sns (its policy cannot be changed to let CloudWatch use it):
        # a customer-managed key whose policy lets CloudWatch, for this account's
        # alarms only, make the data key SNS encrypts the notification with.
        this_account = {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
        self.key = kms.Key(
            self,
            "AlarmTopicKey",
            description="autolabel: encrypts the alarm topic; CloudWatch alarms of this account may use it",
            enable_key_rotation=True,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccountPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=this_account,
            )
        )
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name="autolabel alarms", master_key=self.key, enforce_ssl=True
        )
        # The stack's topic policy replaces SNS's default one, so CloudWatch needs
        # its own grant to publish (only alarms of this account).
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccountPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    **this_account,
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
                    },
                },
            )
        )
        alarm_action = actions.SnsAction(self.topic)
        five_minutes = Duration.minutes(5)

        self.dlq_alarm = at_least(
            self,
            "DeadLetterQueueNotEmpty",
            dead_letter_queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(1)),
            1,
            "Messages reached the DLQ: fix the cause (see docs/runbook.md), then redrive.",
        )
        self.age_alarm = at_least(
            self,
            "OldestMessageTooOld",
            queue.metric_approximate_age_of_oldest_message(period=five_minutes, statistic="Maximum"),
            OLDEST_MESSAGE_ALARM_SECONDS,
            "Images wait too long: model not running, throttled, or the labeler is failing.",
        )
        self.dead_letters_expiring_alarm = at_least(
            self,
            "DeadLettersExpiringSoon",
            dead_letter_queue.metric_approximate_age_of_oldest_message(period=Duration.hours(1), statistic="Maximum"),
            DEAD_LETTER_EXPIRY_WARNING_SECONDS,
            "The oldest DLQ message is 10 days old; SQS deletes it at 14 days. Fix the cause and redrive now.",
        )
        # "A bug or a misconfiguration", never routine throttling: the function
        # raising (configuration at cold start), an unexpected exception caught
        # per record (UnexpectedErrors), or AccessDenied / model not found
        # (DeploymentFaults). A batch whose records are all retried does not raise.
        self.errors_alarm = at_least(
            self,
            "FunctionErrors",
            cloudwatch.MathExpression(
                expression="FILL(raised, 0) + FILL(unexpected, 0) + FILL(deployment, 0)",
                using_metrics={
                    "raised": function.metric_errors(period=five_minutes, statistic="Sum"),
                    "unexpected": service_metric(names.LABELER_SERVICE, "UnexpectedErrors"),
                    "deployment": service_metric(names.LABELER_SERVICE, "DeploymentFaults"),
                },
                label="Labeler errors (bugs and misconfiguration)",
                period=five_minutes,
            ),
            1,
            "The labeler hit a bug or a misconfiguration: it raised (bad configuration), met an unexpected "
            "error, or Rekognition answered AccessDenied / ResourceNotFound. Throttling never fires this.",
        )
        # The same three alarms for every other model lane (ids numbered from 2, in the routes' order).
        self.lane_alarms: list[cloudwatch.Alarm] = []
        for number, (prefix, lane_queue, lane_dead_letters) in enumerate(other_lanes, start=2):
            lane = f"The lane of prefix {prefix!r}: "
            self.lane_alarms += [
                at_least(
                    self,
                    f"DeadLetterQueueNotEmpty{number}",
                    lane_dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(1)),
                    1,
                    lane + "messages reached its DLQ: fix the cause (see docs/runbook.md), then redrive.",
                ),
                at_least(
                    self,
                    f"OldestMessageTooOld{number}",
                    lane_queue.metric_approximate_age_of_oldest_message(period=five_minutes, statistic="Maximum"),
                    OLDEST_MESSAGE_ALARM_SECONDS,
                    lane + "images wait too long: its model not running, throttled, or the labeler is failing.",
                ),
                at_least(
                    self,
                    f"DeadLettersExpiringSoon{number}",
                    lane_dead_letters.metric_approximate_age_of_oldest_message(
                        period=Duration.hours(1), statistic="Maximum"
                    ),
                    DEAD_LETTER_EXPIRY_WARNING_SECONDS,
                    lane + "its oldest DLQ message is 10 days old; SQS deletes it at 14 days. Redrive now.",
                ),
            ]
        for alarm in (
            self.dlq_alarm,
            self.age_alarm,
            self.dead_letters_expiring_alarm,
            self.errors_alarm,
            *self.lane_alarms,
            *extra_alarms,
        ):
            alarm.add_alarm_action(alarm_action)

        def app_metric(name: str, statistic: str = "Sum") -> cloudwatch.Metric:
            return service_metric(names.LABELER_SERVICE, name, statistic)

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Images",
                left=[app_metric("ImagesLabeled"), app_metric("ImagesFailed"), app_metric("ImagesSkipped")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Labels per image",
                left=[app_metric("LabelsPerImage", "Average"), app_metric("LabelsPerImage", "Maximum")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Rekognition latency (ms) and throttles",
                left=[app_metric("RekognitionLatency", "p50"), app_metric("RekognitionLatency", "p99")],
                right=[app_metric("RekognitionThrottles"), app_metric("RecordsRetried")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Delivery: possible duplicates, unrecorded marks, out of time",
                left=[app_metric("AmbiguousPublishes"), app_metric("PublishMarksFailed")],
                right=[app_metric("RecordsOutOfTime"), app_metric("UnexpectedErrors"), app_metric("DeploymentFaults")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Ingest queue" if not other_lanes else "Ingest queues (one per model lane)",
                left=[
                    lane_queue.metric_approximate_number_of_messages_visible(period=five_minutes)
                    for lane_queue in (queue, *(lane[1] for lane in other_lanes))
                ],
                right=[
                    lane_queue.metric_approximate_age_of_oldest_message(period=five_minutes, statistic="Maximum")
                    for lane_queue in (queue, *(lane[1] for lane in other_lanes))
                ],
                width=8,
            ),
            cloudwatch.AlarmWidget(title="Dead-letter queue", alarm=self.dlq_alarm, width=8),
            cloudwatch.GraphWidget(
                title="Labeler function",
                left=[function.metric_invocations(period=five_minutes), function.metric_errors(period=five_minutes)],
                right=[function.metric_duration(period=five_minutes, statistic="p99")],
                width=8,
            ),
        )
