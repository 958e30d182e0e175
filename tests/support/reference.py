"""A reference model of what the labeler must end up with, written independently of lambda/labeler.

- S3 sequencer order, as the S3 User Guide states it: right-pad the shorter
  sequencer with zeros, then compare lexicographically (hex, case-insensitive).
- Sequencers for successive uploads of one key, of random lengths, always
  newer under that rule (including newer ones that are shorter).
- Label sets for object versions: a few labels (possibly the same name twice),
  more than 99 distinct labels, or an empty object (FAILED, no labels).
- The expected label index of a result: each distinct name with its best
  confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Longest sequencer generated; S3's are 16-22 hex digits in practice.
SEQUENCER_WIDTH = 22
# Where the first upload of a key starts (the S3 User Guide's example value, right-padded).
FIRST_SEQUENCER = "0055AED6DCD90281E5"
# Label names: L000..L127. Results with more than 99 distinct labels take 100-120 of them,
# so that checking every label ever used stays a bounded number of queries.
LABEL_POOL = 128


def sequencer_sort_key(sequencer: str, width: int) -> str:
    """The sequencer right-padded with zeros to ``width``, upper case."""
    return sequencer.upper().ljust(width, "0")


def is_newer(sequencer: str, than: str) -> bool:
    """True when ``sequencer`` is strictly newer than ``than`` (right-pad, then compare)."""
    width = max(len(sequencer), len(than))
    return sequencer_sort_key(sequencer, width) > sequencer_sort_key(than, width)


def next_sequencer(previous: str | None, length: int, bump: int, *, lowercase: bool = False) -> str:
    """A sequencer of ``length`` hex digits, newer than ``previous`` under the right-pad rule.

    ``bump`` = 0 gives the smallest such sequencer of that length; a shorter
    sequencer after a longer one is then the longer one's prefix plus one in
    its last kept digit (``0055AED6DCD9029`` after ``0055AED6DCD90281E5``).
    """
    if not 1 <= length <= SEQUENCER_WIDTH:
        raise ValueError(f"length must be 1..{SEQUENCER_WIDTH}")
    floor = int(sequencer_sort_key(previous or FIRST_SEQUENCER, SEQUENCER_WIDTH), 16)
    step = 16 ** (SEQUENCER_WIDTH - length)
    digits = floor // step + 1 + bump
    text = format(digits, "X").rjust(length, "0")
    if len(text) != length:
        raise ValueError("sequencer space exhausted")
    if previous is not None and not is_newer(text, previous):
        raise AssertionError(f"generated {text} is not newer than {previous}")
    return text.lower() if lowercase else text


@dataclass(frozen=True)
class LabelSpec:
    """How to build the DetectCustomLabels answer for one object version (small, shrinkable)."""

    kind: str  # "few", "many" or "empty"
    few: tuple[tuple[int, int, bool], ...] = ()  # (name index, confidence in 1/100 %, with geometry)
    many: tuple[int, int, int] = (0, 0, 0)  # (distinct names, first name index, confidence salt)

    @property
    def empty_object(self) -> bool:
        return self.kind == "empty"


def label_name(index: int) -> str:
    return f"L{index % LABEL_POOL:03d}"


def _box(index: int) -> dict[str, Any]:
    return {
        "BoundingBox": {
            "Width": 0.25,
            "Height": round(0.1 + (index % 7) / 10, 2),
            "Left": round((index % 5) / 10, 2),
            "Top": 0.125,
        }
    }


def custom_labels(spec: LabelSpec) -> list[dict[str, Any]]:
    """The CustomLabels list the fake model returns for a version (Rekognition's order)."""
    labels: list[dict[str, Any]] = []
    if spec.kind == "few":
        for position, (name, confidence, geometry) in enumerate(spec.few):
            label: dict[str, Any] = {"Name": label_name(name), "Confidence": confidence / 100}
            if geometry:
                label["Geometry"] = _box(position)
            labels.append(label)
    elif spec.kind == "many":
        count, first, salt = spec.many
        for i in range(count):
            # No geometry here: moto (de)serializes nested maps slowly, and the
            # point of these results is their number of distinct labels.
            labels.append({"Name": label_name(first + i), "Confidence": 50 + ((i * 7919 + salt) % 4990) / 100})
    return labels


def best_confidences(labels: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Each distinct label name with its highest confidence (what the label index must hold)."""
    best: dict[str, float] = {}
    for label in labels:
        name = str(label["Name"])
        best[name] = max(best.get(name, float("-inf")), float(label["Confidence"]))
    return best


@dataclass(frozen=True)
class Version:
    """One uploaded object version and what the model says about it."""

    key: str
    key_index: int
    version_id: str
    etag: str
    sequencer: str
    spec: LabelSpec

    @property
    def size(self) -> int:
        return 0 if self.spec.empty_object else 48213

    @property
    def labels(self) -> list[dict[str, Any]]:
        return custom_labels(self.spec)

    @property
    def status(self) -> str:
        return "FAILED" if self.spec.empty_object else "LABELED"

    def short(self) -> str:
        return f"{self.key}@{self.version_id}(seq {self.sequencer}, {self.spec.kind})"
