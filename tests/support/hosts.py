"""Several hosts on this machine, as network namespaces, each with its own coordinator, and
HAProxy in front of them with deploy/haproxy/haproxy.cfg: for tests/deploy/test_hosts.py
and bench/hosts.py.

Each host is a namespace with its loopback up (its children talk to its coordinator over
127.0.0.1, as on a real host) and one end of a veth pair; the other ends join a bridge in
the root namespace, which holds the subnet's first address, so HAProxy (in the root
namespace) reaches every host at its own address on port 2048. Names carry this process's
id and a random part, so runs side by side do not collide; `Hosts.close` kills every
process in each namespace and deletes the namespaces (their veths go with them) and the
bridge, and a new run sweeps the namespaces of runs whose process is gone.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from coordinator.ledger.store import FILE_NAME
from tests.support.coordinator import COORDINATOR, FAST, write_profile
from tests.support.processes import free_port, stop_process_group, wait_for

REPOSITORY = Path(__file__).resolve().parents[2]
HAPROXY_TEMPLATE = REPOSITORY / "deploy" / "haproxy" / "haproxy.cfg"
PORT = 2048  # every host's coordinator listens on the port users run it on
NAMESPACE_PREFIX = "coord-"


def why_no_hosts() -> str | None:
    """Why hosts cannot be made here (a reason to skip), or None when they can."""
    if sys.platform != "linux":
        return "network namespaces are Linux's"
    if os.geteuid() != 0:
        return "making network namespaces (ip netns add) needs root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if haproxy_binary() is None:
        return (
            "haproxy is not installed (Debian: apt-get install haproxy; scripts/setup.sh dev does it as root)"
        )
    probe = f"{NAMESPACE_PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )


def host_profiles_args(i: int, n: int, shared_folder: Path) -> list[str]:
    """What host `i` of `n` (0-based) passes to `coordinator run` to run its share of the
    profiles in `shared_folder`: the folder itself and `--shard i/n`."""
    return ["--profiles", str(shared_folder), "--shard", f"{i}/{n}"]


def write_profiles(folder: Path, count: int, shards: int = 1) -> list[str]:
    """`count` profiles in `folder`, named so that each of `shards` shards gets as many
    (by the coordinator's own rendezvous hashing), sorted."""
    folder.mkdir(parents=True, exist_ok=True)
    names = balanced_names(count, shards)
    for name in names:
        write_profile(folder, name)
    return names


def balanced_names(count: int, shards: int) -> list[str]:
    try:
        owner = importlib.import_module("coordinator.lifecycle.shards").owner
    except (ImportError, AttributeError):  # before the shards: split by hand, evenly
        return [f"profile{k:02d}" for k in range(count)]
    per_shard = -(-count // shards)
    taken: dict[int, list[str]] = {shard: [] for shard in range(shards)}
    k = 0
    while sum(len(names) for names in taken.values()) < count:
        name = f"profile{k:02d}"
        share = taken[owner(name, shards)]
        if len(share) < per_shard:
            share.append(name)
        k += 1
    return sorted(name for names in taken.values() for name in names)


@dataclass
class Host:
    index: int
    namespace: str
    address: str
    root: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def name(self) -> str:
        return f"host{self.index + 1}"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{PORT}"

    @property
    def output_path(self) -> Path:
        return self.root / f"coordinator-{self.starts}.out"

    def children(self) -> dict[str, dict[str, Any]]:
        data = httpx.get(self.url + "/admin/children", timeout=5).json()["data"]
        return {child["id"]: child for child in data}

    def arrivals(self) -> dict[str, float]:
        """When each request its ledger holds arrived (unix seconds), by request id: the
        wall clock as the coordinator began handling it, before it checks for a drain."""
        db = sqlite3.connect(self.root / "data" / FILE_NAME)
        try:
            return dict(db.execute("SELECT request_id, ts FROM requests"))
        finally:
            db.close()

    def events(self, name: str, start: int | None = None) -> list[dict[str, Any]]:
        """The coordinator's JSON log lines of event `name`, of its start number `start`
        (default: the latest)."""
        path = self.root / f"coordinator-{self.starts if start is None else start}.out"
        found = []
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == name:
                    found.append(event)
        return found


@dataclass
class Hosts:
    """`count` hosts on one subnet; `start` runs a coordinator on one of them."""

    work: Path
    count: int
    env: dict[str, str] = field(default_factory=dict)
    hosts: list[Host] = field(default_factory=list)
    bridge: str = ""
    gateway: str = ""

    def create(self) -> None:
        sweep_stale_namespaces()
        tag = secrets.token_hex(2)
        self.bridge = f"cb{tag}{os.getpid() % 0x10000:04x}"
        subnet = free_subnet()
        self.gateway = str(subnet.network_address + 1)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(self.count):
            namespace = f"{NAMESPACE_PREFIX}{os.getpid()}-{tag}-h{i}"
            address = str(subnet.network_address + 11 + i)
            outside, inside = f"cv{tag}{i}", f"ch{tag}{i}"
            _ip("netns", "add", namespace)
            root = self.work / f"host{i + 1}"
            root.mkdir(parents=True, exist_ok=True)
            self.hosts.append(Host(i, namespace, address, root))
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", namespace)
            _ip("link", "set", outside, "master", self.bridge, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", namespace, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", inside)
            _ip("-n", namespace, "link", "set", inside, "up")

    def start(self, i: int, args: list[str], wait_ready: bool = True) -> Host:
        """`coordinator run` in host `i`'s namespace with mock children, on 0.0.0.0:2048."""
        host = self.hosts[i]
        host.starts += 1
        argv = [
            "ip", "netns", "exec", host.namespace, *COORDINATOR, "run",
            "--host", "0.0.0.0",
            "--port", str(PORT),
            "--engine", "mock",
            "--log-dir", str(host.root / "logs"),
            "--data-dir", str(host.root / "data"),
            *FAST,
            *args,
        ]  # fmt: skip
        with host.output_path.open("wb") as output:
            # `ip netns exec` execs the command: the process is the coordinator itself.
            host.process = subprocess.Popen(
                argv,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=REPOSITORY,
                start_new_session=True,
            )
        if wait_ready:
            self.wait_ready(i)
        return host

    def wait_ready(self, i: int, timeout: float = 40) -> None:
        host = self.hosts[i]

        def ready() -> bool:
            if host.process is not None and host.process.poll() is not None:
                raise AssertionError(
                    f"{host.name}'s coordinator exited:\n{host.output_path.read_text()[-3000:]}"
                )
            try:
                children = host.children()
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            return bool(children) and all(c["state"] == "ready" for c in children.values())

        wait_for(ready, timeout, f"{host.name}'s children to be ready", interval=0.2)

    def kill(self, i: int) -> int:
        """The host dies: SIGKILL to every process in its namespace; how many there were.

        All at once, as when a machine goes: every process is stopped first, then the
        coordinator killed before its children, so that it cannot see a child die and
        answer for it, nor take a new request in the moment between two kills."""
        host = self.hosts[i]
        pids = namespace_pids(host.namespace)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        if host.process is not None:
            pids.sort(key=lambda pid: pid != host.process.pid)  # type: ignore[union-attr]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if host.process is not None:
            host.process.wait(10)
        psutil.wait_procs([p for p in map(_process, pids) if p is not None], timeout=10)
        return len(pids)

    def terminate(self, i: int) -> None:
        """SIGTERM to host `i`'s coordinator: it drains, then exits."""
        process = self.hosts[i].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)

    def close(self) -> None:
        for host in self.hosts:
            if host.process is not None:
                stop_process_group(host.process, timeout=5, sig=signal.SIGKILL)
            for pid in namespace_pids(host.namespace):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "delete", host.namespace], capture_output=True)
        if self.bridge:
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)


