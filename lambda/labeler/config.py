"""Configuration of the labeler, parsed and validated once into a typed object."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace

from shared.names import DEFAULT_EVENT_SOURCE
from shared.validation import (
    ConfigError,
    parse_bool,
    parse_event_source,
    parse_min_confidence,
    parse_positive_int,
    parse_project_version_arn,
    required,
)

OWNER = "the labeler Lambda"


@dataclass(frozen=True)
class KeyRoute:
    """The images under ``prefix`` are labeled by ``project_version_arn`` (docs/behaviour.md#model-routes)."""

    prefix: str
    project_version_arn: str


@dataclass(frozen=True)
class LabelerConfig:
    # The one model (with several routes: the first route's, used by no record on its own).
    project_version_arn: str
    results_table_name: str
    event_bus_name: str
    event_source: str = DEFAULT_EVENT_SOURCE
    min_confidence: float | None = None
    max_results: int | None = None
    # docs/behaviour.md#deletions: ObjectRemoved events mark results deleted; off: they are ignored.
    deletions: bool = False
    # Several models: each key's model is the one of the route its key is under (empty: one model for all).
    routes: tuple[KeyRoute, ...] = ()

    def model_for(self, key: str) -> str | None:
        """The model version that labels ``key``; None when the key is under no route."""
        if not self.routes:
            return self.project_version_arn
        return next((route.project_version_arn for route in self.routes if key.startswith(route.prefix)), None)

    def for_model(self, project_version_arn: str) -> LabelerConfig:
        """These settings with one model: what a result records of the call that made it."""
        return (
            self
            if project_version_arn == self.project_version_arn
            else replace(self, project_version_arn=project_version_arn)
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LabelerConfig:
        routes = parse_model_routes(environ.get("MODEL_ROUTES"), "MODEL_ROUTES")
        return cls(
            project_version_arn=(
                routes[0].project_version_arn
                if routes and not environ.get("PROJECT_VERSION_ARN")
                else parse_project_version_arn(environ.get("PROJECT_VERSION_ARN"), "PROJECT_VERSION_ARN")
            ),
            routes=routes,
            results_table_name=required(environ, "RESULTS_TABLE_NAME", OWNER),
            event_bus_name=required(environ, "EVENT_BUS_NAME", OWNER),
            event_source=parse_event_source(environ.get("EVENT_SOURCE"), "EVENT_SOURCE"),
            min_confidence=parse_min_confidence(environ.get("MIN_CONFIDENCE"), "MIN_CONFIDENCE"),
            max_results=parse_positive_int(environ.get("MAX_RESULTS"), "MAX_RESULTS"),
            deletions=parse_bool(environ.get("DELETIONS"), "DELETIONS"),
        )


def parse_model_routes(raw: str | None, name: str) -> tuple[KeyRoute, ...]:
    """``[{"prefix": "line-1/", "projectVersionArn": "arn:..."}, ...]``; empty or absent: one model."""
    if not (raw or "").strip():
        return ()
    try:
        items = json.loads(raw or "")
    except ValueError as error:
        raise ConfigError(f"{name} must be a JSON list of routes: {error}") from None
    if not isinstance(items, list) or not items:
        raise ConfigError(
            f'{name} must be a non-empty JSON list like [{{"prefix": "a/", "projectVersionArn": "arn:..."}}]'
        )
    routes = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("prefix", ""), str):
            raise ConfigError(f"{name}: each route must be an object with a string prefix, got {item!r}")
        arn = parse_project_version_arn(item.get("projectVersionArn"), f"{name} projectVersionArn")
        routes.append(KeyRoute(item.get("prefix", ""), arn))
    prefixes = sorted(route.prefix for route in routes)
    for first, second in itertools.pairwise(prefixes):
        if second.startswith(first):
            raise ConfigError(f"{name}: prefixes {first!r} and {second!r} overlap: every key must belong to one route")
    return tuple(routes)
