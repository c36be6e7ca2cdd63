"""The README's layout table is a promise: every module it names exists, and none is missing."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_layout_table_names_exactly_the_gates_modules() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Layout") :]
    named = set(re.findall(r"`gates/([a-z_/]+\.py)`", table))
    on_disk = {
        p.relative_to(REPO / "gates").as_posix()
        for p in (REPO / "gates").rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    assert named == on_disk


def test_every_picture_the_docs_show_is_committed() -> None:
    for doc in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).is_file(), f"{doc.name} shows a missing {target}"