def namespace_pids(namespace: str) -> list[int]:
    listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return [int(word) for word in listed.stdout.split() if word.isdigit()]


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def sweep_stale_namespaces() -> None:
    """Delete the namespaces left by runs whose process is gone (one killed before its cleanup)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        found = re.fullmatch(rf"{NAMESPACE_PREFIX}(\d+)-\w+", name)
        if found and not psutil.pid_exists(int(found.group(1))):
            for pid in namespace_pids(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.77.0.0/16 that no interface here has an address in."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for _ in range(100):
        subnet = ipaddress.IPv4Network(f"10.77.{secrets.randbelow(256)}.0/24")
        if f" {subnet.network_address}".rsplit(".", 1)[0] + "." not in used:
            return subnet
    raise RuntimeError("no free /24 in 10.77.0.0/16")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def render_haproxy_config(
    template: str, port: int, socket_path: Path, servers: list[tuple[str, str, int]]
) -> str:
    """deploy/haproxy/haproxy.cfg with its `bind`, `stats socket` and `server` lines swapped
    for (name, address:port, children) of each host; every other line kept as it is."""
    lines = []
    pattern = None
    for line in template.splitlines():
        stripped = line.strip()
        if stripped.startswith("bind "):
            lines.append(line.replace(stripped, f"bind 127.0.0.1:{port}"))
        elif stripped.startswith("stats socket "):
            lines.append(re.sub(r"stats socket \S+", f"stats socket {socket_path}", line))
        elif stripped.startswith("server "):
            if pattern is None:
                pattern = line
                for name, address, children in servers:
                    lines.append(
                        re.sub(
                            r"server \S+ \S+ maxconn \d+ weight \d+",
                            f"server {name} {address} maxconn {children} weight {children}",
                            pattern,
                        )
                    )
        else:
            lines.append(line)
    if pattern is None:
        raise ValueError("the template has no `server` line")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Logged:
    """One request as HAProxy logged it."""

    server: str
    status: int
    state: str  # termination state: "----" done, "SH--" the server failed before answering...
    queued_ms: int  # time in HAProxy's queue (Tw)


@dataclass
class HAProxy:
    """HAProxy in the foreground, in the root namespace, on a free local port."""

    work: Path
    servers: list[tuple[str, str, int]]
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.work / "haproxy.sock"

    def start(self) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed")
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.work / "haproxy.cfg"
        config.write_text(
            render_haproxy_config(HAPROXY_TEMPLATE.read_text(), self.port, self.socket_path, self.servers)
        )
        with (self.work / "haproxy.out").open("wb") as output:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def listening() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"haproxy exited:\n{(self.work / 'haproxy.out').read_text()[-3000:]}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening, 10, "haproxy to listen")

    def command(self, line: str) -> str:
        """A command on HAProxy's stats socket, and its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self) -> dict[str, str]:
        """Each server's status as HAProxy sees it (UP, DOWN, MAINT...)."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(text.splitlines())
        return {row["svname"]: row["status"] for row in rows if row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_states(self, wanted: dict[str, str], timeout: float = 20) -> None:
        def reached() -> bool:
            try:
                states = self.server_states()
            except OSError:  # its stats socket not made yet
                return False
            return all(states.get(name, "").startswith(state) for name, state in wanted.items())

        wait_for(reached, timeout, f"haproxy to see {wanted}", interval=0.1)

    def log(self) -> str:
        return (self.work / "haproxy.out").read_text(errors="replace")

    def requests(self) -> dict[str, Logged]:
        """From HAProxy's log (option httplog, X-Request-ID captured): each request's server,
        status, termination state and time in the queue, by request id."""
        found = {}
        pattern = r" \S+/(\S+) -?\d+/(-?\d+)/\S+ (-?\d+) \S+ \S+ \S+ (\S{4}) .*\{(\S+)\}"
        for line in self.log().splitlines():
            match = re.search(pattern, line)
            if match:
                server, queued, status, state, request_id = match.groups()
                found[request_id] = Logged(server, int(status), state, int(queued))
        return found

    def close(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, timeout=5)
