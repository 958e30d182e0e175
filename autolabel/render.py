"""Draw labels (boxes, polygons, names) on an image, legibly at any size."""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from autolabel.errors import ParameterError

# High-contrast colours (Okabe-Ito), one per label name, stable across runs.
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0), (204, 121, 167)]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def colour_for(name: str) -> tuple[int, int, int]:
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]


def font_size_for(width: int, height: int) -> int:
    """About 1/40 of the longer side, never below 12 px (legible on a 64 px thumbnail)."""
    return max(12, round(max(width, height) / 40))


def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def _caption(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: Font, colour: Any) -> None:
    """Text on a solid box, kept inside the image."""
    width, height = draw.im.size
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(2, (bottom - top) // 5)
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(max(0.0, xy[0]), max(0.0, width - box_w))
    y = min(max(0.0, xy[1]), max(0.0, height - box_h))
    draw.rectangle([x, y, x + box_w, y + box_h], fill=colour)
    draw.text((x + pad - left, y + pad - top), text, font=font, fill=(0, 0, 0))


# What the drawing is written as, by the output file's suffix (no suffix: PNG, e.g. /dev/stdout).
FORMAT_BY_SUFFIX = {"": "PNG", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def format_for(path: str, option: str) -> str:
    """PNG or JPEG, from the file name; any other suffix is refused before any call."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMAT_BY_SUFFIX:
        raise ParameterError(f"{option} {path}: name a .png or .jpg/.jpeg file (cannot write {suffix!r})")
    return FORMAT_BY_SUFFIX[suffix]


def draw_labels(
    image_bytes: bytes, labels: list[dict[str, Any]], *, empty_caption: str = "no labels", image_format: str = "PNG"
) -> bytes:
    """The image (PNG or JPEG bytes) with each label's box (and polygon) and ``Name Confidence``."""
    try:
        image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ParameterError(f"cannot read the image to render it: {error}") from None
    width, height = image.size
    draw = ImageDraw.Draw(image)
    font = _font(font_size_for(width, height))
    line = max(2, round(max(width, height) / 300))
    unplaced: list[str] = []
    for label in labels:
        name = str(label.get("Name", "?"))
        text = f"{name} {float(label.get('Confidence', 0)):.1f}%"
        colour = colour_for(name)
        geometry = label.get("Geometry") or {}
        box = geometry.get("BoundingBox")
        if not box:
            unplaced.append(text)  # classification models: no geometry
            continue
        x0, y0 = float(box["Left"]) * width, float(box["Top"]) * height
        x1, y1 = x0 + float(box["Width"]) * width, y0 + float(box["Height"]) * height
        draw.rectangle([x0 - line, y0 - line, x1 + line, y1 + line], outline=(0, 0, 0), width=max(1, line // 2))
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=line)  # dark rim: visible on any background
        polygon = geometry.get("Polygon") or []
        if len(polygon) >= 3:
            draw.polygon([(float(p["X"]) * width, float(p["Y"]) * height) for p in polygon], outline=colour)
        _, top, _, bottom = draw.textbbox((0, 0), text, font=font)
        above = y0 - (bottom - top) - 2 * max(2, (bottom - top) // 5)
        _caption(draw, (x0, above if above >= 0 else y0 + line), text, font, colour)
    banner = unplaced if labels else [empty_caption]
    y = 0.0
    for text in banner:
        _caption(draw, (0, y), text, font, (255, 255, 255))
        _, top, _, bottom = draw.textbbox((0, 0), text, font=font)
        y += (bottom - top) + 2 * max(2, (bottom - top) // 5) + 2
    out = io.BytesIO()
    image.save(out, format=image_format, **({"quality": 92} if image_format == "JPEG" else {}))
    return out.getvalue()
