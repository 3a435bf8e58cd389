"""The dashboard's files: all shipped in the wheel, all served, nothing inline, nothing from elsewhere."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from coordinator.serving import dashboard

FOLDER = Path(dashboard.__file__).parent
ROOT = Path(__file__).parents[3]
STATIC = sorted(path.name for path in FOLDER.iterdir() if path.suffix in {".html", ".js", ".css", ".svg"})


def test_every_file_is_package_data_and_served() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["coordinator.serving.dashboard"]
    for name in STATIC:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
    assert {name for name, _ in dashboard.FILES.values()} == set(STATIC)
    loaded = dashboard.load()
    assert set(loaded) == set(dashboard.FILES)
    assert all(asset.body for asset in loaded.values())


def test_the_page_loads_only_its_own_files_and_runs_no_inline_code() -> None:
    page = (FOLDER / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", page) == ['<script src="/dashboard/dashboard.js" defer>']
    assert not re.search(r"\son[a-z]+\s*=", page)  # no inline handlers
    assert not re.search(r"\sstyle\s*=", page) and "<style" not in page
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert url in dashboard.FILES, url


def test_nothing_is_loaded_from_another_origin() -> None:
    for name in STATIC:
        text = (FOLDER / name).read_text()
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
    script = (FOLDER / "dashboard.js").read_text()
    assert "innerHTML" not in script and "eval(" not in script  # text goes in as text


def test_the_policy_allows_no_inline_script_or_other_origin() -> None:
    directives = dict(part.strip().split(" ", 1) for part in dashboard.CSP.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert "unsafe" not in dashboard.CSP
