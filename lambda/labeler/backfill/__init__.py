"""The backfill job's Lambda steps, one unit per job (``labeler.backfill_job`` is its entry point)."""
