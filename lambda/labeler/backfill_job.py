"""The backfill job in AWS (docs/backfill.md): the Lambda steps of its state machine.

One function, three actions (``action`` in the event, set by the step), one
module each in ``labeler.backfill``:

- ``enqueue`` (``backfill.enqueue``): one batch of listed objects (the
  Distributed Map's ItemBatcher gives ``{"BatchInput": {"action", "job"},
  "Items": [...]}``). The command's selection and skip rules, then one backfill
  message per object to label. Paced: while the backfill queue holds, with what
  every other batch running now could add, more than the job's ``paceLimit``
  (what the model labels in half the queue's retention), it raises
  ``BackfillQueueFull`` before sending anything, and the step retries later.
  Then it writes the batch's ledger (each object and what became of it) to the
  report bucket and returns the batch's counts.
- ``reconcile`` (``backfill.reconcile``): a batch of ledger files, once the
  backfill queue drained: labeled, failed or dead-lettered, each object sent.
- ``summarize`` (``backfill.summarize``): the counts and the batches the engine
  gave up on, in ``report.json``: listed = skipped + labeled + failed + dead-lettered.

This module wires the steps to their ports (``backfill.ports``: the read side
of the results table, S3 and SQS with boto3 clients) on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3

from labeler.backfill import sending
from labeler.backfill.aws import S3ImageObjects, S3Reports, SqsBackfillQueue
from labeler.backfill.enqueue import enqueue
from labeler.backfill.job_input import Job, JobConfig
from labeler.backfill.ledger import Outcome, counts_of, ledger_key
from labeler.backfill.ports import JobPorts
from labeler.backfill.reconcile import reconcile
from labeler.backfill.sending import BackfillQueueFull, BackfillSendFailed
from labeler.backfill.summarize import summarize
from labeler.read_side import ResultsReader
from shared.aws_config import DATA_CONFIG
from shared.lambda_setup import BuiltOnFirstUse
from shared.queue_backlog import queue_backlog

__all__ = [
    "ACTIONS",
    "BackfillJob",
    "BackfillQueueFull",
    "BackfillSendFailed",
    "Clients",
    "Job",
    "JobConfig",
    "counts_of",
    "handler",
    "ledger_key",
    "queue_backlog",
    "use_job",
]


@dataclass
class Clients:
    s3: Any
    sqs: Any
    dynamodb: Any


class BackfillJob:
    """The actions, with their ports; ``config`` is read at each action (tests narrow it in place)."""

    def __init__(self, config: JobConfig, clients: Clients) -> None:
        self.config = config
        self.ports = JobPorts(
            results=ResultsReader(clients.dynamodb, config.results_table_name),
            objects=S3ImageObjects(clients.s3),
            reports=S3Reports(clients.s3, config.report_bucket),
            queue=SqsBackfillQueue(clients.sqs, config.queue_url),
        )

    def enqueue(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return enqueue(event, self.config, self.ports, self._send)

    def _send(self, job: Job, outcomes: Sequence[Outcome]) -> None:
        sending.send(self.ports.queue, job, outcomes)

    def reconcile(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return reconcile(event, self.config, self.ports)

    def summarize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return summarize(event, self.ports.reports)


def _job_from_environment() -> BackfillJob:
    config = JobConfig.from_environ(os.environ)
    clients = Clients(
        s3=boto3.client("s3", config=DATA_CONFIG),
        sqs=boto3.client("sqs", config=DATA_CONFIG),
        dynamodb=boto3.client("dynamodb", config=DATA_CONFIG),
    )
    return BackfillJob(config, clients)


_job = BuiltOnFirstUse(_job_from_environment)
use_job = _job.use  # tests and the emulator inject their own
ACTIONS: dict[str, Callable[[BackfillJob, Mapping[str, Any]], dict[str, Any]]] = {
    "enqueue": BackfillJob.enqueue,
    "reconcile": BackfillJob.reconcile,
    "summarize": BackfillJob.summarize,
}


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    action = event.get("action") or event.get("BatchInput", {}).get("action")
    if action not in ACTIONS:
        raise ValueError(f"unknown backfill job action {action!r}")
    return ACTIONS[str(action)](_job.get(), event)
