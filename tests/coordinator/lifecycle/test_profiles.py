"""Profile discovery and validation: every bad file named with its reason, never its content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordinator.lifecycle.profiles import discover, problem_with


def write(folder: Path, name: str, content: object) -> Path:
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_valid_profiles_sorted_by_name(tmp_path: Path) -> None:
    for name in ("b", "a", "c"):
        write(tmp_path, f"{name}.json", {"cookies": [], "origins": []})
    write(tmp_path, "notes.txt", "not a profile")
    found = discover(tmp_path)
    assert [p.name for p in found.profiles] == ["a", "b", "c"]
    assert found.rejected == ()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{oops", "not valid JSON"),
        ([], "top level must be an object"),
        ({"origins": []}, "'cookies' must be a list"),
        ({"cookies": ["x"]}, "cookies[0] must be an object"),
        ({"cookies": [{"name": "sid", "domain": "x"}]}, "cookies[0] has no string 'value'"),
        ({"cookies": [], "origins": {}}, "'origins' must be a list"),
        (
            {"cookies": [], "origins": [{"localStorage": []}]},
            "origins[0] must be an object with a string 'origin'",
        ),
    ],
)
def test_bad_storage_state_is_explained(tmp_path: Path, content: object, reason: str) -> None:
    path = write(tmp_path, "p.json", content)
    problem = problem_with(path)
    assert problem is not None and reason in problem


def test_reason_never_quotes_a_cookie(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", '{"cookies": [{"name": "sid", "value": "SECRET-VALUE", "domain": 3}]}')
    problem = problem_with(path)
    assert problem is not None and "SECRET-VALUE" not in problem
    path = write(tmp_path, "q.json", '{"cookies": [{"name": "sid", "value": "SECRET-VALUE"')
    problem = problem_with(path)
    assert problem is not None and "SECRET-VALUE" not in problem


def test_unsafe_file_name_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "my profile.json", {"cookies": [], "origins": []})
    assert "rename the file" in (problem_with(path) or "")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        discover(tmp_path / "missing")
