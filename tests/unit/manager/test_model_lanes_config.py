"""MODEL_LANES: several models, one configuration per model with the shared settings in each."""

from __future__ import annotations

import json

import pytest

from manager.config import ManagerConfig
from shared.validation import ConfigError
from tests.unit.manager.test_logic import PROJECT_ARN, VERSION_ARN

OTHER_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/gadgets/version/gadgets.1/1700000000001"
SHARED = {"STATE_TABLE_NAME": "s", "EVENT_BUS_NAME": "b", "IDLE_MINUTES": "7"}


def lane(version: str, n: int, project: str = "") -> dict[str, str]:
    return {
        "projectVersionArn": version,
        "projectArn": project,
        "queueUrl": f"q{n}",
        "deadLetterQueueUrl": f"dlq{n}",
        "eventSourceMappingId": f"esm{n}",
    }


def test_each_model_gets_its_lane_and_the_shared_settings() -> None:
    lanes = json.dumps([lane(VERSION_ARN, 1, PROJECT_ARN), lane(OTHER_ARN, 2)])
    configs = ManagerConfig.from_environ({**SHARED, "MODEL_LANES": lanes}).lane_configs()
    assert [
        (c.project_version_arn, c.queue_url, c.dead_letter_queue_url, c.event_source_mapping_id) for c in configs
    ] == [
        (VERSION_ARN, "q1", "dlq1", "esm1"),
        (OTHER_ARN, "q2", "dlq2", "esm2"),
    ]
    assert [c.project_arn for c in configs] == [PROJECT_ARN, None]
    assert {c.idle_minutes for c in configs} == {7} and all(not c.other_lanes for c in configs)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[", "MODEL_LANES must be a JSON list"),
        ("[]", "non-empty JSON list"),
        (json.dumps([{"projectVersionArn": VERSION_ARN}]), "lacks queueUrl, deadLetterQueueUrl, eventSourceMappingId"),
        (json.dumps([lane("nope", 1)]), "MODEL_LANES projectVersionArn"),
    ],
)
def test_bad_model_lanes_fail_with_one_line_naming_the_variable(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ManagerConfig.from_environ({**SHARED, "MODEL_LANES": raw})
