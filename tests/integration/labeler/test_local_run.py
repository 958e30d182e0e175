"""`make local` end to end: embedded moto server on loopback, real handler, emulated model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from local import run


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_local_run_labels_the_samples_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Custom Labels model: EMULATED" in out
    assert "OK: every sample ended as expected" in out
    # Error messages whole in the table (they were cut at 70 characters).
    assert "Requested image should have minimum dimensions of 64x64 and maximum of 4096x4096" in out
    events = json.loads((tmp_path / "events.json").read_text())
    assert sorted(e["detail-type"] for e in events) == (
        ["Custom Labels Detected"] * 5 + ["Custom Labels Failed"] * 3 + ["Custom Labels Removed"]
    )
    # As real S3 sends them: every stored result carries its version and a real-format sequencer.
    created = [e["detail"] for e in events if not e["detail-type"].endswith("Removed")]
    assert all(d["versionId"] and len(d["sequencer"]) == 18 for d in created), created
    # The overwrite: the first version's notification came last and changed nothing.
    overwritten = [d for d in created if d["key"] == "line-3/overwritten.png"]
    assert [d["labelNames"] for d in overwritten] == [["logo"]]
    # The deletion: marked deleted (deletedAt), gone from find_by_label, announced once.
    removed = [e["detail"] for e in events if e["detail-type"].endswith("Removed")]
    assert [(d["key"], d["deletion"]["eventName"]) for d in removed] == [
        ("line-3/deleted.png", "ObjectRemoved:DeleteMarkerCreated")
    ]
    assert "find_by_label lists it 0 time(s); 1 Removed event(s)" in out and "deletedAt 20" in out
    annotated = sorted(p.name for p in (tmp_path / "annotated").iterdir())
    assert annotated == [
        "line-1_part-0001.png.annotated.png",
        "line-1_part-0003.jpeg.annotated.png",
        "line-1_part_0002_re-shot_.JPG.annotated.png",
    ]
    logs = (tmp_path / "lambda-logs.jsonl").read_text()
    assert "ThrottlingException" in logs and "Duplicate delivery" in logs  # the retry and the dedupe shown
    assert "Older event than the stored result" in logs  # the overwrite's late notification
    with pytest.raises(requests.exceptions.ConnectionError):  # the embedded server is stopped afterwards
        requests.get(out.split("moto server on ")[1].split()[0], timeout=2)
