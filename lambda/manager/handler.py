"""Scheduled (every minute) entry point of the model manager.

With several models, one run runs each model's ``Manager`` in turn, each under
its own lease and state item, so a model that is stopped, starting or failing
(or whose run raises) never holds back another's lane (``ModelFleet``).
One model's run: take the lease, observe (model status, the depth of the ingest and
backfill queues, the state of their triggers),
decide (``logic.decide``), act in a safe order (pause the trigger before a
stop; record the intent before a start; resume the trigger only once RUNNING),
announce transitions it causes, save the state and release the lease.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from manager.adapters import CustomLabelsModel, LabelerTrigger, ManagerStateStore, QueueBacklog
from manager.config import ManagerConfig
from manager.logic import FAILED, RUNNING, Observation, Plan, decide, in_window
from shared.aws_config import DATA_CONFIG
from shared.event_entry import EventEntry
from shared.event_publisher import EventPublisher
from shared.lambda_setup import BuiltOnFirstUse
from shared.names import MANAGER_SERVICE, METRICS_NAMESPACE

MODEL_STATE_CHANGED = "Model State Changed"
LEASE_SECONDS = 50.0  # under the one-minute schedule
# Up to 1,000 messages moved to the DLQ per run (about 300 SQS calls, seconds),
# well inside the function's timeout and the lease.
MOVE_BATCHES_PER_RUN = 100

logger = Logger(service=MANAGER_SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=MANAGER_SERVICE)


@dataclass
class Manager:
    config: ManagerConfig
    model: CustomLabelsModel
    queue: QueueBacklog
    trigger: LabelerTrigger
    store: ManagerStateStore
    publisher: EventPublisher
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    last_observation: Observation | None = None
    last_moved: int = 0  # messages the last run moved to the DLQ
    move_batches_per_run: int = MOVE_BATCHES_PER_RUN
    # The backfill lane (None: not deployed): counted as work, its trigger follows the ingest one.
    backfill_queue: QueueBacklog | None = None
    backfill_trigger: LabelerTrigger | None = None

    @classmethod
    def from_clients(
        cls,
        config: ManagerConfig,
        *,
        rekognition: Any,
        sqs: Any,
        lambda_client: Any,
        dynamodb: Any,
        events: Any,
        clock: Callable[[], datetime] | None = None,
    ) -> Manager:
        now = clock or (lambda: datetime.now(UTC))
        return cls(
            config=config,
            model=CustomLabelsModel(rekognition, config.project_arn, config.project_version_arn),
            queue=QueueBacklog(sqs, config.queue_url),
            trigger=LabelerTrigger(lambda_client, config.event_source_mapping_id),
            store=ManagerStateStore(
                dynamodb, config.state_table_name, config.project_version_arn, clock=lambda: now().timestamp()
            ),
            publisher=EventPublisher(events, config.event_bus_name, config.event_source),
            clock=now,
            backfill_queue=QueueBacklog(sqs, config.backfill_queue_url) if config.backfill_queue_url else None,
            backfill_trigger=(
                LabelerTrigger(lambda_client, config.backfill_event_source_mapping_id)
                if config.backfill_event_source_mapping_id
                else None
            ),
        )

    def run_once(self, owner: str | None = None) -> Plan | None:
        owner = owner or str(uuid.uuid4())
        self.last_moved = 0
        state = self.store.acquire(owner, LEASE_SECONDS)
        if state is None:
            logger.info("Another manager run holds the lease; nothing to do")
            return None
        plan: Plan | None = None
        try:
            visible, in_flight = self.queue.depth()
            backfill_visible, backfill_in_flight = self.backfill_queue.depth() if self.backfill_queue else (0, 0)
            observation = Observation(
                self.model.status(),
                visible,
                in_flight,
                self.trigger.enabled(),
                backfill_visible=backfill_visible,
                backfill_in_flight=backfill_in_flight,
                backfill_trigger_enabled=self.backfill_trigger.enabled() if self.backfill_trigger else None,
            )
            plan = decide(observation, state, self.config, self.clock())
            self._act(owner, observation, plan)
            return plan
        finally:
            self.store.save_and_release(owner, plan.state if plan is not None else state)

    def _act(self, owner: str, observation: Observation, plan: Plan) -> None:
        extra = {
            "status": observation.status,
            "visible": observation.visible,
            "inFlight": observation.in_flight,
            "backfillVisible": observation.backfill_visible,
            "backfillInFlight": observation.backfill_in_flight,
            "reason": plan.reason,
        }
        if observation.trigger_enabled and not plan.trigger_enabled:
            self.trigger.set_enabled(False)  # first: no batch may meet a stopping model
            logger.info("Paused the labeler's SQS trigger", extra=extra)
        if self.backfill_trigger is not None and observation.backfill_trigger_enabled and not plan.trigger_enabled:
            self.backfill_trigger.set_enabled(False)
            logger.info("Paused the labeler's backfill trigger", extra=extra)
        if plan.move_to_dead_letter_queue:
            self._dead_letter_waiting_work(observation, plan, extra)
        if plan.start:
            # The intent ("we are starting it") is saved under the lease before the
            # call: if the save after it fails or this run dies, the model is still
            # ours and gets stopped when idle. A start that then does not happen is
            # harmless: the next run sees a stopped model and decides again.
            self.store.record(owner, plan.state)
            if self.model.start(self.config.min_inference_units, self.config.max_inference_units):
                logger.info("Started the model", extra=extra)
                self._announce(observation.status, "STARTING", plan.reason)
        if plan.stop and self.model.stop():
            logger.info("Stopped the model", extra=extra)
            self._announce(observation.status, "STOPPING", plan.reason)
        if plan.trigger_enabled and not observation.trigger_enabled:
            self.trigger.set_enabled(True)
            logger.info("Resumed the labeler's SQS trigger", extra=extra)
        if self.backfill_trigger is not None and plan.trigger_enabled and not observation.backfill_trigger_enabled:
            self.backfill_trigger.set_enabled(True)
            logger.info("Resumed the labeler's backfill trigger", extra=extra)
        self.last_observation = observation

    def _dead_letter_waiting_work(self, observation: Observation, plan: Plan, extra: dict[str, Any]) -> None:
        """Work has waited the grace period for a model that is not running: to the DLQ, before it can expire."""
        if self.config.dead_letter_queue_url is None:
            logger.error("Work waited past the grace period but no DLQ is configured", extra=extra)
            return
        reason = (
            f"waited {plan.waiting_minutes:.0f} min (grace {self.config.outage_grace_minutes}) "
            f"for model {self.config.project_version_arn} ({observation.status or 'NOT FOUND'})"
        )
        self.last_moved = self.queue.move_waiting_to(
            self.config.dead_letter_queue_url, reason=reason, max_batches=self.move_batches_per_run
        )
        # Backfill messages go to the backfill DLQ (redriven to the backfill lane, not ahead of fresh uploads).
        if self.backfill_queue is not None and self.config.backfill_dead_letter_queue_url:
            self.last_moved += self.backfill_queue.move_waiting_to(
                self.config.backfill_dead_letter_queue_url, reason=reason, max_batches=self.move_batches_per_run
            )
        logger.warning(
            "Moved waiting messages to the DLQ: the model has not run for the grace period; redrive once it runs",
            extra={**extra, "moved": self.last_moved, "waitingMinutes": round(plan.waiting_minutes)},
        )

    def _announce(self, previous: str | None, requested: str, reason: str) -> None:
        detail = {
            "schemaVersion": "1",
            "projectVersionArn": self.config.project_version_arn,
            "previousStatus": previous,
            "status": requested,
            "reason": reason,
            "minInferenceUnits": self.config.min_inference_units,
            "maxInferenceUnits": self.config.max_inference_units,
            "at": self.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        entry = EventEntry(MODEL_STATE_CHANGED, detail, json.dumps(detail), f"{previous}->{requested}")
        failures = self.publisher.publish([entry]).failures
        if failures:  # the transition happened; the event is informational
            logger.warning("Could not publish Model State Changed", extra={"error": next(iter(failures.values()))})


@dataclass
class ModelFleet:
    """Every model's manager, run one after the other; one model's trouble stays in its lane.

    Each model has its own state item and lease (keyed by its version ARN),
    queue, DLQ and trigger. A run that raises for one model is logged and the
    others still run; the run then raises, so ``ManagerErrors`` alarms. With
    several models the backfill lane is shared: it counts as work for every
    model, and its trigger runs only while every model's lane does (it holds
    keys of any route).
    """

    managers: list[Manager]
    backfill_trigger: LabelerTrigger | None = None  # several models: the shared backfill lane's
    last_plans: list[Plan | None] = field(default_factory=list)

    @classmethod
    def from_clients(cls, config: ManagerConfig, **clients: Any) -> ModelFleet:
        configs = config.lane_configs()
        if len(configs) == 1:
            return cls([Manager.from_clients(config, **clients)])
        managers = [Manager.from_clients(lane, **clients) for lane in configs]
        shared = managers[0].backfill_trigger
        for manager in managers:
            manager.backfill_trigger = None  # followed here, once every model has decided
        return cls(managers, backfill_trigger=shared)

    def run_once(self, owner: str | None = None) -> list[Plan | None]:
        owner = owner or str(uuid.uuid4())
        self.last_plans = []
        failed: list[Exception] = []
        for manager in self.managers:
            try:
                self.last_plans.append(manager.run_once(owner))
            except Exception as error:  # one model's fault must not stop the others' runs
                logger.exception("The run of one model failed", extra={"model": manager.config.project_version_arn})
                failed.append(error)
                self.last_plans.append(None)
        self._follow_backfill_trigger()
        if failed:
            raise failed[0]
        return self.last_plans

    def _follow_backfill_trigger(self) -> None:
        if self.backfill_trigger is None:
            return
        wanted = all(plan is not None and plan.trigger_enabled for plan in self.last_plans)
        if self.backfill_trigger.enabled() != wanted:
            self.backfill_trigger.set_enabled(wanted)
            logger.info(
                "Resumed the labeler's backfill trigger (every model running)"
                if wanted
                else "Paused the labeler's backfill trigger (a model is not running)"
            )


def _manager_from_environment() -> ModelFleet:
    config = ManagerConfig.from_environ(os.environ)
    return ModelFleet.from_clients(
        config,
        rekognition=boto3.client("rekognition", config=DATA_CONFIG),
        sqs=boto3.client("sqs", config=DATA_CONFIG),
        lambda_client=boto3.client("lambda", config=DATA_CONFIG),
        dynamodb=boto3.client("dynamodb", config=DATA_CONFIG),
        events=boto3.client("events", config=DATA_CONFIG),
    )


_manager = BuiltOnFirstUse(_manager_from_environment)
# Tests and the simulations inject their own manager (or fleet); None rebuilds from the environment.
use_manager = _manager.use
current_manager = _manager.get


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    current: Manager | ModelFleet = current_manager()
    fleet = current if isinstance(current, ModelFleet) else ModelFleet([current])
    fleet.run_once(owner=getattr(context, "aws_request_id", None))
    ran = [
        (manager, plan, manager.last_observation)
        for manager, plan in zip(fleet.managers, fleet.last_plans, strict=True)
        if plan is not None and manager.last_observation is not None
    ]
    if not ran:
        return {"acted": False}
    _emit_metrics(ran)
    if len(fleet.managers) == 1:
        manager, plan, _ = ran[0]
        return _summary(manager, plan)
    return {
        "acted": True,
        "models": {manager.config.project_version_arn: _summary(manager, plan) for manager, plan, _ in ran},
    }


def _summary(manager: Manager, plan: Plan) -> dict[str, Any]:
    return {
        "acted": True,
        "start": plan.start,
        "stop": plan.stop,
        "triggerEnabled": plan.trigger_enabled,
        "reason": plan.reason,
        "movedToDeadLetterQueue": manager.last_moved,
    }


def _emit_metrics(ran: list[tuple[Manager, Plan, Observation]]) -> None:
    """The alarms' metrics; with several models, the worst model's figure (each model's reason is in its logs)."""
    statuses = [observation.status for _, _, observation in ran]
    plans = [plan for _, plan, _ in ran]
    # The alarms of the stack: a model FAILED or not found, a start pending too long.
    metrics.add_metric(name="ModelRunning", unit=MetricUnit.Count, value=int(all(s == RUNNING for s in statuses)))
    metrics.add_metric(name="ModelFailed", unit=MetricUnit.Count, value=int(FAILED in statuses))
    metrics.add_metric(name="ModelNotFound", unit=MetricUnit.Count, value=int(None in statuses))
    metrics.add_metric(
        name="ModelStartingMinutes", unit=MetricUnit.Count, value=max(plan.starting_minutes for plan in plans)
    )
    # Running idle on purpose (alwaysOn or an always-on window): silences the cost guard alarm.
    config = ran[0][0].config
    kept_on = config.always_on or in_window(config, ran[0][0].clock())
    metrics.add_metric(name="ModelKeptOn", unit=MetricUnit.Count, value=int(kept_on))
    # Work waiting on a FAILED / deleted model (alarmed at once), for how long, and what reached the DLQ.
    metrics.add_metric(
        name="WorkWaitingOnUnusableModel",
        unit=MetricUnit.Count,
        value=int(any(plan.work_waits_on_unusable_model for plan in plans)),
    )
    metrics.add_metric(
        name="WorkWaitingMinutes", unit=MetricUnit.Count, value=max(plan.waiting_minutes for plan in plans)
    )
    metrics.add_metric(
        name="MessagesMovedToDeadLetterQueue", unit=MetricUnit.Count, value=sum(m.last_moved for m, _, _ in ran)
    )
