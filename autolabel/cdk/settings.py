"""The pipeline's props, validated: model routes and what the CDK context keys of the repository's app cover."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from autolabel.cdk._functions import manager_config, validation

# Lambda ScalingConfig.MaximumConcurrency bounds.
MIN_ESM_CONCURRENCY, MAX_ESM_CONCURRENCY = 2, 1000
MAX_SQS_BATCH_WITHOUT_WINDOW = 10
# How object events reach the ingest queue (docs/behaviour.md#inbound-messages).
NOTIFICATIONS = ("s3", "eventbridge", "sns")


class PipelineError(ValueError):
    """A prop of AutolabelPipeline is invalid; the message names it."""


@dataclass(frozen=True)
class ModelRoute:
    """Images under ``prefix`` (every key when "") are labeled by the model version ``project_version_arn``.

    ``project_arn``, when given, lets the model manager describe exactly this
    project instead of finding it by name (no ``DescribeProjects`` on ``*``).
    """

    project_version_arn: str
    prefix: str = ""
    project_arn: str | None = None


@dataclass(frozen=True)
class ModelManagerSettings:
    """The model manager: start the model on work, stop it when idle (docs/behaviour.md#model-manager)."""

    idle_minutes: int = 15
    min_inference_units: int = 1
    max_inference_units: int | None = None
    always_on: bool = False
    always_on_windows: str = ""
    stop_models_started_elsewhere: bool = False
    model_outage_grace_hours: int = 24


@dataclass(frozen=True)
class PipelineSettings:
    """Everything the pipeline's parts read, validated once (:func:`pipeline_settings`)."""

    # The first model route's (the only one's, with one route).
    project_version_arn: str
    project_arn: str | None = None
    key_prefix: str = ""
    # Every model route, in the order given (project_arn validated); the first is the one above.
    routes: tuple[ModelRoute, ...] = ()
    min_confidence: float | None = None
    max_results: int | None = None
    event_source: str = "autolabel"
    batch_size: int = 10
    max_concurrency: int = 2
    max_receive_count: int = 10
    backfill_max_concurrency: int = 2
    notifications: str = "s3"
    notification_topic_arn: str | None = None
    deletions: bool = True
    function_timeout_seconds: int = 60
    manager: ModelManagerSettings | None = field(default_factory=ModelManagerSettings)

    @property
    def model_manager(self) -> bool:
        return self.manager is not None

    @property
    def queue_visibility_timeout_seconds(self) -> int:
        # AWS guidance for SQS event sources: at least 6x the function timeout.
        return 6 * self.function_timeout_seconds

    # The manager's settings, read by the manager construct (defaults when it is off).
    @property
    def idle_minutes(self) -> int:
        return (self.manager or ModelManagerSettings()).idle_minutes

    @property
    def min_inference_units(self) -> int:
        return (self.manager or ModelManagerSettings()).min_inference_units

    @property
    def max_inference_units(self) -> int | None:
        return (self.manager or ModelManagerSettings()).max_inference_units

    @property
    def always_on(self) -> bool:
        return (self.manager or ModelManagerSettings()).always_on

    @property
    def always_on_windows(self) -> str:
        return (self.manager or ModelManagerSettings()).always_on_windows

    @property
    def stop_models_started_elsewhere(self) -> bool:
        return (self.manager or ModelManagerSettings()).stop_models_started_elsewhere

    @property
    def model_outage_grace_hours(self) -> int:
        return (self.manager or ModelManagerSettings()).model_outage_grace_hours


def check_routes(models: Sequence[ModelRoute]) -> None:
    """At least one route; prefixes plain and not overlapping (an empty prefix overlaps every other)."""
    if not models:
        raise PipelineError("models: give at least one ModelRoute(project_version_arn, prefix)")
    for route in models:
        if not isinstance(route, ModelRoute):
            raise PipelineError(f"models: expected ModelRoute items, got {type(route).__name__}")
        try:
            validation.parse_project_version_arn(route.project_version_arn, "ModelRoute.project_version_arn")
        except ValueError as error:  # the functions' ConfigError
            raise PipelineError(str(error)) from None
        prefix = route.prefix
        if prefix.startswith("/") or len(prefix) > 512 or "*" in prefix:
            raise PipelineError(
                f"ModelRoute.prefix must be a plain S3 key prefix (no leading '/', no '*'), got {prefix!r}"
            )
    versions = [route.project_version_arn for route in models]
    for version in versions:
        if versions.count(version) > 1:
            raise PipelineError(
                f"models: model version {version!r} has two routes; give each model version one route (one prefix)"
            )
    ordered = sorted(models, key=lambda route: route.prefix)
    for first, second in itertools.pairwise(ordered):
        if second.prefix.startswith(first.prefix):
            raise PipelineError(
                f"models: prefixes {first.prefix!r} and {second.prefix!r} overlap: every key must belong to one route"
            )


def pipeline_settings(
    models: Sequence[ModelRoute],
    *,
    min_confidence: float | None,
    max_results: int | None,
    event_source: str,
    batch_size: int,
    max_concurrency: int,
    backfill_max_concurrency: int,
    max_receive_count: int,
    notifications: str,
    notification_topic_arn: str | None,
    deletions: bool,
    model_manager: ModelManagerSettings | None,
) -> PipelineSettings:
    check_routes(models)
    try:
        routes = tuple(
            ModelRoute(
                route.project_version_arn,
                route.prefix,
                manager_config.parse_project_arn(
                    route.project_arn, "ModelRoute.project_arn", route.project_version_arn
                ),
            )
            for route in models
        )
        route = routes[0]
        settings = PipelineSettings(
            project_version_arn=route.project_version_arn,
            project_arn=route.project_arn,
            key_prefix=route.prefix,
            routes=routes,
            min_confidence=validation.parse_min_confidence(min_confidence, "min_confidence"),
            max_results=validation.parse_positive_int(max_results, "max_results"),
            event_source=validation.parse_event_source(event_source, "event_source"),
            batch_size=_bounded(batch_size, "batch_size", 1, MAX_SQS_BATCH_WITHOUT_WINDOW),
            max_concurrency=_bounded(max_concurrency, "max_concurrency", MIN_ESM_CONCURRENCY, MAX_ESM_CONCURRENCY),
            backfill_max_concurrency=_bounded(
                backfill_max_concurrency, "backfill_max_concurrency", MIN_ESM_CONCURRENCY, MAX_ESM_CONCURRENCY
            ),
            max_receive_count=_bounded(max_receive_count, "max_receive_count", 1, 1000),
            notifications=_notifications(notifications),
            notification_topic_arn=notification_topic_arn,
            deletions=bool(deletions),
            manager=_manager(model_manager),
        )
    except PipelineError:
        raise
    except ValueError as error:  # the functions' ConfigError is a ValueError
        raise PipelineError(str(error)) from None
    if settings.notifications == "sns" and not notification_topic_arn:
        raise PipelineError("notifications='sns' needs notification_topic_arn, the topic the bucket publishes to")
    if settings.notifications == "sns" and len(routes) > 1:
        raise PipelineError(
            "notifications='sns' takes one model route: the topic carries every key, and each lane needs its own "
            "prefix filter; use notifications='s3' or 'eventbridge' with several routes"
        )
    if settings.notifications != "sns" and notification_topic_arn:
        raise PipelineError("notification_topic_arn is only read with notifications='sns'")
    return settings


def _bounded(value: int, name: str, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise PipelineError(f"{name} must be an integer between {minimum} and {maximum}, got {value!r}")
    return value


def _notifications(value: str) -> str:
    if value not in NOTIFICATIONS:
        raise PipelineError(f"notifications must be one of {', '.join(NOTIFICATIONS)}, got {value!r}")
    return value


def _manager(manager: ModelManagerSettings | None) -> ModelManagerSettings | None:
    if manager is None:
        return None
    _bounded(manager.idle_minutes, "idle_minutes", 1, 24 * 60)
    _bounded(manager.min_inference_units, "min_inference_units", 1, 1000)
    if manager.max_inference_units is not None:
        _bounded(manager.max_inference_units, "max_inference_units", manager.min_inference_units, 1000)
    manager_config.parse_windows(manager.always_on_windows, "always_on_windows")
    _bounded(
        manager.model_outage_grace_hours,
        "model_outage_grace_hours",
        1,
        manager_config.MAX_OUTAGE_GRACE_MINUTES // 60,
    )
    return manager
