"""`autolabel show`, `find` and `render` on results the real pipeline stored (in-process moto)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
from PIL import Image

from autolabel.render import draw_labels, font_size_for
from local.fakes.fake_model import PALETTE
from local.samples import BACKGROUND, make_image
from tests.integration.labeler.test_formats_and_deletions import with_deletions
from tests.support.builders import notification_body, s3_removal_record
from tests.support.cli import RunCli
from tests.support.harness import ARN, Harness

PART_1 = "line-1/part 0001.png"


@pytest.fixture
def labeled(harness: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Harness:
    harness.upload(PART_1, make_image({"scratch": (0.1, 0.1, 0.3, 0.25), "logo": (0.6, 0.55, 0.3, 0.3)}))
    harness.upload("line-1/part-0002.png", make_image({"scratch": (0.5, 0.5, 0.2, 0.2)}, size=(640, 480)))
    harness.upload("line-1/blank.png", make_image({}))
    harness.upload("line-2/corrupt.jpg", b"\xff\xd8\xff not really a jpeg")
    harness.run()
    capsys.readouterr()  # the handler's logs and metrics are not the command's output
    monkeypatch.setenv("AUTOLABEL_TABLE", harness.resources.table_name)
    return harness


def test_show_prints_the_stored_result(cli: RunCli, labeled: Harness) -> None:
    bucket = labeled.resources.bucket
    run = cli("show", f"s3://{bucket}/{PART_1}")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].split(None, 1) == ["object", f"s3://{bucket}/{PART_1}"]
    assert ["status", "LABELED"] in [line.split() for line in lines]
    assert any(line.split()[:1] == ["scratch"] for line in lines)
    as_json = json.loads(cli("show", f"s3://{bucket}/{PART_1}", "--output", "json").out)
    assert as_json == labeled.result(PART_1)


def test_show_with_a_model_and_a_failed_result(cli: RunCli, labeled: Harness) -> None:
    bucket = labeled.resources.bucket
    run = cli("show", f"s3://{bucket}/line-2/corrupt.jpg", "--model", ARN)
    assert run.code == 0
    assert "InvalidImageFormatException" in run.out
    other = "arn:aws:rekognition:us-east-1:123456789012:project/other/version/other.1/1700000000000"
    missing = cli("show", f"s3://{bucket}/{PART_1}", "--model", other)
    assert (missing.code, missing.err) == (1, f"autolabel: no result for s3://{bucket}/{PART_1} with model {other}\n")


def test_show_of_a_deleted_object_says_deleted_and_keeps_its_labels(cli: RunCli, labeled: Harness) -> None:
    bucket = labeled.resources.bucket
    with_deletions(labeled)
    labeled.send(notification_body(s3_removal_record(PART_1, bucket=bucket, version_id="dm1", sequencer="FF")))
    labeled.run()
    run = cli("show", f"s3://{bucket}/{PART_1}")
    assert run.code == 0, run.err
    rows = [line.split() for line in run.out.splitlines()]
    assert ["status", "DELETED"] in rows and any(row[:1] == ["deletedAt"] for row in rows)
    assert any(row[:1] == ["scratch"] for row in rows)  # kept for history


def test_show_needs_an_s3_uri(cli: RunCli, labeled: Harness) -> None:
    run = cli("show", "photos/part.png")
    assert run.code == 252 and "expected s3://BUCKET/KEY" in run.err


def test_find_lists_the_most_confident_first(cli: RunCli, labeled: Harness) -> None:
    found = json.loads(cli("find", "scratch", "--output", "json").out)
    assert sorted(e["key"] for e in found) == sorted([PART_1, "line-1/part-0002.png"])
    assert [e["confidence"] for e in found] == sorted((e["confidence"] for e in found), reverse=True)
    limited = json.loads(cli("find", "scratch", "--limit", "1", "--output", "json").out)
    assert limited == found[:1]
    table = cli("find", "scratch", "--min-confidence", "80").out.splitlines()
    assert table[0].split() == ["confidence", "object", "versionId", "model"]
    assert len(table) == 2 + len(found)
    assert "no object carries 'rust'" in cli("find", "rust").out


@pytest.mark.parametrize(
    ("argv", "complaint"), [(["--min-confidence", "120"], "between 0 and 100"), (["--limit", "0"], ">= 1")]
)
def test_find_refuses_bad_bounds(cli: RunCli, labeled: Harness, argv: list[str], complaint: str) -> None:
    run = cli("find", "scratch", *argv)
    assert run.code == 252 and complaint in run.err


def test_find_query_and_text(cli: RunCli, labeled: Harness) -> None:
    keys = json.loads(cli("find", "logo", "--query", "[].key", "--output", "json").out)
    assert keys == [PART_1]
    assert cli("find", "logo", "--query", "[].key", "--output", "text").out.strip() == PART_1


def test_render_draws_the_stored_boxes(cli: RunCli, labeled: Harness, tmp_path: pytest.TempPathFactory) -> None:
    out = f"{tmp_path}/part.png"
    run = cli("render", f"s3://{labeled.resources.bucket}/{PART_1}", "-o", out)
    assert (run.code, run.out) == (0, f"wrote {out} (2 label(s) drawn)\n")
    image = Image.open(out).convert("RGB")
    assert image.size == (320, 240)
    # The scratch box (x 32-128, y 24-84) has an outline that is neither its fill nor the background;
    # the background far from any box is untouched.
    assert image.getpixel((32, 60)) not in (BACKGROUND, PALETTE["scratch"])
    assert image.getpixel((80, 60)) == PALETTE["scratch"]
    assert image.getpixel((300, 20)) == BACKGROUND


def test_render_of_a_failed_or_unknown_object(cli: RunCli, labeled: Harness, tmp_path: pytest.TempPathFactory) -> None:
    bucket = labeled.resources.bucket
    failed = cli("render", f"s3://{bucket}/line-2/corrupt.jpg", "-o", f"{tmp_path}/x.png")
    assert failed.code == 1 and "FAILED (InvalidImageFormatException)" in failed.err
    unknown = cli("render", f"s3://{bucket}/nope.png", "-o", f"{tmp_path}/x.png")
    assert unknown.code == 1 and "no result for" in unknown.err


def test_no_labels_caption(cli: RunCli, labeled: Harness, tmp_path: pytest.TempPathFactory) -> None:
    out = f"{tmp_path}/blank.png"
    assert cli("render", f"s3://{labeled.resources.bucket}/line-1/blank.png", "-o", out).code == 0
    image = Image.open(out).convert("RGB")
    assert image.getpixel((2, 2)) == (255, 255, 255)  # the caption's box, top left
    assert image.getpixel((300, 200)) == BACKGROUND


@pytest.mark.parametrize("size", [(64, 64), (320, 240), (4096, 3072)])
def test_captions_scale_with_the_image(size: tuple[int, int]) -> None:
    labels = [
        {
            "Name": "scratch",
            "Confidence": 99.0,
            "Geometry": {"BoundingBox": {"Left": 0.1, "Top": 0.5, "Width": 0.5, "Height": 0.3}},
        }
    ]
    drawn = Image.open(io.BytesIO(draw_labels(make_image({}, size=size), labels))).convert("RGB")
    assert drawn.size == size
    font = font_size_for(*size)
    assert font >= 12 and (size[0] < 1000 or font >= 100)
    # The caption sits above the box and is about `font` pixels high: count its rows.
    column = [drawn.getpixel((int(0.1 * size[0]) + 2, y)) for y in range(int(0.5 * size[1]))]
    caption_rows = sum(1 for pixel in column if pixel != BACKGROUND)
    assert font * 0.8 <= caption_rows <= font * 2


def test_render_when_the_image_is_gone(cli: RunCli, labeled: Harness, tmp_path: pytest.TempPathFactory) -> None:
    bucket = labeled.resources.bucket
    labeled.s3.delete_object(Bucket=bucket, Key=PART_1)
    run = cli("render", f"s3://{bucket}/{PART_1}", "-o", f"{tmp_path}/x.png")
    assert run.code == 254
    assert run.err.startswith(f"autolabel: cannot read s3://{bucket}/{PART_1}: NoSuchKey")


def test_a_table_that_does_not_exist(cli: RunCli, labeled: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOLABEL_TABLE", "no-such-table")
    run = cli("find", "scratch")
    assert run.code == 254 and run.err.startswith("autolabel: ResourceNotFoundException") and run.err.count("\n") == 1


def test_render_writes_the_format_its_name_says(cli: RunCli, labeled: Harness, tmp_path: Path) -> None:
    uri = f"s3://{labeled.resources.bucket}/{PART_1}"
    for name, magic in (("x.jpg", b"\xff\xd8\xff"), ("x.JPEG", b"\xff\xd8\xff"), ("x.png", b"\x89PNG")):
        run = cli("render", uri, "-o", f"{tmp_path}/{name}")
        assert run.code == 0, run.err
        assert (tmp_path / name).read_bytes().startswith(magic), name
    refused = cli("render", uri, "-o", f"{tmp_path}/x.gif")
    assert (refused.code, refused.err) == (
        252,
        f"autolabel: -o/--out {tmp_path}/x.gif: name a .png or .jpg/.jpeg file (cannot write '.gif')\n",
    )
    assert not (tmp_path / "x.gif").exists()


def test_a_query_that_matches_nothing_prints_no_none(cli: RunCli, labeled: Harness) -> None:
    uri = f"s3://{labeled.resources.bucket}/{PART_1}"
    for output, printed in (("table", ""), ("json", "null\n"), ("text", "None\n")):  # json/text: as the AWS CLI
        run = cli("show", uri, "--query", "nosuchfield", "--output", output)
        assert (run.code, run.out) == (0, printed), output


def test_a_deployment_in_any_stack_is_found_by_its_ssm_parameter(
    cli: RunCli, labeled: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTOLABEL_TABLE")
    names = {"ResultsTableName": labeled.resources.table_name, "IngestQueueUrl": "unused"}
    boto3.client("ssm").put_parameter(Name="/autolabel/deployments/line-1", Value=json.dumps(names), Type="String")
    bucket = labeled.resources.bucket
    run = cli("--deployment", "line-1", "show", f"s3://{bucket}/{PART_1}", "--output", "json")
    assert run.code == 0, run.err
    assert json.loads(run.out) == labeled.result(PART_1)
    missing = cli("show", f"s3://{bucket}/{PART_1}", "--deployment", "line-9")
    assert missing.code == 253
    assert missing.err.startswith(
        "autolabel: no deployment 'line-9' in us-east-1: SSM parameter /autolabel/deployments/"
    )
    both = cli("show", f"s3://{bucket}/{PART_1}", "--deployment", "line-1", "--stack-name", "Autolabel")
    assert (both.code, both.err) == (253, "autolabel: give --stack-name or --deployment, not both\n")
