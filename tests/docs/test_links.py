"""Links between README.md and docs/ resolve, and docs/behaviour.md keeps the anchors others cite.

Code comments and the other pages point at sections of docs/behaviour.md
(``docs/behaviour.md#failures``); a renamed heading would silently break them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.settings import CONTEXT_KEYS

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BEHAVIOUR = ROOT / "docs" / "behaviour.md"
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
# Cited from code comments and other pages: renaming one of these breaks them.
STABLE_ANCHORS = (
    "flow",
    "stored-attributes",
    "failures",
    "ordering",
    "delivery-guarantee",
    "configuration",
    "deployment",
)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", path.read_text()))}


def links() -> list[tuple[Path, str]]:
    found = []
    for path in DOCS:
        for target in LINK.findall(FENCE.sub("", path.read_text())):
            if not re.match(r"^[a-z]+:", target):  # not http:, https:, mailto:
                found.append((path, target))
    return found


ALL_LINKS = links()


@pytest.mark.parametrize("link", ALL_LINKS, ids=[f"{p.relative_to(ROOT)}->{t}" for p, t in ALL_LINKS])
def test_link_resolves(link: tuple[Path, str]) -> None:
    source, target = link
    file_part, _, anchor = target.partition("#")
    destination = (source.parent / file_part).resolve() if file_part else source
    assert destination.exists(), f"{source.relative_to(ROOT)} links to a missing {file_part}"
    assert ROOT in destination.parents or destination == ROOT, f"{target} points outside the repository"
    if anchor and destination.suffix == ".md":
        assert anchor in anchors(destination), f"{destination.relative_to(ROOT)} has no section #{anchor}"


def test_links_are_found() -> None:
    assert any(t.startswith("docs/behaviour.md") for p, t in ALL_LINKS if p.name == "README.md")


def test_behaviour_keeps_its_stable_anchors() -> None:
    missing = [a for a in STABLE_ANCHORS if a not in anchors(BEHAVIOUR)]
    assert not missing, f"docs/behaviour.md lost sections that others link to: {missing}"


def test_behaviour_documents_every_context_key() -> None:
    section = BEHAVIOUR.read_text().split("### CDK context", 1)[1].split("\n### ", 1)[0]
    documented = re.findall(r"^\| `([A-Za-z]+)` \|", section, re.MULTILINE)
    assert sorted(documented) == sorted(CONTEXT_KEYS), "docs/behaviour.md#configuration and infra/settings.py differ"
