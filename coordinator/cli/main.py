"""The `coordinator` command: parses flags, sets up logging, and calls `server.run()`.

Every flag of `run` can also be set as `COORDINATOR_<FLAG>` in the environment
(`--base-api-port` → `COORDINATOR_BASE_API_PORT`); a flag wins over the environment.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import structlog
import typer

from coordinator.cli import check_site as site_check
from coordinator.cli import profiles as inventory
from coordinator.cli.keys import KeyFileError, read_api_keys
from coordinator.ledger.quota import parse_limits
from coordinator.lifecycle import shards
from coordinator.lifecycle.profiles import discover, name_problem
from coordinator.protocol import logs
from coordinator.serving.auth import KeyRing
from coordinator.serving.cors import parse_origins
from coordinator.serving.lanes import parse_key_priorities
from coordinator.settings import Engine, Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Turn a folder of logged-in browser profiles into one OpenAI-compatible endpoint.",
    # click's plain help and errors: typer's rich ones take ~0.3 s to import, at every --help.
    rich_markup_mode=None,
)
log = structlog.get_logger("coordinator.cli.main")
_DEFAULTS = Settings(profiles=Path("auth_profiles/active"))
# Where `status` and `usage` look by default: where `run` listens by default.
_LOCAL_URL = f"http://127.0.0.1:{_DEFAULTS.port}"


def _option(name: str, help: str, default: Any = None, **extra: Any) -> Any:
    """A flag whose default comes from Settings and which the environment may set."""
    field = name.split("/")[0].lstrip("-").replace("-", "_")
    if default is None:
        default = getattr(_DEFAULTS, field)
    return typer.Option(default, name, envvar=f"COORDINATOR_{field.upper()}", help=help, **extra)


def _key_options(kind: str, key_help: str, file_help: str) -> tuple[Any, Any]:
    """--{kind}-key and --{kind}-key-file: `run` checks such keys, `status` sends one."""
    env = f"COORDINATOR_{kind.upper()}_KEY"
    key = typer.Option(
        None,
        f"--{kind}-key",
        envvar=env,
        show_envvar=False,  # --help must not print a key that is set in the environment
        help=f"{key_help} Visible in `ps` to every local user: prefer --{kind}-key-file or {env}.",
    )
    return key, typer.Option(None, f"--{kind}-key-file", envvar=f"{env}_FILE", help=file_help)


_RUN_KEY, _RUN_KEY_FILE = _key_options(
    "api",
    "Key(s) that /v1 requires (and /admin, unless admin keys are set), comma-separated. Default: open.",
    "File with one accepted key per line (env COORDINATOR_API_KEY_FILE).",
)
_RUN_ADMIN_KEY, _RUN_ADMIN_KEY_FILE = _key_options(
    "admin",
    "Key(s) that /admin requires, comma-separated; client keys then reach /v1 only. Default: the API keys.",
    "File with one admin key per line (env COORDINATOR_ADMIN_KEY_FILE).",
)
_STATUS_KEY, _STATUS_KEY_FILE = _key_options(
    "api", "The coordinator's API key (the first, if comma-separated).", "File of keys; the first is used."
)
_STATUS_ADMIN_KEY, _STATUS_ADMIN_KEY_FILE = _key_options(
    "admin",
    "The coordinator's admin key, for /admin/children (default: the API key).",
    "File of admin keys; the first is used.",
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"coordinator: {message}", err=True)
    return typer.Exit(code)


@app.callback()
def _root() -> None:
    """Turn a folder of logged-in browser profiles into one OpenAI-compatible endpoint."""


@app.command()
def run(
    ctx: typer.Context,
    profiles: Path = _option("--profiles", "Folder of profile files (Playwright storage state, *.json)."),
    demo: bool = _option(
        "--demo",
        "Run against a local replica of the site with demo profiles: no account needed.",
        default=False,
    ),
    host: str = _option("--host", "Address the API listens on."),
    port: int = _option("--port", "Port the API listens on."),
    base_api_port: int = _option("--base-api-port", "API port of the first child; child i adds i*step."),
    base_stream_port: int = _option("--base-stream-port", "Stream-proxy port of the first child."),
    base_browser_port: int = _option("--base-browser-port", "Browser remote port of the first child."),
    port_step: int = _option("--port-step", "Distance between the ports of consecutive children."),
    engine: Engine = _option("--engine", "Browser engine of the children."),
    log_dir: Path = _option("--log-dir", "Folder for each child's rotating log and working directory."),
    headless: bool = _option("--headless/--no-headless", "Run the browsers without a window."),
    browser_path: Path | None = _option(
        "--browser-path", "The browser executable (default: found by engine)."
    ),
    site_url: str | None = _option("--site-url", "The site's origin, e.g. a replica's (default: AI Studio)."),
    site_config: Path | None = _option(
        "--site-config", "TOML or JSON file that overrides the site's selectors."
    ),
    ca_file: Path | None = _option(
        "--ca-file",
        "The capture's CA (mode 600, made once if missing; default ~/.local/share/coordinator).",
    ),
    api_key: str | None = _RUN_KEY,
    api_key_file: Path | None = _RUN_KEY_FILE,
    admin_key: str | None = _RUN_ADMIN_KEY,
    admin_key_file: Path | None = _RUN_ADMIN_KEY_FILE,
    cors_origins: str | None = typer.Option(
        None,
        "--cors-origins",
        envvar="COORDINATOR_CORS_ORIGINS",
        help="Origins of browser pages that may call the API, comma-separated, or '*'. Default: none.",
    ),
    max_queue: int = _option("--max-queue", "Requests that may wait for a free child; beyond it: 429."),
    queue_timeout: float = _option("--queue-timeout", "Seconds a request may wait for a child; then: 503."),
    max_passed_over: float = _option(
        "--max-passed-over",
        "Seconds a waiting request may be passed over by higher X-Priority lanes; then it is served first.",
    ),
    key_priorities: str | None = typer.Option(
        None,
        "--key-priority",
        envvar="COORDINATOR_KEY_PRIORITY",
        help="Default X-Priority per key, by its log label: client-0=low,client-1=high. Default: normal.",
    ),
    max_attempts: int = _option("--max-attempts", "Children tried for one request before its first byte."),
    first_byte_timeout: float = _option(
        "--first-byte-timeout", "Seconds a child may take to start answering."
    ),
    idle_timeout: float = _option("--idle-timeout", "Seconds a stream may go without data."),
    max_body_bytes: int = _option("--max-body-bytes", "Largest request body accepted; beyond it: 413."),
    fetch_image_urls: bool = _option(
        "--fetch-image-urls/--no-fetch-image-urls",
        "Fetch http(s) image URLs (public addresses only, 20 MiB, images only) and attach them.",
    ),
    fetch_image_timeout: float = _option(
        "--fetch-image-timeout", "Seconds a web image may take to fetch, redirects included."
    ),
    max_connections: int = _option(
        "--max-connections", "Open client connections; beyond it the longest idle closes, or 503."
    ),
    max_headers: int = _option("--max-headers", "Headers a request may have; beyond it: 431."),
    max_header_bytes: int = _option(
        "--max-header-bytes", "Bytes of a request's line and headers, as sent; beyond it: 431."
    ),
    header_timeout: float = _option("--header-timeout", "Seconds a request's head may take; then: 408."),
    body_timeout: float = _option("--body-timeout", "Seconds a request's body may take; then: 408."),
    send_timeout: float = _option(
        "--send-timeout", "Seconds a client may read nothing of its answer; then it is cancelled."
    ),
    keep_alive_timeout: float = _option(
        "--keep-alive-timeout", "Seconds an idle client connection stays open."
    ),
    eject_after: int = _option("--eject-after", "Failures in a row that cool a child down."),
    eject_cooldown: float = _option("--eject-cooldown", "Seconds of the first cooldown; doubles each time."),
    eject_cooldown_max: float = _option("--eject-cooldown-max", "Longest cooldown, in seconds."),
    start_timeout: float = _option("--start-timeout", "Seconds a child may take to become ready."),
    health_interval: float = _option("--health-interval", "Seconds between health checks of a child."),
    health_timeout: float = _option("--health-timeout", "Seconds a health check may take."),
    health_failures: int = _option(
        "--health-failures", "Failed health checks in a row that restart a child."
    ),
    restart_backoff: float = _option(
        "--restart-backoff", "Seconds before the first restart; doubles each time."
    ),
    restart_backoff_max: float = _option("--restart-backoff-max", "Longest wait before a restart."),
    max_start_failures: int = _option(
        "--max-start-failures", "Failed starts in a row before giving up (fatal)."
    ),
    healthy_run: float = _option("--healthy-run", "Seconds of service after which restart backoff resets."),
    profiles_poll: float = _option(
        "--profiles-poll", "Seconds between scans of the profiles folder for changes (SIGHUP: at once)."
    ),
    write_back_interval: float = _option(
        "--write-back-interval",
        "Seconds between writes of a child's refreshed cookies to its profile file (0: not on a timer).",
    ),
    write_back_requests: int = _option(
        "--write-back-requests",
        "Requests a child serves between writes of its refreshed cookies (0: not by count).",
    ),
    permission_cooldown: float = _option(
        "--permission-cooldown",
        "Seconds a child the site refused (permission denied) is out; doubles with each in a row.",
    ),
    max_browsers: int = _option(
        "--max-browsers",
        "At most this many children run at once (0: all); the other valid profiles wait as spares.",
        min=0,
    ),
    spare_after: float = _option(
        "--spare-after",
        "A spare takes the place of a child out of quota or rate-limited for longer than these seconds.",
        min=0,
    ),
    shard: str | None = typer.Option(
        None,
        "--shard",
        envvar="COORDINATOR_SHARD",
        help="I/N: run only the profiles that hash to shard I of N (numbered from 0); every host "
        "shares one profiles folder.",
    ),
    shard_from_hostname: int | None = typer.Option(
        None,
        "--shard-from-hostname",
        envvar="COORDINATOR_SHARD_FROM_HOSTNAME",
        help="N: shard I of N, I from a hostname that ends in -I (a StatefulSet's pod NAME-I).",
        min=1,
    ),
    ledger: bool = _option("--ledger/--no-ledger", "Record every request in the usage ledger."),
    data_dir: Path = _option("--data-dir", "Folder of the run's data: the usage ledger (ledger.sqlite3)."),
    ledger_days: float = _option("--ledger-days", "Days of requests the usage ledger keeps (0: all)."),
    daily_limits: str | None = typer.Option(
        None,
        "--daily-limit",
        envvar="COORDINATOR_DAILY_LIMIT",
        help="Requests a day per account and model, over the built-in estimates: gemini-2.5-pro=100,mock=10.",
    ),
    grace_period: float = _option("--grace-period", "Seconds in-flight requests get on shutdown."),
    drain_delay: float = _option(
        "--drain-delay",
        "Seconds the port stays open after SIGTERM, answering 503, even with nothing in flight "
        "(within --grace-period): a load balancer's health checks see the host leave first.",
        min=0,
    ),
    stop_timeout: float = _option("--stop-timeout", "Seconds a child gets after SIGTERM before SIGKILL."),
    log_level: str = _option("--log-level", "debug, info, warning or error.", default="info"),
    log_format: str = _option(
        "--log-format", "auto (console on a terminal), json or console.", default="auto"
    ),
) -> None:
    """Start one child per profile and serve the OpenAI-compatible API."""
    logs.configure(log_level, json=None if log_format == "auto" else log_format == "json")
    try:
        api_keys = read_api_keys(api_key, api_key_file)
        admin_keys = read_api_keys(admin_key, admin_key_file, kind="admin")
        origins = parse_origins(cors_origins)
        priorities = parse_key_priorities(key_priorities, KeyRing(api_keys, admin_keys).labels)
        this_shard = _shard(shard, shard_from_hostname)
        limits = parse_limits(daily_limits)
    except (KeyFileError, ValueError) as exc:
        raise _fail(str(exc)) from None
    _warn_keys_on_command_line(ctx)
    # Every other option is named after its Settings field.
    settings = _settings(
        ctx.params,
        api_keys=api_keys,
        admin_keys=admin_keys,
        cors_origins=origins,
        key_priorities=priorities,
        shard_index=this_shard.index,
        shard_count=this_shard.count,
        daily_limits=limits,
    )
    if not demo:
        raise typer.Exit(_run(settings, {}))
    from coordinator.cli import demo as demo_site  # only --demo needs it (and httpx)

    with tempfile.TemporaryDirectory(prefix="coordinator-demo-") as folder:
        settings = replace(settings, profiles=Path(folder))
        if settings.engine is Engine.MOCK:
            demo_site.write_profiles(Path(folder))
            raise typer.Exit(_run(settings, dict(demo_site.MOCK_ENV)))
        sessions = demo_site.write_profiles(Path(folder))
        try:
            with demo_site.replica(list(sessions.values()), settings.log_dir / "replica.log") as site:
                log.info("demo_site", url=site.url, profiles=list(sessions))
                engine = Engine.CHROMIUM if settings.engine is Engine.AUTO else settings.engine
                demo_settings = replace(
                    settings, site_url=site.url, site_config=site.site_config, engine=engine
                )
                code = _run(demo_settings, {})
        except demo_site.DemoError as exc:
            raise _fail(str(exc)) from None
        raise typer.Exit(code)


@app.command()
def login(
    name: str = typer.Argument(..., help="The profile's name: the file becomes SAVED_DIR/NAME.json."),
    site_url: str | None = _option("--site-url", "The site's origin (default: AI Studio)."),
    site_config: Path | None = _option(
        "--site-config", "TOML or JSON file that overrides the site's selectors."
    ),
    browser_path: Path | None = _option("--browser-path", "The browser executable (default: found)."),
    headless: bool = typer.Option(False, "--headless/--no-headless", help="No window (for tests)."),
    saved_dir: Path = typer.Option(
        Path("auth_profiles/saved"), "--saved-dir", help="Where the profile goes."
    ),
    browser_port: int | None = typer.Option(
        None,
        "--browser-port",
        "--port",
        help="The browser's remote port on 127.0.0.1 (default: 9221; with --remote a free one).",
    ),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds to wait for the sign-in."),
    remote: bool = typer.Option(
        False, "--remote", help="No display: a headless browser to sign in through an SSH tunnel."
    ),
    import_file: Path | None = typer.Option(
        None, "--import", help="Make the profile from a cookies.txt or a cookie extension's JSON export."
    ),
) -> None:
    """Open a browser on the site's sign-in page and save the session as a profile; or, with
    --import, make the profile from a browser's exported cookies."""
    if problem := name_problem(name):
        raise _fail(f"cannot use {name!r} as a profile name: {problem}")
    if import_file is not None:
        from coordinator.cli import login_import  # only --import reads cookie files

        if remote:
            raise _fail("--import and --remote are two ways to log in: give one")
        try:
            imported = login_import.import_cookies(import_file, saved_dir / f"{name}.json")
        except login_import.CookieFileError as exc:
            raise _fail(str(exc), code=1) from None
        typer.echo(login_import.summary(imported))
        return
    port = browser_port if browser_port is not None else 0 if remote else 9221
    argv = [
        sys.executable, "-m", "child.login", "--output", str(saved_dir / f"{name}.json"),
        "--browser-port", str(port), "--timeout", str(timeout),
        "--remote" if remote else "--headless" if headless else "--no-headless",
    ]  # fmt: skip
    for flag, value in (
        ("--site-url", site_url),
        ("--site-config", site_config),
        ("--browser-path", browser_path),
    ):
        if value:
            argv += [flag, str(value)]
    # The browser lives in the child package: the coordinator holds no browser code.
    raise typer.Exit(subprocess.run(argv).returncode)


