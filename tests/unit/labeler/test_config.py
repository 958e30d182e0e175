"""LabelerConfig: every variable parsed once, every error names its variable."""

from __future__ import annotations

import json

import pytest

from labeler.config import LabelerConfig
from shared.validation import ConfigError

ARN = "arn:aws:rekognition:eu-west-1:123456789012:project/widgets/version/widgets.2026-11-01T10.00.00/1730455200000"
BASE = {"PROJECT_VERSION_ARN": ARN, "RESULTS_TABLE_NAME": "results", "EVENT_BUS_NAME": "bus"}


def test_minimal_environment_uses_defaults() -> None:
    config = LabelerConfig.from_environ(BASE)
    assert config == LabelerConfig(ARN, "results", "bus", "autolabel", None, None)


@pytest.mark.parametrize("missing", ["PROJECT_VERSION_ARN", "RESULTS_TABLE_NAME", "EVENT_BUS_NAME"])
def test_missing_required_variable_is_named(missing: str) -> None:
    environ = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        LabelerConfig.from_environ(environ)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:rekognition:eu-west-1:123456789012:project/widgets",  # a project, not a version
        "arn:aws:s3:::bucket",
        "arn:aws:rekognition:eu-west-1:1234:project/w/version/w.1/1",
        "not-an-arn",
    ],
)
def test_invalid_project_version_arn_is_named(arn: str) -> None:
    with pytest.raises(ConfigError, match="PROJECT_VERSION_ARN"):
        LabelerConfig.from_environ({**BASE, "PROJECT_VERSION_ARN": arn})


def test_other_partitions_are_accepted() -> None:
    arn = ARN.replace("arn:aws:", "arn:aws-cn:").replace("eu-west-1", "cn-north-1")
    assert LabelerConfig.from_environ({**BASE, "PROJECT_VERSION_ARN": arn}).project_version_arn == arn


@pytest.mark.parametrize(("raw", "expected"), [("0", 0.0), ("100", 100.0), ("55.5", 55.5), ("", None), ("  ", None)])
def test_min_confidence_range_and_empty(raw: str, expected: float | None) -> None:
    assert LabelerConfig.from_environ({**BASE, "MIN_CONFIDENCE": raw}).min_confidence == expected


@pytest.mark.parametrize("raw", ["-1", "100.01", "high", "nan"])
def test_invalid_min_confidence_is_named(raw: str) -> None:
    with pytest.raises(ConfigError, match="MIN_CONFIDENCE"):
        LabelerConfig.from_environ({**BASE, "MIN_CONFIDENCE": raw})


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("25", 25), ("", None)])
def test_max_results(raw: str, expected: int | None) -> None:
    assert LabelerConfig.from_environ({**BASE, "MAX_RESULTS": raw}).max_results == expected


@pytest.mark.parametrize("raw", ["0", "-3", "2.5", "ten"])
def test_invalid_max_results_is_named(raw: str) -> None:
    with pytest.raises(ConfigError, match="MAX_RESULTS"):
        LabelerConfig.from_environ({**BASE, "MAX_RESULTS": raw})


def test_event_source_default_and_override() -> None:
    assert LabelerConfig.from_environ({**BASE, "EVENT_SOURCE": ""}).event_source == "autolabel"
    assert LabelerConfig.from_environ({**BASE, "EVENT_SOURCE": "acme.qa"}).event_source == "acme.qa"


@pytest.mark.parametrize("raw", ["aws.s3", "has space", "x" * 257])
def test_invalid_event_source_is_named(raw: str) -> None:
    with pytest.raises(ConfigError, match="EVENT_SOURCE"):
        LabelerConfig.from_environ({**BASE, "EVENT_SOURCE": raw})


def test_importing_queries_needs_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    for name in BASE:
        monkeypatch.delenv(name, raising=False)
    for module in [m for m in sys.modules if m.startswith("labeler")]:
        monkeypatch.delitem(sys.modules, module)
    queries = importlib.import_module("labeler.queries")
    handler = importlib.import_module("labeler.handler")  # importing the handler reads nothing either
    assert callable(queries.get_result) and callable(handler.handler)


OTHER_ARN = ARN.replace("widgets", "gadgets")


def test_model_routes_map_each_key_to_its_routes_model() -> None:
    routes = json.dumps(
        [{"prefix": "line-1/", "projectVersionArn": ARN}, {"prefix": "line-2/", "projectVersionArn": OTHER_ARN}]
    )
    config = LabelerConfig.from_environ({**BASE, "MODEL_ROUTES": routes})
    assert config.model_for("line-1/a.png") == ARN and config.model_for("line-2/b.png") == OTHER_ARN
    assert config.model_for("line-3/c.png") is None


def test_without_model_routes_every_key_has_the_one_model() -> None:
    assert LabelerConfig.from_environ(BASE).model_for("anything/at/all.png") == ARN


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[{", "MODEL_ROUTES must be a JSON list"),
        ("{}", "non-empty JSON list"),
        ('[{"prefix": 3}]', "string prefix"),
        ('[{"prefix": "a/", "projectVersionArn": "nope"}]', "MODEL_ROUTES projectVersionArn"),
        (
            f'[{{"prefix": "a/", "projectVersionArn": "{ARN}"}}, {{"prefix": "a/b/", "projectVersionArn": "{ARN}"}}]',
            "overlap",
        ),
    ],
)
def test_bad_model_routes_fail_with_one_line_naming_the_variable(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LabelerConfig.from_environ({**BASE, "MODEL_ROUTES": raw})
