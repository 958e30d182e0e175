"""CDK context validation: every bad value fails synth naming its key."""

from __future__ import annotations

from typing import Any

import pytest

from infra.settings import SettingsError, StackSettings
from tests.infra.conftest import ARN, PROJECT_ARN


def settings(**context: Any) -> StackSettings:
    return StackSettings.from_context({"projectVersionArn": ARN, "projectArn": PROJECT_ARN, **context}.get)


def test_defaults() -> None:
    s = settings()
    assert (s.batch_size, s.max_concurrency, s.max_receive_count, s.key_prefix, s.event_source) == (
        10,
        2,
        10,
        "",
        "autolabel",
    )
    assert s.min_confidence is None and s.max_results is None and s.bucket_name is None
    assert s.queue_visibility_timeout_seconds >= 6 * s.function_timeout_seconds


def test_missing_model_arn_says_how_to_pass_it() -> None:
    with pytest.raises(SettingsError, match=r"-c projectVersionArn="):
        StackSettings.from_context({}.get)


def test_string_values_from_the_command_line_are_parsed() -> None:
    s = settings(minConfidence="55.5", maxResults="3", batchSize="4", maxConcurrency="9")
    assert (s.min_confidence, s.max_results, s.batch_size, s.max_concurrency) == (55.5, 3, 4, 9)


def test_empty_strings_mean_unset() -> None:
    s = settings(minConfidence="", maxResults="", bucketName="", keyPrefix="")
    assert s.min_confidence is None and s.max_results is None and s.bucket_name is None and s.key_prefix == ""


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("projectVersionArn", "arn:aws:rekognition:us-east-1:123456789012:project/p"),
        ("minConfidence", "101"),
        ("minConfidence", "abc"),
        ("maxResults", "0"),
        ("bucketName", "Not_A_Bucket"),
        ("keyPrefix", "/leading-slash"),
        ("eventSource", "aws.autolabel"),
        ("batchSize", "11"),
        ("batchSize", "0"),
        ("maxConcurrency", "1"),
        ("maxConcurrency", "1001"),
        ("maxReceiveCount", "0"),
        ("backfillMaxConcurrency", "1"),
        ("backfillMaxConcurrency", "1001"),
        ("backfillMaxConcurrency", "many"),
        ("notifications", "sqs"),
        ("notifications", "EventBridge"),
        ("deletions", "maybe"),
    ],
)
def test_invalid_value_names_its_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=key):
        settings(**{key: value})


def test_notifications_and_deletions_defaults_and_values() -> None:
    assert (settings().notifications, settings().deletions) == ("s3", True)
    s = settings(notifications="eventbridge", deletions="false")
    assert (s.notifications, s.deletions) == ("eventbridge", False)
    assert settings(deletions=False).deletions is False  # a JSON boolean from cdk.json
    assert settings(notifications="", deletions="").notifications == "s3"
