"""Spares with real processes: `--max-browsers 2` over three profiles of mock children.

Two run and one waits as a spare; a rate limit longer than `--spare-after` (MOCK_RATE_LIMIT,
600 s) stops the limited child, which waits as a spare in turn, and the spare takes its place;
a child that comes up logged out (MOCK_LOGGED_OUT) gives its place up at once.
"""

from __future__ import annotations

from tests.support.coordinator import StartCoordinator
from tests.support.processes import wait_for

ASK = {"model": "mock", "messages": [{"role": "user", "content": "hello"}]}


def test_a_spare_takes_the_place_of_a_child_rate_limited_for_long(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(
        ("a", "b", "c"),
        env={"MOCK_RATE_LIMIT": "a"},
        args=["--max-browsers", "2", "--spare-after", "60"],
        wait_ready=False,
    )

    def states() -> dict[str, str]:
        return {name: child["state"] for name, child in run.children().items()}

    wait_for(lambda: states() == {"a": "ready", "b": "ready", "c": "spare"}, 20, "a and b ready, c spare")
    shown = run.status()
    assert "c: spare, --max-browsers 2: every slot is taken" in shown.stdout, shown.stdout
    assert run.child("c")["pid"] is None

    # Round-robin starts at a: rate-limited there for 600 s, the request is served by b.
    response = run.post("/v1/chat/completions", json=ASK)
    assert response.status_code == 200 and response.headers["x-coordinator-child"] == "b"
    wait_for(lambda: states() == {"a": "spare", "b": "ready", "c": "ready"}, 20, "c to take a's place")
    a = run.child("a")
    assert a["pid"] is None and "replaced: in rate_limited cooldown" in a["spare_reason"]
    served = {run.post("/v1/chat/completions", json=ASK).headers["x-coordinator-child"] for _ in range(4)}
    assert served == {"b", "c"}
    shown = run.status()
    assert "a: spare, replaced: in rate_limited cooldown" in shown.stdout, shown.stdout
    assert len([p for p in run.descendants() if "child" in " ".join(p.cmdline())]) == 2


def test_a_spare_takes_the_place_of_a_child_logged_out(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(
        ("a", "b", "c"), env={"MOCK_LOGGED_OUT": "a"}, args=["--max-browsers", "2"], wait_ready=False
    )

    def states() -> dict[str, str]:
        return {name: child["state"] for name, child in run.children().items()}

    # a comes up on the sign-in page: its slot goes to the spare at once, with no cooldown to wait.
    wait_for(lambda: states() == {"a": "auth_expired", "b": "ready", "c": "ready"}, 20, "c in a's place")
    assert run.child("a")["pid"] is None
    served = {run.post("/v1/chat/completions", json=ASK).headers["x-coordinator-child"] for _ in range(4)}
    assert served == {"b", "c"}
    assert len([p for p in run.descendants() if "child" in " ".join(p.cmdline())]) == 2
