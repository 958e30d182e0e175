"""Every transition of the model manager's decision, with a fake clock."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from manager.config import ManagerConfig, parse_windows
from manager.logic import ManagerState, Observation, decide
from shared.validation import ConfigError

VERSION_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/widgets/version/widgets.1/1700000000000"
PROJECT_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/widgets/1690000000000"
CONFIG = ManagerConfig(VERSION_ARN, PROJECT_ARN, "queue-url", "esm-id", "state", "bus")
MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday


def observe(status: str | None, visible: int = 0, in_flight: int = 0, trigger: bool = False) -> Observation:
    return Observation(status, visible, in_flight, trigger)


def test_stopped_model_with_waiting_work_is_started_and_trigger_stays_paused() -> None:
    plan = decide(observe("STOPPED", visible=3), ManagerState(), CONFIG, MONDAY_NOON)
    assert plan.start and not plan.stop and not plan.trigger_enabled
    assert plan.state.started_by_us and plan.state.starting_since == MONDAY_NOON.timestamp()
    assert plan.transition == "STARTING"


def test_in_flight_work_counts_as_work() -> None:
    assert decide(observe("STOPPED", in_flight=1), ManagerState(), CONFIG, MONDAY_NOON).start


def test_training_completed_model_is_startable() -> None:
    assert decide(observe("TRAINING_COMPLETED", visible=1), ManagerState(), CONFIG, MONDAY_NOON).start


def test_stopped_model_without_work_stays_stopped() -> None:
    plan = decide(observe("STOPPED", trigger=True), ManagerState(), CONFIG, MONDAY_NOON)
    assert not plan.start and not plan.trigger_enabled  # a stray enabled trigger is paused


def test_starting_model_keeps_the_trigger_paused_and_reports_how_long() -> None:
    state = ManagerState(started_by_us=True, starting_since=MONDAY_NOON.timestamp())
    plan = decide(observe("STARTING", visible=5), state, CONFIG, MONDAY_NOON + timedelta(minutes=7))
    assert not plan.start and not plan.trigger_enabled
    assert plan.starting_minutes == pytest.approx(7)


def test_running_model_resumes_the_trigger_and_forgets_idleness() -> None:
    state = ManagerState(started_by_us=True, idle_since=MONDAY_NOON.timestamp() - 600)
    plan = decide(observe("RUNNING", visible=2), state, CONFIG, MONDAY_NOON)
    assert plan.trigger_enabled and not plan.stop and plan.state.idle_since is None


def test_running_model_is_stopped_after_the_idle_period_only() -> None:
    state = ManagerState(started_by_us=True)
    first = decide(observe("RUNNING", trigger=True), state, CONFIG, MONDAY_NOON)
    assert not first.stop and first.state.idle_since == MONDAY_NOON.timestamp()
    almost = decide(observe("RUNNING", trigger=True), first.state, CONFIG, MONDAY_NOON + timedelta(minutes=14))
    assert not almost.stop and almost.trigger_enabled
    done = decide(observe("RUNNING", trigger=True), almost.state, CONFIG, MONDAY_NOON + timedelta(minutes=15))
    assert done.stop and not done.trigger_enabled and done.transition == "STOPPING"
    assert not done.state.started_by_us


def test_model_started_elsewhere_is_never_stopped_by_default() -> None:
    plan = decide(observe("RUNNING"), ManagerState(idle_since=MONDAY_NOON.timestamp() - 3600), CONFIG, MONDAY_NOON)
    assert not plan.stop and plan.trigger_enabled and "started elsewhere" in plan.reason


def test_option_stops_models_started_elsewhere_too() -> None:
    config = dataclasses.replace(CONFIG, stop_models_started_elsewhere=True)
    plan = decide(observe("RUNNING"), ManagerState(idle_since=MONDAY_NOON.timestamp() - 3600), config, MONDAY_NOON)
    assert plan.stop


def test_always_on_starts_without_work_and_never_stops() -> None:
    config = dataclasses.replace(CONFIG, always_on=True)
    assert decide(observe("STOPPED"), ManagerState(), config, MONDAY_NOON).start
    idle = ManagerState(started_by_us=True, idle_since=MONDAY_NOON.timestamp() - 86400)
    assert not decide(observe("RUNNING"), idle, config, MONDAY_NOON).stop


def test_always_on_window_keeps_the_model_on_inside_and_lets_it_stop_outside() -> None:
    config = dataclasses.replace(CONFIG, always_on_windows=parse_windows("Mon-Fri 08:00-18:00", "W"))
    assert decide(observe("STOPPED"), ManagerState(), config, MONDAY_NOON).start
    idle = ManagerState(started_by_us=True, idle_since=MONDAY_NOON.timestamp() - 3600)
    assert not decide(observe("RUNNING"), idle, config, MONDAY_NOON).stop
    evening = MONDAY_NOON.replace(hour=19)
    idle_evening = dataclasses.replace(idle, idle_since=evening.timestamp() - 3600)
    assert decide(observe("RUNNING"), idle_evening, config, evening).stop
    sunday = MONDAY_NOON - timedelta(days=1)
    assert not decide(observe("STOPPED"), ManagerState(), config, sunday).start


@pytest.mark.parametrize("status", ["STOPPING", "FAILED", "TRAINING_IN_PROGRESS", "DEPRECATED", None])
def test_unusable_model_pauses_the_trigger_and_is_not_started(status: str | None) -> None:
    plan = decide(observe(status, visible=10, trigger=True), ManagerState(started_by_us=True), CONFIG, MONDAY_NOON)
    assert not plan.start and not plan.stop and not plan.trigger_enabled


def test_windows_parse_and_reject_nonsense() -> None:
    (window,) = parse_windows("Fri-Mon 22:00-23:30", "W")
    assert window.days == frozenset({4, 5, 6, 0}) and (window.start_minute, window.end_minute) == (1320, 1410)
    assert len(parse_windows("Mon 08:00-12:00; Sat 09:00-10:00", "W")) == 2
    for bad in ("Monday 08:00-12:00", "Mon 12:00-08:00", "Mon 8-12"):
        with pytest.raises(ConfigError, match="W"):
            parse_windows(bad, "W")


def test_manager_config_from_environment() -> None:
    environ = {
        "PROJECT_VERSION_ARN": VERSION_ARN,
        "PROJECT_ARN": PROJECT_ARN,
        "QUEUE_URL": "q",
        "EVENT_SOURCE_MAPPING_ID": "e",
        "STATE_TABLE_NAME": "s",
        "EVENT_BUS_NAME": "b",
        "MIN_INFERENCE_UNITS": "2",
        "MAX_INFERENCE_UNITS": "4",
        "ALWAYS_ON": "false",
        "IDLE_MINUTES": "20",
        "DEAD_LETTER_QUEUE_URL": "dlq",
        "OUTAGE_GRACE_MINUTES": "90",
    }
    config = ManagerConfig.from_environ(environ)
    assert (config.min_inference_units, config.max_inference_units, config.idle_minutes) == (2, 4, 20)
    assert (config.dead_letter_queue_url, config.outage_grace_minutes) == ("dlq", 90)
    assert ManagerConfig.from_environ({**environ, "OUTAGE_GRACE_MINUTES": ""}).outage_grace_minutes == 24 * 60
    with pytest.raises(ConfigError, match="OUTAGE_GRACE_MINUTES"):
        ManagerConfig.from_environ({**environ, "OUTAGE_GRACE_MINUTES": str(14 * 24 * 60)})
    with pytest.raises(ConfigError, match="DEAD_LETTER_QUEUE_URL"):
        ManagerConfig.from_environ({k: v for k, v in environ.items() if k != "DEAD_LETTER_QUEUE_URL"})
    assert config.project_arn == PROJECT_ARN
    assert ManagerConfig.from_environ({**environ, "PROJECT_ARN": ""}).project_arn is None  # looked up by name
    with pytest.raises(ConfigError, match="MAX_INFERENCE_UNITS"):
        ManagerConfig.from_environ({**environ, "MAX_INFERENCE_UNITS": "1"})
    with pytest.raises(ConfigError, match="PROJECT_ARN"):
        ManagerConfig.from_environ({**environ, "PROJECT_ARN": PROJECT_ARN.replace("widgets", "gadgets")})
    with pytest.raises(ConfigError, match="ALWAYS_ON"):
        ManagerConfig.from_environ({**environ, "ALWAYS_ON": "sometimes"})


GRACE = CONFIG.outage_grace_minutes


def test_work_waiting_on_a_failed_model_is_alarmed_at_once_and_dead_lettered_after_the_grace_only() -> None:
    first = decide(observe("FAILED", visible=4), ManagerState(), CONFIG, MONDAY_NOON)
    assert first.work_waits_on_unusable_model and not first.move_to_dead_letter_queue
    assert first.state.waiting_since == MONDAY_NOON.timestamp()
    almost = decide(observe("FAILED", visible=4), first.state, CONFIG, MONDAY_NOON + timedelta(minutes=GRACE - 1))
    assert not almost.move_to_dead_letter_queue and almost.waiting_minutes == pytest.approx(GRACE - 1)
    due = decide(observe(None, visible=4), almost.state, CONFIG, MONDAY_NOON + timedelta(minutes=GRACE))
    assert due.move_to_dead_letter_queue and due.work_waits_on_unusable_model and not due.start
    assert not due.trigger_enabled


def test_a_start_that_never_completes_also_ends_in_the_dlq_after_the_grace() -> None:
    state = ManagerState(
        started_by_us=True, starting_since=MONDAY_NOON.timestamp(), waiting_since=0.0, last_status="STARTING"
    )
    plan = decide(observe("STARTING", visible=1), state, CONFIG, MONDAY_NOON)
    assert plan.move_to_dead_letter_queue and not plan.work_waits_on_unusable_model  # ModelStuckStarting alarms


def test_running_model_or_empty_queue_restarts_the_outage_clock() -> None:
    old = ManagerState(waiting_since=MONDAY_NOON.timestamp() - 3600 * 48, last_status="FAILED")
    assert decide(observe("FAILED"), old, CONFIG, MONDAY_NOON).state.waiting_since is None
    running = decide(
        observe("RUNNING", visible=9), dataclasses.replace(old, last_status="RUNNING"), CONFIG, MONDAY_NOON
    )
    assert running.state.waiting_since is None and not running.move_to_dead_letter_queue


def test_a_repaired_model_gets_a_fresh_grace_period() -> None:
    old = ManagerState(waiting_since=MONDAY_NOON.timestamp() - 3600 * 48, last_status="FAILED")
    plan = decide(observe("STOPPED", visible=9), old, CONFIG, MONDAY_NOON)
    assert plan.start and not plan.move_to_dead_letter_queue and plan.state.waiting_since == MONDAY_NOON.timestamp()
