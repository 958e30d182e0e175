"""CDK context -> validated, typed stack settings (documented in docs/behaviour.md#configuration).

Context values arrive as strings from ``-c key=value`` and as JSON values from
cdk.json; both are accepted. Every error names the context key.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from shared.validation import (
    ConfigError,
    parse_bool,
    parse_event_source,
    parse_min_confidence,
    parse_positive_int,
    parse_project_version_arn,
)

# S3 general purpose bucket naming rules (3-63 chars, lowercase, no "..").
BUCKET_NAME_PATTERN = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Lambda ScalingConfig.MaximumConcurrency bounds.
MIN_ESM_CONCURRENCY, MAX_ESM_CONCURRENCY = 2, 1000
MAX_SQS_BATCH_WITHOUT_WINDOW = 10
# How object events reach the ingest queue (docs/behaviour.md#inbound-messages).
NOTIFICATIONS = ("s3", "eventbridge", "sns")
# A standard SNS topic of any partition (FIFO topics cannot deliver to a standard queue).
TOPIC_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
PLACEHOLDER_HINT = (
    "projectVersionArn is required: pass your Custom Labels model version ARN, e.g. "
    "`npx cdk synth -c projectVersionArn=arn:aws:rekognition:us-east-1:123456789012:"
    "project/my-project/version/my-project.2026-01-01T00.00.00/1700000000000` "
    '(or set it under "context" in cdk.json)'
)


class SettingsError(ConfigError):
    """A CDK context value is missing or invalid; the message names the key."""


# Every context key the stack reads (docs/behaviour.md#configuration). A key given with
# -c or in cdk.json that is not here fails the synth, with the closest match.
CONTEXT_KEYS = (
    "projectVersionArn",
    "models",
    "minConfidence",
    "maxResults",
    "bucketName",
    "keyPrefix",
    "eventSource",
    "batchSize",
    "maxConcurrency",
    "maxReceiveCount",
    "backfillMaxConcurrency",
    "notifications",
    "notificationTopicArn",
    "deletions",
    "modelManager",
    "projectArn",
    "idleMinutes",
    "minInferenceUnits",
    "maxInferenceUnits",
    "alwaysOn",
    "alwaysOnWindows",
    "stopModelsStartedElsewhere",
    "modelOutageGraceHours",
    "backfillJob",
)
# Context the CDK CLI itself keeps there: acknowledged notices (cdk acknowledge).
CDK_CONTEXT_KEYS = frozenset({"acknowledged-issue-numbers"})


def is_cdk_context_key(key: str) -> bool:
    """CDK's own keys: feature flags (@aws-cdk/...), aws:cdk:..., lookup caches (provider:account=...)."""
    return key.startswith("@") or ":" in key or key in CDK_CONTEXT_KEYS


def check_context_keys(keys: Iterable[str]) -> None:
    for key in sorted(keys):
        if is_cdk_context_key(key) or key in CONTEXT_KEYS:
            continue
        close = difflib.get_close_matches(key, CONTEXT_KEYS, n=1) or difflib.get_close_matches(
            key.lower(), [k.lower() for k in CONTEXT_KEYS], n=1
        )
        if close:
            suggestion = next(k for k in CONTEXT_KEYS if k.lower() == close[0].lower())
            raise SettingsError(f"unknown context key {key!r}; did you mean {suggestion!r}?")
        raise SettingsError(f"unknown context key {key!r}; the keys are: {', '.join(CONTEXT_KEYS)}")


# The keys of one route in the `models` context key.
ROUTE_KEYS = ("prefix", "projectVersionArn", "projectArn")
MODELS_EXAMPLE = '[{"prefix": "line-1/", "projectVersionArn": "arn:..."}, {"prefix": "line-2/", ...}]'


@dataclass(frozen=True)
class RouteSetting:
    """One route of the `models` context key: the images under ``prefix`` to ``project_version_arn``."""

    prefix: str
    project_version_arn: str
    project_arn: str | None = None


