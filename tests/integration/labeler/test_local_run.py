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
    events = json.loads((tmp_path / "events.json").read_text())
    assert sorted(e["detail-type"] for e in events) == ["Custom Labels Detected"] * 3 + ["Custom Labels Failed"] * 3
    annotated = sorted(p.name for p in (tmp_path / "annotated").iterdir())
    assert annotated == [
        "line-1_part-0001.png.annotated.png",
        "line-1_part-0003.jpeg.annotated.png",
        "line-1_part_0002_re-shot_.JPG.annotated.png",
    ]
    logs = (tmp_path / "lambda-logs.jsonl").read_text()
    assert "ThrottlingException" in logs and "Duplicate delivery" in logs  # the retry and the dedupe shown
    with pytest.raises(requests.exceptions.ConnectionError):  # the embedded server is stopped afterwards
        requests.get(out.split("moto server on ")[1].split()[0], timeout=2)
