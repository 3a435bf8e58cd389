"""Every knob of a coordinator run, as one frozen object.

The CLI builds it (flags > `COORDINATOR_*` environment > defaults, by typer) and the
`run` command passes it down; nothing else reads the environment for settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coordinator.protocol.link import EngineName

# The engine names are part of the child's contract; a run picks one for all its children.
Engine = EngineName


@dataclass(frozen=True, slots=True)
class Settings:
    profiles: Path
    host: str = "0.0.0.0"
    port: int = 2048
    base_api_port: int = 3100
    base_stream_port: int = 3200
    base_browser_port: int = 9222
    port_step: int = 1
    engine: Engine = Engine.AUTO
    log_dir: Path = Path("logs/coordinator")
    headless: bool = True
    browser_path: Path | None = None
    site_url: str | None = None
    site_config: Path | None = None
    # The capture's CA, shared by every child (made by the first); None: default_ca_file().
    ca_file: Path | None = None
    # Keys that /v1 accepts (and /admin too, while no admin key is set); none means open.
    # Kept out of repr, as are the admin keys: never logged.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # Keys that /admin and /v1 accept; with one set, a client key no longer reaches /admin.
    admin_keys: tuple[str, ...] = field(default=(), repr=False)
    # Origins whose browser pages may call the API ("*": any); none means no CORS headers.
    cors_origins: tuple[str, ...] = ()
    # Scheduling.
    max_queue: int = 100
    queue_timeout: float = 120.0
    # Priority lanes (coordinator.serving.lanes): seconds after which a waiting request is
    # no longer passed over by higher lanes, and a default lane per key label ("client-0").
    max_passed_over: float = 30.0
    key_priorities: tuple[tuple[str, str], ...] = ()
    max_attempts: int = 3
    # A browser can think for minutes before its first token, and pause long between tokens.
    first_byte_timeout: float = 300.0
    idle_timeout: float = 120.0
    max_body_bytes: int = 50 * 1024 * 1024
    # Web images (image_url parts with an http(s) URL): fetched before dispatch only when on,
    # from public addresses only, within the attachment size and this many seconds.
    fetch_image_urls: bool = False
    fetch_image_timeout: float = 10.0
    # What one client may cost the public port (coordinator.http_server.Limits).
    max_connections: int = 1000
    max_headers: int = 100
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    send_timeout: float = 30.0
    keep_alive_timeout: float = 30.0
    # Passive ejection: this many failures in a row cool a child down, longer each time.
    eject_after: int = 3
    eject_cooldown: float = 10.0
    eject_cooldown_max: float = 300.0
    # Lifecycle.
    start_timeout: float = 120.0
    health_interval: float = 2.0
    health_timeout: float = 2.0
    health_failures: int = 3
    restart_backoff: float = 1.0
    restart_backoff_max: float = 60.0
    max_start_failures: int = 5
    healthy_run: float = 30.0
    # Seconds between scans of the profiles folder for added, removed and changed files.
    profiles_poll: float = 2.0
    # Children write refreshed cookies back to their profile file this often, in seconds
    # and in requests served (0: not by that measure; both 0: never).
    write_back_interval: float = 1800.0
    write_back_requests: int = 10
    # A child whose request the site refused (permission denied) is out this long, doubled
    # for each refusal in a row, up to PERMISSION_COOLDOWN_MAX.
    permission_cooldown: float = 60.0
    # Spares: at most `max_browsers` children run at once (0: every valid profile runs); the
    # other valid profiles wait as spares and take the place of one that is logged out,
    # fatal, or out (quota, rate limit) for longer than `spare_after` seconds.
    max_browsers: int = 0
    spare_after: float = 600.0
    # Shards (coordinator.lifecycle.shards): this run is shard `shard_index` of `shard_count`
    # and runs only the profiles of the folder that hash to it (1: every profile).
    shard_index: int = 0
    shard_count: int = 1
    # The usage ledger (coordinator.ledger): on or off, its SQLite file's folder, and how
    # many days of rows it keeps (0: all).
    ledger: bool = True
    data_dir: Path = Path("data")
    ledger_days: float = 90.0
    # The quota view (coordinator.ledger.quota): daily request limits per model, over the
    # built-in estimates (--daily-limit model=N,...).
    daily_limits: tuple[tuple[str, int], ...] = ()
    # Shutdown: in-flight work gets `grace_period`; a child gets `stop_timeout` after SIGTERM.
    grace_period: float = 8.0
    # Seconds the port stays open after SIGTERM (answering 503, /ready 503) even once
    # nothing is in flight, so that a load balancer's health checks see the host leave
    # before it stops listening; within `grace_period`.
    drain_delay: float = 0.0
    stop_timeout: float = 5.0