@dataclass(frozen=True)
class StackSettings:
    # The one model (with `models`: the first route's).
    project_version_arn: str
    min_confidence: float | None = None
    max_results: int | None = None
    bucket_name: str | None = None
    key_prefix: str = ""
    event_source: str = "autolabel"
    batch_size: int = 10
    max_concurrency: int = 2
    max_receive_count: int = 10
    backfill_max_concurrency: int = 2
    notifications: str = "s3"
    notification_topic_arn: str | None = None
    deletions: bool = True
    function_timeout_seconds: int = 60
    model_manager: bool = True
    project_arn: str | None = None
    idle_minutes: int = 15
    min_inference_units: int = 1
    max_inference_units: int | None = None
    always_on: bool = False
    always_on_windows: str = ""
    stop_models_started_elsewhere: bool = False
    model_outage_grace_hours: int = 24
    backfill_job: bool = True  # `autolabel backfill --in-aws` (docs/backfill.md); nothing of it costs while idle
    # The `models` context key: several models, one lane each (empty: projectVersionArn, keyPrefix, projectArn).
    models: tuple[RouteSetting, ...] = ()

    @property
    def routes(self) -> tuple[RouteSetting, ...]:
        """Every model route: the `models` key's, or the one of projectVersionArn and keyPrefix."""
        return self.models or (RouteSetting(self.key_prefix, self.project_version_arn, self.project_arn),)

    @property
    def queue_visibility_timeout_seconds(self) -> int:
        # AWS guidance for SQS event sources: at least 6x the function timeout.
        return 6 * self.function_timeout_seconds

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> StackSettings:
        def text(key: str) -> str | None:
            value = get(key)
            return None if value is None else str(value)

        try:
            models = _models(get("models"), get)
            raw_arn = models[0].project_version_arn if models else text("projectVersionArn")
            if not (raw_arn or "").strip():
                raise SettingsError(PLACEHOLDER_HINT)
            several = len(models) > 1
            settings = cls(
                project_version_arn=parse_project_version_arn(raw_arn, "projectVersionArn"),
                min_confidence=parse_min_confidence(_scalar(get("minConfidence")), "minConfidence"),
                max_results=parse_positive_int(_scalar(get("maxResults")), "maxResults"),
                bucket_name=_bucket_name(text("bucketName")),
                key_prefix=_key_prefix(text("keyPrefix")),
                event_source=parse_event_source(text("eventSource"), "eventSource"),
                batch_size=_int_or(get("batchSize"), "batchSize", 10, maximum=MAX_SQS_BATCH_WITHOUT_WINDOW),
                max_concurrency=_int_or(get("maxConcurrency"), "maxConcurrency", 2, maximum=MAX_ESM_CONCURRENCY),
                max_receive_count=_int_or(get("maxReceiveCount"), "maxReceiveCount", 10, maximum=1000),
                backfill_max_concurrency=_int_or(
                    get("backfillMaxConcurrency"), "backfillMaxConcurrency", 2, maximum=MAX_ESM_CONCURRENCY
                ),
                notifications=(notifications := _notifications(_text(get("notifications")))),
                notification_topic_arn=_topic_arn(_text(get("notificationTopicArn")), notifications),
                deletions=parse_bool(_text(get("deletions")) or "true", "deletions"),
                backfill_job=parse_bool(_text(get("backfillJob")) or ("false" if several else "true"), "backfillJob"),
                **_manager_settings(get, raw_arn),
            )
            if models:
                settings = replace(settings, models=models, project_arn=models[0].project_arn)
        except SettingsError:
            raise
        except ConfigError as error:
            raise SettingsError(str(error)) from None
        if settings.max_concurrency < MIN_ESM_CONCURRENCY:
            raise SettingsError(
                f"maxConcurrency must be between {MIN_ESM_CONCURRENCY} and {MAX_ESM_CONCURRENCY} "
                f"(Lambda's SQS maximum concurrency), got {settings.max_concurrency}"
            )
        if settings.backfill_max_concurrency < MIN_ESM_CONCURRENCY:
            raise SettingsError(
                f"backfillMaxConcurrency must be between {MIN_ESM_CONCURRENCY} and {MAX_ESM_CONCURRENCY} "
                f"(Lambda's SQS maximum concurrency), got {settings.backfill_max_concurrency}"
            )
        if len(settings.routes) > 1 and settings.backfill_job:
            raise SettingsError(
                "backfillJob=true takes one model: the backfill job does not route listed objects by key yet"
            )
        if len(settings.routes) > 1 and settings.notifications == "sns":
            raise SettingsError("notifications=sns takes one model: with models, use notifications=s3 or eventbridge")
        if settings.notifications == "sns" and settings.bucket_name is None:
            raise SettingsError(
                "notifications=sns is for an existing bucket (bucketName) whose notifications already go to "
                "the SNS topic notificationTopicArn; a bucket this stack creates uses notifications=s3 or eventbridge"
            )
        return settings


def _manager_settings(get: Callable[[str], Any], version_arn: str | None) -> dict[str, Any]:
    from manager.config import MAX_OUTAGE_GRACE_MINUTES, parse_bool, parse_project_arn, parse_windows

    enabled = parse_bool(_text(get("modelManager")) or "true", "modelManager")
    if not enabled:
        return {"model_manager": False}
    raw_project = _text(get("projectArn"))
    minimum = _int_or(get("minInferenceUnits"), "minInferenceUnits", 1, maximum=1000)
    maximum = parse_positive_int(_scalar(get("maxInferenceUnits")), "maxInferenceUnits", maximum=1000)
    if maximum is not None and maximum < minimum:
        raise SettingsError(f"maxInferenceUnits ({maximum}) must be >= minInferenceUnits ({minimum})")
    windows = (_text(get("alwaysOnWindows")) or "").strip()
    parse_windows(windows, "alwaysOnWindows")
    return {
        "model_manager": True,
        "project_arn": parse_project_arn(raw_project, "projectArn", version_arn or ""),
        "idle_minutes": _int_or(get("idleMinutes"), "idleMinutes", 15, maximum=24 * 60),
        "min_inference_units": minimum,
        "max_inference_units": maximum,
        "always_on": parse_bool(_text(get("alwaysOn")), "alwaysOn"),
        "always_on_windows": windows,
        "stop_models_started_elsewhere": parse_bool(
            _text(get("stopModelsStartedElsewhere")), "stopModelsStartedElsewhere"
        ),
        # Work waiting this long on a model that is not running goes to the DLQ;
        # at most 13 days, so it always happens before the queue's 14-day expiry.
        "model_outage_grace_hours": _int_or(
            get("modelOutageGraceHours"), "modelOutageGraceHours", 24, maximum=MAX_OUTAGE_GRACE_MINUTES // 60
        ),
    }


