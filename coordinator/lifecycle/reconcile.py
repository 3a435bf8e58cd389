"""The profiles folder → the children: add, retire, restart as the files come and go.

Polled every `--profiles-poll` seconds from the supervisor's tick, or at once on SIGHUP.
A new valid file gets a child on the next free port triple; a removed file's child
drains and leaves the roster once stopped; a changed file's child restarts after its
request, unless the child wrote that version itself (its refreshed cookies, found in its
write-back record: `coordinator.protocol.writeback`); a file that turned invalid
(perhaps half written) leaves its child as it is. A changed settings file (`alice.toml`)
restarts the child when what its process was started with changed (proxy, locale,
timezone), and is applied in place otherwise (models, weight, daily limits);
`enabled = false` retires the child as a removed file does.
The decisions are here; the supervisor's `Hands` spawn, drain and restore.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from coordinator.lifecycle import ports as port_checks
from coordinator.lifecycle.child import Child, ChildSpec
from coordinator.lifecycle.cooldowns import Cooldowns, Reason
from coordinator.lifecycle.ports import PortError, PortTriple
from coordinator.lifecycle.profile_settings import settings_path
from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.shards import Shard
from coordinator.lifecycle.states import ALIVE, ChildState
from coordinator.lifecycle.watch import ProfileVersion, ProfileWatcher, Scan
from coordinator.protocol.writeback import read_record
from coordinator.settings import Settings

log = structlog.get_logger("coordinator.lifecycle.reconcile")

# Triples tried past the highest one in use when the ports of a free one are taken.
SPARE_TRIPLES = 8


class Hands(Protocol):
    """What the reconcile asks of the supervisor."""

    def spawn_soon(self, child: Child, reason: str) -> None: ...

    def drain(self, child: Child, reason: str = ..., *, restart: bool = ...) -> None: ...

    def restore(self, child: Child) -> None: ...


class Reconciler:
    def __init__(
        self, settings: Settings, roster: Roster, cooldowns: Cooldowns, hands: Hands, *, now: float
    ) -> None:
        self.settings = settings
        self.roster = roster
        self.cooldowns = cooldowns
        self.hands = hands
        self.shard = Shard(settings.shard_index, settings.shard_count)
        # Files of other shards are never seen: their children are never enlisted here.
        self.watcher = ProfileWatcher(settings.profiles, self.shard if self.shard.count > 1 else None)
        self.skipped = 0  # the files of other shards at the last scan
        self._versions: dict[str, ProfileVersion] = {}  # the file version each child was given
        self._absent: set[str] = set()  # children whose file is gone: they drain, then leave
        self._add_errors: dict[str, str] = {}
        self._rescan = False
        self._scan_due = now

    def version(self, child_id: str) -> ProfileVersion | None:
        return self._versions.get(child_id)

    def first_scan(self) -> Scan | None:
        """Note the file version of each child the run started with (rejections were reported)."""
        scan = self.watcher.scan(quiet=True)
        if scan is not None:
            self.skipped = scan.skipped
        for name, version in (scan.valid if scan else {}).items():
            if name in self.roster:
                self._versions[name] = version
        return scan

    def rescan(self) -> None:
        self._rescan = True

    def tick(self, now: float) -> None:
        poll = self.settings.profiles_poll
        if self._rescan or (poll > 0 and now >= self._scan_due):
            if self._rescan:
                log.info("profiles_rescan", folder=str(self.settings.profiles), reason="SIGHUP")
            self._rescan = False
            self._scan_due = now + poll
            scan = self.watcher.scan()
            if scan is not None:
                self.reconcile(scan)
        self._drop_retired()

    def reconcile(self, scan: Scan) -> None:
        """Make the children match the valid files: add, retire, restart."""
        self.skipped = scan.skipped
        for child in self.roster:
            name = child.id
            version = scan.valid.get(name)
            if version is None:
                # An invalid version (perhaps half written) leaves the child as it is.
                if name in scan.disabled:
                    self._retire(child, "disabled in its settings file")
                elif name not in scan.rejected:
                    self._retire(child)
                continue
            if name in self._absent:
                self._absent.discard(name)
                log.info("profile_back", child=name, path=str(version.profile.path))
                if child.state in (ChildState.DRAINING, ChildState.STOPPING):
                    child.redirect(restart=True)
                elif child.state is ChildState.STOPPED:
                    self.hands.spawn_soon(child, "profile file is back")
            known = self._versions.get(name)
            self._versions[name] = version
            if known is None:
                continue
            restart = False
            if known.digest != version.digest:
                if version.digest in read_record(child.write_back_record):
                    log.info("profile_written_back", child=child.id, path=str(version.profile.path))
                else:
                    restart = True
            if known.settings_digest != version.settings_digest:
                restart = self._settings_changed(child, version) or restart
            elif restart:
                child.set_profile(version.profile)
            if restart:
                self._file_changed(child, version)
        for name, version in scan.valid.items():
            if name not in self.roster:
                self._add(version)

    def _add(self, version: ProfileVersion) -> None:
        profile = version.profile
        try:
            ports = self._free_triple()
        except PortError as exc:
            if self._add_errors.get(profile.name) != str(exc):
                log.warning(
                    "profile_not_started",
                    child=profile.name,
                    path=str(profile.path),
                    reason=str(exc),
                    effect="tried again at every scan",
                )
            self._add_errors[profile.name] = str(exc)
            return
        self._add_errors.pop(profile.name, None)
        child = self.roster.enlist(ChildSpec(profile, ports))
        self._versions[child.id] = version
        log.info(
            "profile_added",
            child=child.id,
            path=str(profile.path),
            ports={"api": ports.api, "stream": ports.stream, "browser": ports.browser},
        )
        self.hands.restore(child)
        if child.state is ChildState.STOPPED:
            self.hands.spawn_soon(child, "profile file added")

    def _free_triple(self) -> PortTriple:
        """The triple of the smallest child index not in use whose ports are all free."""
        s = self.settings
        used = {(c.spec.ports.api - s.base_api_port) // s.port_step for c in self.roster}
        problem: PortError | None = None
        for index in range(max(used, default=-1) + 1 + SPARE_TRIPLES):
            if index in used:
                continue
            triple = port_checks.allocate(
                index + 1,
                base_api=s.base_api_port,
                base_stream=s.base_stream_port,
                base_browser=s.base_browser_port,
                step=s.port_step,
            )[index]
            if s.port in triple.uses():
                problem = PortError(f"child port {s.port} is the coordinator's --port; move one of them")
                continue
            try:
                port_checks.check_free(triple.uses())
            except PortError as exc:
                problem = exc
                continue
            return triple
        raise problem or PortError("no free port triple")

    def _settings_changed(self, child: Child, version: ProfileVersion) -> bool:
        """Apply new settings to `child`; True if its process must restart to take them."""
        old, new = child.spec.profile.settings, version.profile.settings
        restart = old.browser_settings() != new.browser_settings()
        changed = [key for key, value in new.describe().items() if old.describe()[key] != value]
        child.set_profile(version.profile)
        log.info(
            "profile_settings_changed",
            child=child.id,
            path=str(settings_path(version.profile.path)),
            changed=changed,
            effect="restart after its request" if restart else "applied in place",
        )
        return restart

    def _retire(self, child: Child, why: str = "profile file removed") -> None:
        """The file is gone: drain the child; `_drop_retired` takes it off the roster once stopped."""
        if child.id not in self._absent:
            self._absent.add(child.id)
            log.info("profile_removed", child=child.id, path=str(child.spec.profile.path), reason=why)
        elif (
            child.state in (ChildState.DRAINING, ChildState.STOPPING, ChildState.STOPPED)
            and not child.restart_requested
        ):
            return
        self.hands.drain(child, why)

    def _drop_retired(self) -> None:
        for name in list(self._absent):
            child = self.roster.get(name)
            if child is None:
                self._absent.discard(name)
            elif child.state is ChildState.STOPPED and not child.running:
                self.roster.remove(child)
                self._absent.discard(name)
                self._versions.pop(name, None)
                log.info("child_removed", child=name, reason="its profile file was removed or disabled")

    def _file_changed(self, child: Child, version: ProfileVersion) -> None:
        log.info("profile_changed", child=child.id, path=str(version.profile.path), state=child.state.value)
        child.forgive_failures()
        saved = self.cooldowns.get(child.id)
        if saved is not None and saved.reason is Reason.AUTH_EXPIRED:
            self.cooldowns.clear(child.id)
        state = child.state
        if state in (ChildState.AUTH_EXPIRED, ChildState.FATAL, ChildState.BACKOFF):
            self.hands.spawn_soon(child, "profile file changed")
        elif state in ALIVE and state is not ChildState.DRAINING:
            self.hands.drain(child, "profile file changed; restarting after its request", restart=True)
        # Draining or stopping: a restart, if one is due, reads the new file.
        # Stopped: an operator's drain holds.
