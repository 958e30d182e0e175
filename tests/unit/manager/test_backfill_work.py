"""The manager counts the backfill lane as work (pure decisions)."""

from __future__ import annotations

from datetime import timedelta

from manager.config import ManagerConfig
from manager.logic import ManagerState, Observation, decide
from tests.unit.manager.test_logic import CONFIG, MONDAY_NOON


def test_waiting_backfill_messages_start_a_stopped_model() -> None:
    for observation in (
        Observation("STOPPED", 0, 0, False, backfill_visible=500),
        Observation("STOPPED", 0, 0, False, backfill_in_flight=1),
    ):
        plan = decide(observation, ManagerState(), CONFIG, MONDAY_NOON)
        assert plan.start and not plan.trigger_enabled


def test_a_running_model_is_not_stopped_while_a_backfill_is_being_labeled() -> None:
    state = ManagerState(started_by_us=True, idle_since=(MONDAY_NOON - timedelta(hours=2)).timestamp())
    busy = decide(Observation("RUNNING", 0, 0, True, backfill_in_flight=10), state, CONFIG, MONDAY_NOON)
    assert not busy.stop and busy.trigger_enabled and busy.state.idle_since is None
    idle = decide(Observation("RUNNING", 0, 0, True), state, CONFIG, MONDAY_NOON)
    assert idle.stop


def test_backfill_work_waiting_on_a_failed_model_is_dead_lettered_after_the_grace() -> None:
    config = ManagerConfig(**{**CONFIG.__dict__, "outage_grace_minutes": 60})
    since = (MONDAY_NOON - timedelta(minutes=61)).timestamp()
    plan = decide(
        Observation("FAILED", 0, 0, False, backfill_visible=3), ManagerState(waiting_since=since), config, MONDAY_NOON
    )
    assert plan.move_to_dead_letter_queue and plan.work_waits_on_unusable_model


def test_the_backfill_lane_is_read_from_the_environment() -> None:
    environ = {
        "PROJECT_VERSION_ARN": CONFIG.project_version_arn,
        "QUEUE_URL": "q",
        "EVENT_SOURCE_MAPPING_ID": "esm",
        "STATE_TABLE_NAME": "t",
        "EVENT_BUS_NAME": "b",
        "DEAD_LETTER_QUEUE_URL": "dlq",
        "BACKFILL_QUEUE_URL": "bq",
        "BACKFILL_DEAD_LETTER_QUEUE_URL": "bdlq",
        "BACKFILL_EVENT_SOURCE_MAPPING_ID": "besm",
    }
    config = ManagerConfig.from_environ(environ)
    assert (
        config.backfill_queue_url,
        config.backfill_dead_letter_queue_url,
        config.backfill_event_source_mapping_id,
    ) == ("bq", "bdlq", "besm")
    without = ManagerConfig.from_environ({k: v for k, v in environ.items() if not k.startswith("BACKFILL_")})
    assert without.backfill_queue_url is None and without.backfill_event_source_mapping_id is None