@app.command("check-site")
def check_site(
    profile: Path = typer.Option(..., "--profile", help="The profile file (storage state) to log in with."),
    site_url: str | None = _option("--site-url", "The site's origin, e.g. a replica's (default: AI Studio)."),
    site_config: Path | None = _option(
        "--site-config", "TOML or JSON file that overrides the site's selectors."
    ),
    engine: Engine = typer.Option(Engine.AUTO, "--engine", help="The browser to check with."),
    browser_path: Path | None = _option("--browser-path", "The browser executable (default: found)."),
    headless: bool = typer.Option(True, "--headless/--no-headless", help="Run the browser without a window."),
    prompt: str | None = typer.Option(None, "--prompt", help="The prompt to send (default: a short one)."),
    model: str | None = typer.Option(None, "--model", help="The model to ask (default: the page's own)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ca_file: Path | None = _option("--ca-file", "The capture's CA (default: the one `run` uses)."),
) -> None:
    """Run one whole request against the site and print what matched, each step's time and
    what the capture saw; exit 1 if a step failed. Run it after the page changed, before and
    after a --site-config fix."""
    if engine is Engine.MOCK:
        raise _fail("check-site drives a real browser: use --engine chromium, camoufox or auto")
    argv = site_check.argv(
        profile,
        site_url=site_url,
        site_config=site_config,
        engine=engine.value,
        browser_path=browser_path,
        headless=headless,
        prompt=prompt,
        model=model,
        as_json=as_json,
        ca_file=ca_file,
    )
    # The browser lives in the child package: the coordinator holds no browser code.
    raise typer.Exit(subprocess.run(argv).returncode)


@app.command("status")
def show_status(
    url: list[str] = typer.Option(
        [_LOCAL_URL],
        "--url",
        envvar="COORDINATOR_URL",
        help="A coordinator's address; repeat it (or separate with commas) for one table of several.",
    ),
    api_key: str | None = _STATUS_KEY,
    api_key_file: Path | None = _STATUS_KEY_FILE,
    admin_key: str | None = _STATUS_ADMIN_KEY,
    admin_key_file: Path | None = _STATUS_ADMIN_KEY_FILE,
    as_json: bool = typer.Option(False, "--json", help="Print /admin/children and the summary as JSON."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for the coordinator."),
) -> None:
    """Show running coordinators' children: state, pid, ports, request, served, errors.

    Several --url make one table with a HOST column; exit 1 if one of them did not answer."""
    # Here, not at the top, as in `usage`: httpx, which only these two commands need.
    from coordinator.cli import status

    try:
        key = status.first_key(admin_key, admin_key_file) or status.first_key(api_key, api_key_file)
        fleet = status.fetch_all(status.split_urls(url), key, timeout=timeout)
    except status.StatusError as exc:
        raise _fail(exc.message, code=1) from None
    typer.echo(status.fleet_json(fleet) if as_json else status.render_fleet(fleet))
    if fleet.failures:
        raise typer.Exit(1)


@app.command("usage")
def show_usage(
    group_by: str = typer.Option("profile", "--group-by", help="profile, model, day, key, or profile,day."),
    since: str | None = typer.Option(
        None, "--from", help="From (inclusive): unix seconds or an ISO date or time (UTC)."
    ),
    until: str | None = typer.Option(
        None, "--to", help="To (exclusive): unix seconds or an ISO date or time."
    ),
    url: str = _option("--url", "The coordinator's address.", default=_LOCAL_URL),
    api_key: str | None = _STATUS_KEY,
    api_key_file: Path | None = _STATUS_KEY_FILE,
    admin_key: str | None = _STATUS_ADMIN_KEY,
    admin_key_file: Path | None = _STATUS_ADMIN_KEY_FILE,
    as_json: bool = typer.Option(False, "--json", help="Print the report as /admin/usage answers it."),
    quota: bool = typer.Option(
        False, "--quota", help="The quota view instead: today's use per profile and model (Pacific day)."
    ),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for the coordinator."),
) -> None:
    """Show a running coordinator's usage ledger: requests, errors, tokens and TTFT per group."""
    from coordinator.cli import status
    from coordinator.cli import usage as usage_report

    params = {"group_by": group_by, **({"from": since} if since else {}), **({"to": until} if until else {})}
    try:
        key = status.first_key(admin_key, admin_key_file) or status.first_key(api_key, api_key_file)
        if quota:
            view = usage_report.fetch(url, key, {}, timeout=timeout, path="/admin/usage/quota", listed="rows")
            typer.echo(usage_report.to_json(view) if as_json else usage_report.render_quota(view))
            return
        found = usage_report.fetch(url, key, params, timeout=timeout)
    except status.StatusError as exc:
        raise _fail(exc.message, code=1) from None
    typer.echo(usage_report.to_json(found) if as_json else usage_report.render(found))


@app.command("profiles")
def list_profiles(
    folder: Path = typer.Argument(
        Path("auth_profiles"), metavar="DIR", help="Folder with active/ and saved/, or with profile files."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List the profiles in DIR/active and DIR/saved: valid or why not, cookies, earliest expiry."""
    try:
        entries = inventory.scan(folder)
    except FileNotFoundError:
        raise _fail(f"the folder {folder} does not exist") from None
    typer.echo(inventory.to_json(entries) if as_json else inventory.render(entries, folder))


def _settings(options: dict[str, Any], **given: Any) -> Settings:
    """Settings from the parsed options that bear a field's name, and `given` values, which win."""
    names = {field.name for field in fields(Settings)}
    return Settings(**{**{name: value for name, value in options.items() if name in names}, **given})


def _shard(given: str | None, count_from_hostname: int | None) -> shards.Shard:
    """This run's shard: from --shard I/N, from the hostname's ordinal, or 0/1 (every profile)."""
    if given is not None and count_from_hostname is not None:
        raise ValueError("--shard and --shard-from-hostname both say which shard this is: give one")
    if given is not None:
        return shards.parse(given)
    if count_from_hostname is not None:
        return shards.from_hostname(socket.gethostname(), count_from_hostname)
    return shards.Shard(0, 1)


def _warn_keys_on_command_line(ctx: typer.Context) -> None:
    """A key in argv is in /proc/PID/cmdline, which `ps` shows every local user; never log the key."""
    for name in ("api_key", "admin_key"):
        # By name: typer ships its own copy of click, whose enum is not click's.
        source = getattr(ctx.get_parameter_source(name), "name", None)
        if ctx.params.get(name) and source == "COMMANDLINE":
            flag = f"--{name.replace('_', '-')}"
            env = f"COORDINATOR_{name.upper()}"
            log.warning(
                "api_key_on_command_line",
                flag=flag,
                hint=f"every local user can read {flag} with `ps`; use {flag}-file or {env}",
            )


def _run(settings: Settings, child_env: dict[str, str]) -> int:
    # Here, not at the top: the server's imports (HTTP, metrics, the lifecycle, the API's
    # dialects) are most of this command line's start-up time, and only `run` needs them.
    from coordinator import runtime as server

    shard = shards.Shard(settings.shard_index, settings.shard_count)
    sharded = shard.count > 1
    try:
        found = discover(settings.profiles, shard if sharded else None)
    except FileNotFoundError:
        raise _fail(
            f"the profiles folder {settings.profiles} does not exist; create it and put profile files in it "
            "(see auth_profiles/README.md), or try `coordinator run --demo`"
        ) from None
    for rejected in found.rejected:
        log.warning("profile_rejected", path=str(rejected.path), reason=rejected.reason)
    if sharded:
        log.info("shard", shard=str(shard), profiles=len(found.profiles), skipped=len(found.skipped))
    if not found.profiles and sharded:
        # Other shards may run them all: wait for a file of this shard rather than fail
        # (an orchestrator would restart the pod over and over).
        log.warning(
            "shard_empty",
            shard=str(shard),
            skipped=len(found.skipped),
            effect="no child until a profile of this shard is added to the folder",
        )
    elif not found.profiles:
        skipped = f" ({len(found.rejected)} file(s) rejected, see above)" if found.rejected else ""
        raise _fail(
            f"no valid profile in {settings.profiles}{skipped}. Put Playwright storage-state files (*.json) "
            "there (see auth_profiles/README.md), or try `coordinator run --demo`"
        )
    try:
        plan = server.plan(settings, found.profiles)
    except server.StartupError as exc:
        raise _fail(str(exc)) from None
    log.info("starting", profiles=[p.name for p in found.profiles], engine=settings.engine.value)
    return server.run(settings, plan, child_env)


def main() -> None:
    app()
