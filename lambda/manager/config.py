"""Model manager configuration: environment -> validated, typed settings."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from shared import model_arn
from shared.validation import (
    ConfigError,
    parse_bool,
    parse_event_source,
    parse_positive_int,
    parse_project_version_arn,
    required,
)

PROJECT_ARN_PATTERN = re.compile(r"^arn:[a-z\d-]+:rekognition:[a-z\d-]+:\d{12}:project/[a-zA-Z0-9_.\-]{1,255}/[0-9]+$")
WINDOW_PATTERN = re.compile(
    r"^(?P<days>(Mon|Tue|Wed|Thu|Fri|Sat|Sun)(-(Mon|Tue|Wed|Thu|Fri|Sat|Sun))?)\s+"
    r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$"
)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DEFAULT_OUTAGE_GRACE_MINUTES = 24 * 60
# The ingest queue keeps messages 14 days (SQS's maximum); the grace must end
# well before that, so at most 13 days.
MAX_OUTAGE_GRACE_MINUTES = 13 * 24 * 60


@dataclass(frozen=True)
class Window:
    """Always-on window in UTC: the model runs on these days between start and end."""

    days: frozenset[int]  # 0 = Monday
    start_minute: int
    end_minute: int

    def contains(self, weekday: int, minute_of_day: int) -> bool:
        return weekday in self.days and self.start_minute <= minute_of_day < self.end_minute


def parse_windows(raw: str | None, name: str) -> tuple[Window, ...]:
    """``"Mon-Fri 08:00-18:00; Sat 09:00-12:00"`` (UTC); empty: no window."""
    windows = []
    for part in (raw or "").split(";"):
        text = part.strip()
        if not text:
            continue
        match = WINDOW_PATTERN.match(text)
        if not match:
            raise ConfigError(f"{name}: {text!r} is not like 'Mon-Fri 08:00-18:00' (UTC)")
        first, _, last = match["days"].partition("-")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days = frozenset(range(a, b + 1)) if a <= b else frozenset([*range(a, 7), *range(0, b + 1)])
        start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (match["start"], match["end"]))
        if not (0 <= start < end <= 24 * 60):
            raise ConfigError(f"{name}: {text!r} must have a start before its end within one day")
        windows.append(Window(days, start, end))
    return tuple(windows)


def parse_project_arn(raw: str | None, name: str, project_version_arn: str) -> str | None:
    """The project ARN of the model version; empty: None (the manager looks it up by name)."""
    value = (raw or "").strip()
    if not value:
        return None
    if not PROJECT_ARN_PATTERN.match(value):
        raise ConfigError(
            f"{name} must be the Custom Labels project ARN "
            f"(arn:<partition>:rekognition:<region>:<account>:project/<name>/<number>), got {value!r}"
        )
    if not model_arn.belongs_to_project(project_version_arn, model_arn.project_name(value)):
        raise ConfigError(f"{name} {value!r} is not the project of the model version {project_version_arn!r}")
    return value


def _required(environ: Mapping[str, str], name: str) -> str:
    return required(environ, name, "the model manager")


@dataclass(frozen=True)
class ModelLane:
    """One model and its lane: the queue it labels from, its DLQ, and the labeler's trigger on that queue."""

    project_version_arn: str
    project_arn: str | None
    queue_url: str
    dead_letter_queue_url: str
    event_source_mapping_id: str


def parse_model_lanes(raw: str | None, name: str) -> tuple[ModelLane, ...]:
    """``MODEL_LANES``: a JSON list of lanes (several models); empty or absent: the one-model variables."""
    if not (raw or "").strip():
        return ()
    try:
        items = json.loads(raw or "")
    except ValueError as error:
        raise ConfigError(f"{name} must be a JSON list of model lanes: {error}") from None
    if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
        raise ConfigError(f"{name} must be a non-empty JSON list of model lane objects")
    lanes = []
    for item in items:
        version = parse_project_version_arn(item.get("projectVersionArn"), f"{name} projectVersionArn")
        missing = [k for k in ("queueUrl", "deadLetterQueueUrl", "eventSourceMappingId") if not item.get(k)]
        if missing:
            raise ConfigError(f"{name}: the lane of {version} lacks {', '.join(missing)}")
        lanes.append(
            ModelLane(
                version,
                parse_project_arn(item.get("projectArn"), f"{name} projectArn", version),
                str(item["queueUrl"]),
                str(item["deadLetterQueueUrl"]),
                str(item["eventSourceMappingId"]),
            )
        )
    return tuple(lanes)


