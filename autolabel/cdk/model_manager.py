"""The model manager: a scheduled Lambda that runs the model only while there is work.

Why a scheduled Lambda and not Step Functions: each decision needs three fresh
observations (model status, queue depth, trigger state) and is a pure function
of them plus a little remembered state; a one-minute schedule with a DynamoDB
lease is simpler, cheaper (about 44,000 short invocations a month) and easier
to test than a long-running state machine polling the same APIs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from autolabel.cdk._functions import model_arn, names
from autolabel.cdk.alarms import app_metric, at_least
from autolabel.cdk.exact_role_function import Grant, L2Grant, exact_role_function
from autolabel.cdk.lanes import ModelLane
from autolabel.cdk.settings import ModelRoute, PipelineSettings

# The one place the model start timeout lives: the ModelStuckStarting alarm's
# threshold (the manager only reports how many minutes it has been starting).
STARTING_TIMEOUT_MINUTES = 30
# The cost guard allows idleMinutes plus this margin (the manager's tick, the
# STOPPING minutes, metric delay) before it calls a running, idle model a leak.
COST_GUARD_MARGIN_MINUTES = 15
COST_GUARD_PERIOD = Duration.minutes(5)


class ModelManager(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PipelineSettings,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        event_source_mapping_id: str,
        event_source_mapping_arn: str,
        backfill_queue: sqs.IQueue,
        backfill_dead_letter_queue: sqs.IQueue,
        backfill_event_source_mapping_id: str,
        backfill_event_source_mapping_arn: str,
        bus: events.IEventBus,
        other_lanes: Sequence[ModelLane] = (),
    ) -> None:
        """The first model's lane by its parts (the one-model manager's ids); ``other_lanes``: the other models'.

        Every model is run by the same rules, each with its own state item,
        lease, queue, DLQ and trigger; its role may start, stop and describe
        exactly these model versions and pause exactly these triggers.
        """
        super().__init__(scope, construct_id)
        self.state_table = dynamodb.Table(
            self,
            "State",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,  # one small item, rebuilt on the next run
        )
        # Without projectArn: the project's ARN ends in its creation time, unknown
        # here; everything else is the configured project's name.
        routes = settings.routes or (
            ModelRoute(settings.project_version_arn, settings.key_prefix, settings.project_arn),
        )
        projects = sorted(
            {route.project_arn or model_arn.project_prefix(route.project_version_arn) + "/*" for route in routes}
        )
        statements = [
            ("DescribeTheProject", ["rekognition:DescribeProjectVersions"], _one_or_all(projects)),
            (
                "StartStopTheModelVersion",
                ["rekognition:StartProjectVersion", "rekognition:StopProjectVersion"],
                _one_or_all([route.project_version_arn for route in routes]),
            ),
            (
                "PauseResumeTheLabelerTrigger",
                ["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"],
                _one_or_all(
                    [event_source_mapping_arn, *(lane.event_source.event_source_mapping_arn for lane in other_lanes)]
                ),
            ),
            (
                "PauseResumeTheBackfillTrigger",
                ["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"],
                backfill_event_source_mapping_arn,
            ),
        ]
        # Exact actions on exactly these resources, through the L2 helpers.
        lane_queues: list[tuple[sqs.IQueue, sqs.IQueue]] = [
            (queue, dead_letter_queue),
            *((lane.queue, lane.dead_letter_queue) for lane in other_lanes),
        ]
        l2_grants: list[L2Grant] = [
            # Queue depth; and work that waited the grace period for a model that cannot
            # run goes to the DLQ instead of expiring: received and deleted here, sent there.
            *(_consume_grant(lane_queue) for lane_queue, _ in lane_queues),
            *(_send_grant(lane_dead_letters) for _, lane_dead_letters in lane_queues),
            # The backfill lane counts as work too, and is moved to its own DLQ the same way.
            lambda role: backfill_queue.grant(
                role, "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"
            ),
            lambda role: backfill_dead_letter_queue.grant(role, "sqs:SendMessage"),
            lambda role: self.state_table.grant(role, "dynamodb:UpdateItem"),  # state and lease (no index)
            bus.grant_put_events_to,
        ]
        if any(route.project_arn is None for route in routes):
            # DescribeProjects has no resource-level permissions; it finds the
            # project ARN once (pass -c projectArn=... to avoid it).
            statements.append(("FindTheProjectByName", ["rekognition:DescribeProjects"], "*"))
        environment = {
            "PROJECT_VERSION_ARN": settings.project_version_arn,
            "PROJECT_ARN": settings.project_arn or "",
            "QUEUE_URL": queue.queue_url,
            "EVENT_SOURCE_MAPPING_ID": event_source_mapping_id,
            "STATE_TABLE_NAME": self.state_table.table_name,
            "EVENT_BUS_NAME": bus.event_bus_name,
            "EVENT_SOURCE": settings.event_source,
            "IDLE_MINUTES": str(settings.idle_minutes),
            "MIN_INFERENCE_UNITS": str(settings.min_inference_units),
            "ALWAYS_ON": str(settings.always_on).lower(),
            "ALWAYS_ON_WINDOWS": settings.always_on_windows,
            "STOP_MODELS_STARTED_ELSEWHERE": str(settings.stop_models_started_elsewhere).lower(),
            "DEAD_LETTER_QUEUE_URL": dead_letter_queue.queue_url,
            "OUTAGE_GRACE_MINUTES": str(settings.model_outage_grace_hours * 60),
            "BACKFILL_QUEUE_URL": backfill_queue.queue_url,
            "BACKFILL_DEAD_LETTER_QUEUE_URL": backfill_dead_letter_queue.queue_url,
            "BACKFILL_EVENT_SOURCE_MAPPING_ID": backfill_event_source_mapping_id,
        }
        if other_lanes:
            # Several models: every lane, the first included (manager/config.py MODEL_LANES).
            first = {
                "projectVersionArn": settings.project_version_arn,
                "projectArn": settings.project_arn or "",
                "queueUrl": queue.queue_url,
                "deadLetterQueueUrl": dead_letter_queue.queue_url,
                "eventSourceMappingId": event_source_mapping_id,
            }
            environment["MODEL_LANES"] = Stack.of(self).to_json_string(
                [
                    first,
                    *(
                        {
                            "projectVersionArn": lane.route.project_version_arn,
                            "projectArn": lane.route.project_arn or "",
                            "queueUrl": lane.queue.queue_url,
                            "deadLetterQueueUrl": lane.dead_letter_queue.queue_url,
                            "eventSourceMappingId": lane.event_source.event_source_mapping_id,
                        }
                        for lane in other_lanes
                    ),
                ]
            )
            for name in (
                "PROJECT_VERSION_ARN",
                "PROJECT_ARN",
                "QUEUE_URL",
                "EVENT_SOURCE_MAPPING_ID",
                "DEAD_LETTER_QUEUE_URL",
            ):
                del environment[name]
        if settings.max_inference_units is not None:
            environment["MAX_INFERENCE_UNITS"] = str(settings.max_inference_units)
        built = exact_role_function(
            self,
            description="autolabel: start the model when work waits, stop it when idle",
            role_description="autolabel model manager: exactly the actions its code uses",
            handler="manager.handler.handler",
            grants=[Grant(*statement) for statement in statements],
            l2_grants=l2_grants,
            environment=environment,
            memory_size=256,
            timeout=Duration.seconds(30),
            reserved_concurrent_executions=1,  # one run at a time (the lease guards it too)
        )
        self.function, self.role, self.log_group = built.function, built.role, built.log_group
        self.schedule = events.Rule(
            self,
            "EveryMinute",
            description="autolabel model manager: one decision a minute",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )

        def metric(name: str) -> cloudwatch.Metric:
            return app_metric(names.MANAGER_SERVICE, name, "Maximum")

        self.alarms = [
            at_least(
                self,
                "ModelStuckStarting",
                metric("ModelStartingMinutes"),
                STARTING_TIMEOUT_MINUTES,
                f"The model has been STARTING for {STARTING_TIMEOUT_MINUTES} minutes or more.",
            ),
            at_least(
                self,
                "ModelFailed",
                metric("ModelFailed"),
                1,
                "The model version is FAILED: images wait in the queue (trigger paused).",
            ),
            at_least(
                self,
                "ModelNotFound",
                metric("ModelNotFound"),
                1,
                "The configured model version does not exist (deleted, or wrong ARN).",
            ),
            at_least(
                self,
                "WorkWaitsOnUnusableModel",
                metric("WorkWaitingOnUnusableModel"),
                1,
                f"Images wait for a model that cannot run (FAILED, deleted, not found). After "
                f"{settings.model_outage_grace_hours} h they are moved to the DLQ (redrive once the model runs).",
            ),
            at_least(
                self,
                "ManagerErrors",
                self.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
                1,
                "The model manager raised an error: while it fails the model is neither started nor stopped.",
            ),
            self._cost_guard(settings.project_version_arn, settings, queue, backfill_queue, "ModelRunningIdle"),
            # One cost guard per model, on its own inference units and its own lane.
            *(
                self._cost_guard(
                    lane.route.project_version_arn, settings, lane.queue, backfill_queue, f"ModelRunningIdle{number}"
                )
                for number, lane in enumerate(other_lanes, start=2)
            ),
        ]

    def _cost_guard(
        self,
        version_arn: str,
        settings: PipelineSettings,
        queue: sqs.IQueue,
        backfill_queue: sqs.IQueue,
        alarm_id: str,
    ) -> cloudwatch.Alarm:
        """The model RUNNING with both queues empty for longer than idleMinutes + a margin, whatever the cause.

        Built on Rekognition's own InServiceInferenceUnits and SQS's queue depth,
        not on the manager's metrics, so it also fires when the manager is
        broken, switched off by hand, or lost track of a model (and when someone
        else left it running). Only the manager's ``ModelKeptOn`` (alwaysOn or
        an always-on window: running idle on purpose) silences it; when the
        manager publishes nothing, that counts as "not kept on".
        """
        period = COST_GUARD_PERIOD
        units = cloudwatch.Metric(
            namespace="AWS/Rekognition",
            metric_name="InServiceInferenceUnits",
            dimensions_map={
                "ProjectName": model_arn.project_name(version_arn),
                "VersionName": model_arn.version_name(version_arn),
            },
            statistic="Average",
            period=period,
        )
        idle = cloudwatch.MathExpression(
            label="Model running with an empty queue (1 = yes)",
            expression=(
                "IF(FILL(units, 0) > 0 AND FILL(visible, 0) + FILL(inFlight, 0) + FILL(backfillVisible, 0) "
                "+ FILL(backfillInFlight, 0) == 0 AND FILL(keptOn, 0) == 0, 1, 0)"
            ),
            using_metrics={
                "units": units,
                "visible": queue.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum"),
                "inFlight": queue.metric_approximate_number_of_messages_not_visible(period=period, statistic="Maximum"),
                "backfillVisible": backfill_queue.metric_approximate_number_of_messages_visible(
                    period=period, statistic="Maximum"
                ),
                "backfillInFlight": backfill_queue.metric_approximate_number_of_messages_not_visible(
                    period=period, statistic="Maximum"
                ),
                "keptOn": app_metric(names.MANAGER_SERVICE, "ModelKeptOn", "Maximum"),
            },
            period=period,
        )
        minutes = settings.idle_minutes + COST_GUARD_MARGIN_MINUTES
        periods = math.ceil(minutes / period.to_minutes())
        return cloudwatch.Alarm(
            self,
            alarm_id,
            alarm_description=(
                f"The model has been RUNNING with an empty queue for {periods * period.to_minutes()} minutes "
                f"(idleMinutes {settings.idle_minutes} + {COST_GUARD_MARGIN_MINUTES}): it is billed per "
                "inference-unit hour for nothing. See docs/runbook.md."
            ),
            metric=idle,
            threshold=1,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )


def _one_or_all(resources: list[str]) -> str | list[str]:
    # One model: the single resource the statement always had.
    return resources[0] if len(resources) == 1 else resources


def _consume_grant(queue: sqs.IQueue) -> L2Grant:
    return lambda role: queue.grant(role, "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage")


def _send_grant(queue: sqs.IQueue) -> L2Grant:
    return lambda role: queue.grant(role, "sqs:SendMessage")
