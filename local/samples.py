"""Sample images for the local run and the tests (generated, never committed)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw

from local.fakes.fake_model import PALETTE

BACKGROUND = (235, 235, 225)


def make_image(
    shapes: dict[str, tuple[float, float, float, float]] | None = None,
    *,
    size: tuple[int, int] = (320, 240),
    image_format: str = "PNG",
) -> bytes:
    """An image with a filled rectangle per label: name -> (left, top, width, height) as fractions."""
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    for name, (left, top, box_width, box_height) in (shapes or {}).items():
        x0, y0 = int(left * width), int(top * height)
        x1, y1 = int((left + box_width) * width) - 1, int((top + box_height) * height) - 1
        draw.rectangle([x0, y0, x1, y1], fill=PALETTE[name])
    out = io.BytesIO()
    image.save(out, format=image_format, **({"quality": 95} if image_format == "JPEG" else {}))
    return out.getvalue()


@dataclass(frozen=True)
class Sample:
    key: str
    body: bytes
    expected_status: str  # LABELED, FAILED or SKIPPED
    note: str


def sample_set() -> list[Sample]:
    return [
        Sample(
            "line-1/part-0001.png",
            make_image({"scratch": (0.1, 0.1, 0.3, 0.25), "logo": (0.6, 0.55, 0.3, 0.3)}),
            "LABELED",
            "scratch and logo",
        ),
        Sample(
            "line-1/part 0002 (re-shot).JPG",
            make_image({"dent": (0.35, 0.3, 0.4, 0.4)}, size=(400, 300), image_format="JPEG"),
            "LABELED",
            "dent; key with spaces, upper-case extension",
        ),
        Sample(
            "line-1/part-0003.jpeg",
            make_image({}, size=(200, 200), image_format="JPEG"),
            "LABELED",
            "nothing above the model's threshold: no labels",
        ),
        Sample(
            "line-2/corrupt.jpg",
            b"\xff\xd8\xff\xe0 this is not really a JPEG" * 10,
            "FAILED",
            "corrupt JPEG: InvalidImageFormatException",
        ),
        Sample(
            "line-2/thumbnail.png",
            make_image({"logo": (0.0, 0.0, 1.0, 1.0)}, size=(32, 32)),
            "FAILED",
            "32x32 px: InvalidParameterException",
        ),
        Sample("line-2/empty.png", b"", "FAILED", "empty: InvalidImageFormatException without a call"),
        Sample("line-2/notes.txt", b"operator notes: not an image", "SKIPPED", "not .jpg/.jpeg/.png: no call, no row"),
    ]
