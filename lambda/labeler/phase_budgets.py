"""Worst-case seconds each phase of a record needs before the invocation ends.

From the clients' retry configurations (``shared.aws_config``), so that the
batch logic can refuse to start a phase it could not finish:
publishing = one PutEvents attempt and one attempt of the mark that follows;
storing = one write, then publishing; labeling = one DetectCustomLabels
attempt, then storing.
"""

from __future__ import annotations

from shared.aws_config import DATA_CONFIG, REKOGNITION_CONFIG, attempt_seconds

PUBLISH_SECONDS = attempt_seconds(DATA_CONFIG) * 2
STORE_SECONDS = attempt_seconds(DATA_CONFIG) + PUBLISH_SECONDS
LABEL_SECONDS = attempt_seconds(REKOGNITION_CONFIG) + STORE_SECONDS
