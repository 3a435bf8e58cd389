"""Every hostile client at once for 30 s, while a well-behaved one keeps being served
(issue 10): no failure, p99 under 50 ms, and the coordinator under 150 MB."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections import Counter

import psutil

from tests.support.coordinator import StartCoordinator

KEY = "mix-suite-key"
SECONDS = 30.0
MB = 1024 * 1024


def test_hostile_clients_together_cost_a_well_behaved_client_nothing(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(
        ("a", "b"),
        env={"COORDINATOR_API_KEY": KEY},
        args=["--max-connections", "300", "--header-timeout", "2", "--send-timeout", "2"],
        api_key=KEY,
    )
    coordinator = psutil.Process(run.process.pid)
    client = run.openai(timeout=10)
    attackers = subprocess.Popen(
        [sys.executable, "-m", "tests.support.hostile", "--port", str(run.port), "--seconds", str(SECONDS),
         "--key", KEY],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    latencies: list[float] = []
    peak_rss = 0
    try:
        time.sleep(1.0)
        end = time.monotonic() + SECONDS - 2.0
        next_sample = 0.0
        while time.monotonic() < end:
            started = time.perf_counter()
            completion = client.chat.completions.create(
                model="mock", messages=[{"role": "user", "content": f"still here {len(latencies)}"}]
            )
            latencies.append(time.perf_counter() - started)
            assert completion.choices[0].message.content == f"echo: still here {len(latencies) - 1}"
            if time.monotonic() >= next_sample:
                peak_rss = max(peak_rss, coordinator.memory_info().rss)
                next_sample = time.monotonic() + 0.25
        output, _ = attackers.communicate(timeout=30)
    finally:
        attackers.kill()
        attackers.wait()
    tally: Counter[str] = Counter(json.loads(output))
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"served {len(latencies)}, p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, peak RSS {peak_rss / MB:.0f} MB, attacks {tally}")  # fmt: skip
    assert p99 < 0.050
    assert peak_rss < 150 * MB
    # Each attack did happen, and met its limit.
    assert tally["slow_head_408"] > 0
    assert tally["idle_closed"] + tally["idle_refused_503"] > 0
    assert tally["big_body_401"] + tally["big_body_reset"] > 0
    assert tally["flood_connections"] > 0 and tally["flood_answers"] <= 17 * tally["flood_connections"]
    assert tally["never_read_sent"] > 0 and run.events("send_timeout")
    run.wait_all_ready(timeout=30)
