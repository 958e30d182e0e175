"""The model manager's decision: pure, so every transition is tested with a fake clock.

Rules:
- The labeler's SQS trigger is enabled only while the model is RUNNING, so no
  message burns its receive count against a model that cannot answer.
- Work waiting (messages visible or in flight, in the ingest queue or the
  backfill queue), an always-on window or the
  always-on switch make the model wanted; a wanted, stopped model is started.
- A running model is stopped after ``idle_minutes`` with no work, unless it
  is wanted for another reason, or it was started by someone else (unless
  ``stop_models_started_elsewhere``).
- Nothing waits forever: the state remembers since when work has been waiting
  while the model was not RUNNING (whatever the reason: FAILED, deleted, a
  start that keeps failing or never ends). Once that lasts
  ``outage_grace_minutes``, the waiting messages are moved to the DLQ (every
  run, until the model runs or the queue is empty), long before the queue's
  retention would delete them. A queue seen empty, a RUNNING model, or a model
  that becomes startable again (repaired, e.g. FAILED -> STOPPED) restarts the
  clock, so a message waits at most about the grace period.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from manager.config import ManagerConfig

RUNNING = "RUNNING"
STARTING = "STARTING"
STOPPING = "STOPPING"
STOPPED = "STOPPED"
FAILED = "FAILED"
STARTABLE = frozenset({STOPPED, "TRAINING_COMPLETED"})
# Statuses the manager can bring to RUNNING by itself (or that are on the way).
RUNNABLE = frozenset({RUNNING, STARTING, STOPPING, *STARTABLE})


@dataclass(frozen=True)
class Observation:
    status: str | None  # None: the model version was not found
    visible: int  # messages waiting in the ingest queue
    in_flight: int  # messages received and not yet deleted
    trigger_enabled: bool
    # The backfill lane (autolabel backfill): its own queue and trigger, counted as work too.
    backfill_visible: int = 0
    backfill_in_flight: int = 0
    backfill_trigger_enabled: bool | None = None  # None: no backfill lane

    @property
    def work(self) -> bool:
        return self.visible + self.in_flight + self.backfill_visible + self.backfill_in_flight > 0


@dataclass(frozen=True)
class ManagerState:
    """What the manager remembers between runs (one item in its state table)."""

    started_by_us: bool = False
    idle_since: float | None = None  # epoch seconds since when no work was seen
    starting_since: float | None = None  # when it asked for a start (stuck detection)
    last_status: str | None = None
    waiting_since: float | None = None  # since when work has waited while the model was not RUNNING


@dataclass(frozen=True)
class Plan:
    start: bool
    stop: bool
    trigger_enabled: bool  # the trigger's wanted state
    state: ManagerState
    reason: str
    starting_minutes: float = 0.0  # how long a start has been pending (alarmed when too long)
    waiting_minutes: float = 0.0  # how long work has waited for a model that is not RUNNING
    move_to_dead_letter_queue: bool = False  # waited past the grace period: DLQ it, never let it expire
    work_waits_on_unusable_model: bool = False  # FAILED, deleted...: alarmed at once

    @property
    def transition(self) -> str | None:
        return STARTING if self.start else STOPPING if self.stop else None


def in_window(config: ManagerConfig, now: datetime) -> bool:
    moment = now.astimezone(UTC)
    minute = moment.hour * 60 + moment.minute
    return any(window.contains(moment.weekday(), minute) for window in config.always_on_windows)


def decide(observation: Observation, state: ManagerState, config: ManagerConfig, now: datetime) -> Plan:
    clock = now.timestamp()
    status = observation.status
    repaired = state.last_status not in RUNNABLE and status in RUNNABLE  # e.g. FAILED -> STOPPED: a fresh chance
    if status == RUNNING or not observation.work:
        waiting_since = None
    elif state.waiting_since is None or repaired:
        waiting_since = clock
    else:
        waiting_since = state.waiting_since
    plan = _decide_model(observation, replace(state, waiting_since=waiting_since), config, now)
    waiting_minutes = (clock - waiting_since) / 60 if waiting_since is not None else 0.0
    return replace(
        plan,
        waiting_minutes=waiting_minutes,
        move_to_dead_letter_queue=waiting_since is not None and waiting_minutes >= config.outage_grace_minutes,
        work_waits_on_unusable_model=observation.work and status not in RUNNABLE,
    )


def _decide_model(observation: Observation, state: ManagerState, config: ManagerConfig, now: datetime) -> Plan:
    clock = now.timestamp()
    kept_on = config.always_on or in_window(config, now)
    wanted = kept_on or observation.work
    status = observation.status
    state = replace(state, last_status=status)

    if status == RUNNING:
        idle_since = None if observation.work else (state.idle_since or clock)
        state = replace(state, idle_since=idle_since, starting_since=None)
        idle_for = (clock - idle_since) / 60 if idle_since is not None else 0.0
        ours = state.started_by_us or config.stop_models_started_elsewhere
        if not kept_on and ours and idle_for >= config.idle_minutes:
            return Plan(
                False,
                True,
                False,
                replace(state, started_by_us=False, idle_since=None),
                f"idle for {idle_for:.0f} min (limit {config.idle_minutes})",
            )
        reason = "running" if ours else "running (started elsewhere: not stopped by autolabel)"
        return Plan(False, False, True, state, reason)

    if status in STARTABLE:
        if wanted:
            why = "always on" if config.always_on else "always-on window" if kept_on else "work is waiting"
            return Plan(
                True, False, False, replace(state, started_by_us=True, starting_since=clock, idle_since=None), why
            )
        return Plan(False, False, False, replace(state, started_by_us=False, starting_since=None), "stopped, idle")

    if status == STARTING:
        since = state.starting_since if state.starting_since is not None else clock
        return Plan(
            False, False, False, replace(state, starting_since=since), "starting", starting_minutes=(clock - since) / 60
        )

    # STOPPING, FAILED, training, copying, not found...: nothing can be labeled;
    # keep the trigger off so messages wait instead of burning receives.
    return Plan(
        False, False, False, replace(state, starting_since=None), f"model is {status or 'NOT FOUND'}: trigger paused"
    )
