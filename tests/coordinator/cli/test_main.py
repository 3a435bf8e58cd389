"""`coordinator run` turns its options into Settings, field by field, with no process started."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from coordinator.cli import main
from coordinator.protocol import logs
from coordinator.settings import Engine, Settings
from tests.support.imports import heavy, imported_by


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings `run` would start with; nothing is started, and logging is left as it is
    (configured, it would write to the runner's output, closed after the test)."""
    seen: list[Settings] = []

    def fake_run(settings: Settings, child_env: dict[str, str]) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(main, "_run", fake_run)
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)
    return seen


def test_every_setting_is_an_option_of_run() -> None:
    options = set(main.run.__annotations__)
    shard = {"shard_index", "shard_count"}  # from --shard or --shard-from-hostname
    assert {field.name for field in fields(Settings)} - {"api_keys", "admin_keys", *shard} <= options


def test_options_become_settings(started: list[Settings], tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# ours\nk3\n\n")
    argv = ["run", "--profiles", str(tmp_path), "--engine", "mock", "--max-queue", "7", "--no-headless",
            "--eject-cooldown", "2.5", "--api-key", "k1, k2", "--api-key-file", str(keys)]  # fmt: skip

    result = CliRunner().invoke(main.app, argv, env={"COORDINATOR_PORT": "2049"})

    assert result.exit_code == 0, result.output
    expected = Settings(
        profiles=tmp_path,
        engine=Engine.MOCK,
        max_queue=7,
        headless=False,
        eject_cooldown=2.5,
        port=2049,
        api_keys=("k1", "k2", "k3"),
    )
    assert started == [expected]


def test_admin_keys_and_cors_origins_become_settings(started: list[Settings], tmp_path: Path) -> None:
    admins = tmp_path / "admins"
    admins.write_text("a2\n")
    argv = ["run", "--profiles", str(tmp_path), "--admin-key-file", str(admins),
            "--cors-origins", "https://Chat.example.com/, http://localhost:3000"]  # fmt: skip

    result = CliRunner().invoke(
        main.app, argv, env={"COORDINATOR_ADMIN_KEY": "a1", "COORDINATOR_API_KEY": "k1"}
    )

    assert result.exit_code == 0, result.output
    (settings,) = started
    assert settings.api_keys == ("k1",) and settings.admin_keys == ("a1", "a2")
    assert settings.cors_origins == ("https://chat.example.com", "http://localhost:3000")
    assert "a1" not in repr(settings) and "k1" not in repr(settings)


def test_a_bad_cors_origin_is_refused(started: list[Settings], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main.app, ["run", "--profiles", str(tmp_path), "--cors-origins", "example.com"]
    )

    assert result.exit_code == 2 and "is not an origin" in result.output
    assert started == []


@pytest.mark.parametrize(
    ("argv", "env", "flags"),
    [
        (["--api-key", "k1"], {}, ["--api-key"]),
        (["--admin-key", "a1"], {"COORDINATOR_API_KEY": "k1"}, ["--admin-key"]),
        ([], {"COORDINATOR_API_KEY": "k1", "COORDINATOR_ADMIN_KEY": "a1"}, []),
    ],
)
def test_a_key_on_the_command_line_is_warned_about(
    started: list[Settings], tmp_path: Path, argv: list[str], env: dict[str, str], flags: list[str]
) -> None:
    with structlog.testing.capture_logs() as captured:
        result = CliRunner().invoke(main.app, ["run", "--profiles", str(tmp_path), *argv], env=env)

    assert result.exit_code == 0, result.output
    warnings = [event for event in captured if event["event"] == "api_key_on_command_line"]
    assert [event["flag"] for event in warnings] == flags
    for event in warnings:
        assert f"{event['flag']}-file" in event["hint"] and "k1" not in str(event) and "a1" not in str(event)


def test_an_unreadable_key_file_is_refused(started: list[Settings], tmp_path: Path) -> None:
    argv = ["run", "--profiles", str(tmp_path), "--api-key-file", str(tmp_path / "missing")]

    result = CliRunner().invoke(main.app, argv)

    assert result.exit_code == 2
    assert "cannot read the API key file" in result.output
    assert started == []


def test_check_site_runs_the_childs_check_in_a_process_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran: list[list[str]] = []

    def fake_run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 1)

    monkeypatch.setattr(subprocess, "run", fake_run)
    profile = tmp_path / "alice.json"
    result = CliRunner().invoke(
        main.app,
        ["check-site", "--profile", str(profile), "--site-url", "http://127.0.0.1:9", "--engine", "chromium",
         "--prompt", "hello", "--json"],
    )  # fmt: skip
    assert result.exit_code == 1  # the check's own verdict
    argv = ran[0]
    assert argv[1:5] == ["-m", "child.check_site", "--profile", str(profile)]
    assert argv[argv.index("--engine") + 1] == "chromium"
    assert argv[argv.index("--site-url") + 1] == "http://127.0.0.1:9"
    assert argv[argv.index("--prompt") + 1] == "hello"
    assert "--json" in argv and "--headless" in argv


def test_check_site_refuses_the_mock_engine(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main.app, ["check-site", "--profile", str(tmp_path / "a.json"), "--engine", "mock"]
    )
    assert result.exit_code == 2
    assert "drives a real browser" in result.output


def test_key_priorities_name_keys_by_label(started: list[Settings], tmp_path: Path) -> None:
    runner = CliRunner()
    argv = ["run", "--profiles", str(tmp_path), "--api-key", "k0,k1", "--key-priority", "client-1=HIGH"]
    result = runner.invoke(main.app, argv, env={})
    assert result.exit_code == 0, result.output
    assert started[-1].key_priorities == (("client-1", "high"),)
    result = runner.invoke(main.app, [*argv[:-1], "client-7=low"], env={})
    assert result.exit_code != 0 and "no key is labelled 'client-7'" in result.output


def test_a_shard_becomes_settings(
    started: list[Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    result = runner.invoke(main.app, ["run", "--profiles", str(tmp_path), "--shard", "1/3"])
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(socket, "gethostname", lambda: "coordinator-2")
    result = runner.invoke(
        main.app, ["run", "--profiles", str(tmp_path)], env={"COORDINATOR_SHARD_FROM_HOSTNAME": "4"}
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(main.app, ["run", "--profiles", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [(s.shard_index, s.shard_count) for s in started] == [(1, 3), (2, 4), (0, 1)]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--shard", "3/3"], "shards are numbered 0 to 2"),
        (["--shard", "0/2", "--shard-from-hostname", "2"], "give one"),
        (["--shard-from-hostname", "2"], "does not end in -<number>"),
    ],
)
def test_a_shard_that_cannot_be_is_refused(
    started: list[Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], said: str
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "vm")
    result = CliRunner().invoke(main.app, ["run", "--profiles", str(tmp_path), *args])
    assert result.exit_code == 2 and said in result.output and not started


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["profiles", "{tmp}"], ["status", "--url", "http://127.0.0.1:9", "--timeout", "1"]],
    ids=["help", "profiles", "status"],
)
def test_the_light_commands_load_no_server_and_no_rich(argv: list[str], tmp_path: Path) -> None:
    """Start-up time: they import neither the server (`run`'s), nor rich (structlog's or
    typer's), nor jsonschema."""
    modules = imported_by(["-m", "coordinator", *(a.replace("{tmp}", str(tmp_path)) for a in argv)])
    assert "coordinator.cli.main" in modules
    assert heavy(modules, "coordinator.runtime", "coordinator.serving.routes", "prometheus_client") == set()
    assert heavy(modules, "rich", "jsonschema") == set()
