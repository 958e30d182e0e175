"""Unknown CDK context keys fail the synth with the closest known key (a typo never passes silently)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.app import build_app
from infra.settings import CONTEXT_KEYS, SettingsError, StackSettings, check_context_keys
from tests.infra.conftest import ARN, PROJECT_ARN


def test_unknown_context_keys_fail_with_a_suggestion() -> None:
    with pytest.raises(SettingsError, match=r"^unknown context key 'minConfidnece'; did you mean 'minConfidence'\?$"):
        check_context_keys(["projectVersionArn", "minConfidnece"])
    with pytest.raises(SettingsError, match="'maxconcurrency'; did you mean 'maxConcurrency'"):
        check_context_keys(["maxconcurrency"])
    with pytest.raises(SettingsError, match="unknown context key 'colour'; the keys are: projectVersionArn, "):
        check_context_keys(["colour"])
    # CDK's own keys: feature flags, aws:cdk:*, lookup caches, acknowledged notices.
    check_context_keys(
        [
            "@aws-cdk/core:newStyleStackSynthesis",
            "aws:cdk:enable-path-metadata",
            "availability-zones:account=123456789012:region=us-east-1",
            "acknowledged-issue-numbers",
        ]
    )


def test_every_key_the_settings_read_is_a_known_key() -> None:
    read: list[str] = []
    context = {"projectVersionArn": ARN, "projectArn": PROJECT_ARN}

    def get(key: str) -> object:
        read.append(key)
        return context.get(key)

    StackSettings.from_context(get)
    assert set(read) <= set(CONTEXT_KEYS)
    assert set(CONTEXT_KEYS) == set(read)  # with the model manager on, every key is read


def test_cdk_json_context_keys_are_known() -> None:
    check_context_keys(json.loads((Path(__file__).parents[2] / "cdk.json").read_text())["context"])


def test_a_typo_fails_the_synth() -> None:
    with pytest.raises(SettingsError, match="did you mean 'keyPrefix'"):
        build_app({"projectVersionArn": ARN, "keyPrefx": "line-1/", "aws:cdk:bundling-stacks": []})
