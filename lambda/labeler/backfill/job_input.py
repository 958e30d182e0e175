"""What one backfill job runs with: the function's environment and the execution's input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from labeler.domain import backfill_rules as rules
from shared.validation import parse_positive_int, parse_project_version_arn, required

OWNER = "the backfill job Lambda"
REPORT_ROOT = "jobs/"


@dataclass(frozen=True)
class JobConfig:
    """The function's environment (set by the BackfillJob construct)."""

    project_version_arn: str
    results_table_name: str
    queue_url: str
    report_bucket: str
    image_bucket: str
    # The Distributed Map's MaxConcurrency and ItemBatcher size: what the other batches may add at once.
    max_concurrency: int
    batch_size: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> JobConfig:
        return cls(
            project_version_arn=parse_project_version_arn(environ.get("PROJECT_VERSION_ARN"), "PROJECT_VERSION_ARN"),
            results_table_name=required(environ, "RESULTS_TABLE_NAME", OWNER),
            queue_url=required(environ, "BACKFILL_QUEUE_URL", OWNER),
            report_bucket=required(environ, "REPORT_BUCKET", OWNER),
            image_bucket=required(environ, "IMAGE_BUCKET", OWNER),
            max_concurrency=parse_positive_int(required(environ, "MAX_CONCURRENCY", OWNER), "MAX_CONCURRENCY") or 1,
            batch_size=parse_positive_int(required(environ, "ITEMS_PER_BATCH", OWNER), "ITEMS_PER_BATCH") or 1,
        )


@dataclass(frozen=True)
class Job:
    """One job's options: the execution's input, as `autolabel backfill --in-aws` starts it."""

    run: str
    bucket: str
    prefix: str
    report: str  # the key prefix of its report: jobs/<execution name>/
    pace_limit: int
    selection: rules.Selection = field(default_factory=rules.Selection)
    force: bool = False
    stale: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        report = str(data["report"])
        if not report.startswith(REPORT_ROOT) or not report.endswith("/") or ".." in report:
            raise ValueError(f"a job's report prefix is {REPORT_ROOT}<name>/, not {report!r}")
        return cls(
            run=str(data["run"]),
            bucket=str(data["bucket"]),
            prefix=str(data.get("prefix") or ""),
            report=report,
            pace_limit=int(data["paceLimit"]),
            selection=rules.Selection.from_json(data.get("selection") or {}),
            force=bool(data.get("force", False)),
            stale=bool(data.get("stale", False)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "report": self.report,
            "paceLimit": self.pace_limit,
            "selection": self.selection.to_json(),
            "force": self.force,
            "stale": self.stale,
        }
