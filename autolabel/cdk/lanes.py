"""A model lane: what one model route owns in the pipeline."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs

from autolabel.cdk.settings import ModelRoute


@dataclass(frozen=True)
class ModelLane:
    """One model route's lane: its ingest queue, DLQ and the labeler's trigger (event source mapping) on it.

    Nothing is shared between lanes but the function: the model manager pauses
    and resumes a lane's trigger alone, so a model that is stopped, starting or
    throttled holds back only the images under its own prefix.
    """

    route: ModelRoute
    queue: sqs.Queue
    dead_letter_queue: sqs.Queue
    event_source: sources.SqsEventSource


def lane_id(index: int, route: ModelRoute) -> str:
    """The first route's lane keeps the ids of the one-model pipeline (``Ingest``); the others are named by prefix.

    Named by prefix, a lane keeps its queue when routes are added or removed
    around it. The hash tells apart prefixes that differ only in punctuation.
    """
    if index == 0:
        return "Ingest"
    readable = re.sub(r"[^A-Za-z0-9]", "", route.prefix.title())[:40]
    return f"Ingest{readable}{hashlib.sha256(route.prefix.encode()).hexdigest()[:6]}"
