"""The documentation: the site builds without a warning, the README stays short, and no page
tells the history of the work (a commit hash or a date creeping back in)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "docker" / "README.md"]
PAGES += sorted((ROOT / "docs").glob("*.md"))
# A hex token of 7 or more digits with at least one letter and one digit (a short commit hash),
# and an ISO date.
COMMIT = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
DATE = re.compile(r"\b(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])\b")


def test_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "dashboard-actors.png").exists()


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_history_in_docs(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    found = [m.group(0) for m in COMMIT.finditer(text)] + [m.group(0) for m in DATE.finditer(text)]
    assert not found, f"{page.relative_to(ROOT)}: looks like history (a commit or a date): {found}"


@pytest.mark.parametrize(
    ("text", "flagged"),
    [("the commit 48006c7 wrote it", True), ("run on 2026-12-04", True), ("regret 1.2e-06, 0.00012", False)],
)
def test_history_guard(text: str, flagged: bool) -> None:
    assert bool(COMMIT.search(text) or DATE.search(text)) is flagged