@dataclass(frozen=True)
class ManagerConfig:
    project_version_arn: str
    project_arn: str | None  # None: looked up by project name (DescribeProjects)
    queue_url: str
    event_source_mapping_id: str
    state_table_name: str
    event_bus_name: str
    event_source: str = "autolabel"
    idle_minutes: int = 15
    min_inference_units: int = 1
    max_inference_units: int | None = None
    always_on: bool = False
    always_on_windows: tuple[Window, ...] = ()
    stop_models_started_elsewhere: bool = False
    # Where waiting work goes once it has waited this long for a model that is
    # not running (None: nowhere; only tests and simulations that do not care).
    dead_letter_queue_url: str | None = None
    outage_grace_minutes: int = DEFAULT_OUTAGE_GRACE_MINUTES
    # The backfill lane: counted as work, paused and resumed with the ingest
    # trigger, moved to its own DLQ after the grace (None: no backfill lane).
    backfill_queue_url: str | None = None
    backfill_dead_letter_queue_url: str | None = None
    backfill_event_source_mapping_id: str | None = None
    # Several models: the lanes after the one above, each run by the same rules (docs/behaviour.md#model-manager).
    other_lanes: tuple[ModelLane, ...] = ()

    def lane_configs(self) -> list[ManagerConfig]:
        """One configuration per model, the shared settings in each."""
        first = replace(self, other_lanes=())
        return [
            first,
            *(
                replace(
                    first,
                    project_version_arn=lane.project_version_arn,
                    project_arn=lane.project_arn,
                    queue_url=lane.queue_url,
                    dead_letter_queue_url=lane.dead_letter_queue_url,
                    event_source_mapping_id=lane.event_source_mapping_id,
                )
                for lane in self.other_lanes
            ),
        ]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ManagerConfig:
        lanes = parse_model_lanes(environ.get("MODEL_LANES"), "MODEL_LANES")
        if lanes:
            # Several models: the first lane fills the one-model variables.
            first = lanes[0]
            environ = {
                **environ,
                "PROJECT_VERSION_ARN": first.project_version_arn,
                "PROJECT_ARN": first.project_arn or "",
                "QUEUE_URL": first.queue_url,
                "DEAD_LETTER_QUEUE_URL": first.dead_letter_queue_url,
                "EVENT_SOURCE_MAPPING_ID": first.event_source_mapping_id,
            }
        return replace(cls._one_model(environ), other_lanes=lanes[1:])

    @classmethod
    def _one_model(cls, environ: Mapping[str, str]) -> ManagerConfig:
        version_arn = parse_project_version_arn(environ.get("PROJECT_VERSION_ARN"), "PROJECT_VERSION_ARN")
        minimum = parse_positive_int(environ.get("MIN_INFERENCE_UNITS"), "MIN_INFERENCE_UNITS") or 1
        maximum = parse_positive_int(environ.get("MAX_INFERENCE_UNITS"), "MAX_INFERENCE_UNITS")
        if maximum is not None and maximum < minimum:
            raise ConfigError(f"MAX_INFERENCE_UNITS ({maximum}) must be >= MIN_INFERENCE_UNITS ({minimum})")
        return cls(
            project_version_arn=version_arn,
            project_arn=parse_project_arn(environ.get("PROJECT_ARN"), "PROJECT_ARN", version_arn),
            queue_url=_required(environ, "QUEUE_URL"),
            event_source_mapping_id=_required(environ, "EVENT_SOURCE_MAPPING_ID"),
            state_table_name=_required(environ, "STATE_TABLE_NAME"),
            event_bus_name=_required(environ, "EVENT_BUS_NAME"),
            event_source=parse_event_source(environ.get("EVENT_SOURCE"), "EVENT_SOURCE"),
            idle_minutes=parse_positive_int(environ.get("IDLE_MINUTES"), "IDLE_MINUTES") or 15,
            min_inference_units=minimum,
            max_inference_units=maximum,
            always_on=parse_bool(environ.get("ALWAYS_ON"), "ALWAYS_ON"),
            always_on_windows=parse_windows(environ.get("ALWAYS_ON_WINDOWS"), "ALWAYS_ON_WINDOWS"),
            stop_models_started_elsewhere=parse_bool(
                environ.get("STOP_MODELS_STARTED_ELSEWHERE"), "STOP_MODELS_STARTED_ELSEWHERE"
            ),
            dead_letter_queue_url=_required(environ, "DEAD_LETTER_QUEUE_URL"),
            outage_grace_minutes=parse_positive_int(
                environ.get("OUTAGE_GRACE_MINUTES"), "OUTAGE_GRACE_MINUTES", maximum=MAX_OUTAGE_GRACE_MINUTES
            )
            or DEFAULT_OUTAGE_GRACE_MINUTES,
            backfill_queue_url=environ.get("BACKFILL_QUEUE_URL") or None,
            backfill_dead_letter_queue_url=environ.get("BACKFILL_DEAD_LETTER_QUEUE_URL") or None,
            backfill_event_source_mapping_id=environ.get("BACKFILL_EVENT_SOURCE_MAPPING_ID") or None,
        )
