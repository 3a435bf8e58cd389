"""What the quota view costs a request: the pool's pick with the quota ranking against
round-robin alone, and the count the edge makes as a request ends; in process, no I/O.

    .venv/bin/python bench/quota.py [--children 3 20 100] [--picks 20000]

Each pick acquires a child for a request and releases it at once, on a pool of N ready
children (no processes) whose counts are spread unevenly, so the ranking looks at every
candidate. Per pick: the median over rounds of the mean time of a round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator.ledger.quota import DailyLimits, QuotaTally
from coordinator.lifecycle.roster import Roster
from coordinator.protocol import logs
from coordinator.serving.pool import Outcome, Pool
from tests.support.lifecycle import enlist_ready


def pool(folder: Path, children: int, tally: QuotaTally | None) -> Pool:
    roster = Roster(folder)
    made = Pool(roster, max_queue=10, queue_timeout=5.0, eject_after=3, eject_cooldown=10.0,
                eject_cooldown_max=60.0, quota=tally)  # fmt: skip
    enlist_ready(roster, folder, children)
    return made


async def picks(made: Pool, count: int) -> float:
    """Seconds per acquire + release."""
    started = time.perf_counter()
    for n in range(count):
        child = await made.acquire(f"r{n}", "mock")
        made.release(child, Outcome.SERVED)
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--children", type=int, nargs="+", default=[3, 20, 100])
    parser.add_argument("--picks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logs.configure("warning")  # the state changes' debug lines would be most of the time
    print("| children | round-robin µs/pick | quota-ranked µs/pick | added µs |")
    print("|---|---|---|---|")
    for children in args.children:
        plain, ranked = [], []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as folder:
                plain.append(asyncio.run(picks(pool(Path(folder), children, None), args.picks)))
            with tempfile.TemporaryDirectory() as folder:
                tally = QuotaTally(DailyLimits({"mock": 1000}))
                now = time.time()
                for index in range(children):
                    for _ in range(index % 7):
                        tally.request(f"c{index}", "mock", now)
                ranked.append(asyncio.run(picks(pool(Path(folder), children, tally), args.picks)))
        a, b = statistics.median(plain) * 1e6, statistics.median(ranked) * 1e6
        print(f"| {children} | {a:.1f} | {b:.1f} | {b - a:.1f} |")
    tally = QuotaTally(DailyLimits({}))
    now = time.time()
    started = time.perf_counter()
    for n in range(args.picks):
        tally.request(f"c{n % 20}", "mock", now)
    each = (time.perf_counter() - started) / args.picks * 1e6
    print(f"\ncount at a request's end (QuotaTally.request): {each:.2f} µs")


if __name__ == "__main__":
    main()