def _models(value: Any, get: Callable[[str], Any]) -> tuple[RouteSetting, ...]:
    """The `models` key: a JSON list of routes (a string from -c, a list from cdk.json); absent: ()."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    for one_model_key in ("projectVersionArn", "keyPrefix", "projectArn"):
        if get(one_model_key) not in (None, ""):
            raise SettingsError(
                f"models replaces projectVersionArn, keyPrefix and projectArn: give {one_model_key} "
                "(one model) or models (one or more routes), not both"
            )
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise SettingsError(f"models must be a JSON list of routes like {MODELS_EXAMPLE}: {error}") from None
    if not isinstance(value, list) or not value:
        raise SettingsError(f"models must be a non-empty JSON list of routes like {MODELS_EXAMPLE}")
    routes = [_route(number, item) for number, item in enumerate(value, start=1)]
    versions = [route.project_version_arn for route in routes]
    if len(set(versions)) < len(versions):
        raise SettingsError("models: a model version has two routes; give each model version one route (one prefix)")
    for first, second in itertools.pairwise(sorted(route.prefix for route in routes)):
        if second.startswith(first):
            raise SettingsError(
                f"models: prefixes {first!r} and {second!r} overlap: every key must belong to one route"
            )
    return tuple(routes)


def _route(number: int, item: Any) -> RouteSetting:
    from manager.config import parse_project_arn

    where = f"models route {number}"
    if not isinstance(item, dict):
        raise SettingsError(f'{where} must be an object like {{"prefix": "line-1/", "projectVersionArn": "arn:..."}}')
    for key in item:
        if key not in ROUTE_KEYS:
            close = difflib.get_close_matches(str(key), ROUTE_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the keys are: {', '.join(ROUTE_KEYS)}"
            raise SettingsError(f"{where}: unknown key {key!r}{hint}")
    version = parse_project_version_arn(_text(item.get("projectVersionArn")), f"{where} projectVersionArn")
    prefix = item.get("prefix", "")
    if not isinstance(prefix, str):
        raise SettingsError(f"{where}: prefix must be a string, got {prefix!r}")
    try:
        prefix = _key_prefix(prefix)
    except SettingsError as error:
        raise SettingsError(f"{where}: {str(error).replace('keyPrefix', 'prefix')}") from None
    project = parse_project_arn(_text(item.get("projectArn")), f"{where} projectArn", version)
    return RouteSetting(prefix, version, project)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str)) else str(value)


def _int_or(value: Any, key: str, default: int, *, maximum: int) -> int:
    parsed = parse_positive_int(_scalar(value), key, maximum=maximum)
    return default if parsed is None else parsed


def _bucket_name(value: str | None) -> str | None:
    name = (value or "").strip()
    if not name:
        return None
    if not BUCKET_NAME_PATTERN.match(name):
        raise SettingsError(f"bucketName is not a valid S3 bucket name: {name!r}")
    return name


def _notifications(value: str | None) -> str:
    chosen = (value or "").strip() or "s3"
    if chosen not in NOTIFICATIONS:
        raise SettingsError(f"notifications must be one of {', '.join(NOTIFICATIONS)}, got {chosen!r}")
    return chosen


def _topic_arn(value: str | None, notifications: str) -> str | None:
    arn = (value or "").strip()
    if notifications != "sns":
        if arn:
            raise SettingsError("notificationTopicArn is only read with notifications=sns")
        return None
    if not arn:
        raise SettingsError(
            "notificationTopicArn is required with notifications=sns: the ARN of the SNS topic "
            "the bucket's notifications are published to"
        )
    if not TOPIC_ARN_PATTERN.match(arn):
        raise SettingsError(f"notificationTopicArn is not a standard SNS topic ARN: {arn!r}")
    return arn


def _key_prefix(value: str | None) -> str:
    prefix = (value or "").strip()
    if prefix.startswith("/") or len(prefix) > 512 or "*" in prefix:
        raise SettingsError(f"keyPrefix must be a plain S3 key prefix (no leading '/', no '*'), got {prefix!r}")
    return prefix
