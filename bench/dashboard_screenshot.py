"""Take docs/dashboard.png: the dashboard in headless Chromium over a coordinator with mock children.

    .venv/bin/python bench/dashboard_screenshot.py [--out docs/dashboard.png]

The scene: five mock profiles, four serving slow answers while two more requests wait in the
high and low lanes, one out of quota for the model `pro`, one drained; the usage ledger
seeded with nine earlier days of made-up requests so that the chart has a history (today's
bar is the real requests of this run). Same setup as tests/e2e/test_dashboard_browser.py.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from playwright.sync_api import sync_playwright

from coordinator.ledger.store import FILE_NAME, Store
from tests.support.coordinator import Coordinator, Runs
from tests.support.dashboard import ADMIN_KEY, open_dashboard
from tests.support.processes import wait_for
from tests.support.replica import CHROMIUM, CHROMIUM_ARGS

PROFILES = ("alice", "bob", "carol", "dave", "erin")
MAX_BYTES = 300 * 1024
LONG = " ".join(["word"] * 40)  # 40 tokens at MOCK_TOKEN_MS each: an answer that takes a while


class _Folders:
    """What `Runs` asks of pytest's tmp_path_factory: a fresh folder under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name, dir=self.root))


def seed_ledger(data: Path, days: int = 9) -> None:
    """Made-up requests on the `days` days before today, a few hundred per profile and day."""
    data.mkdir(parents=True, exist_ok=True)
    store = Store(data / FILE_NAME)
    rows: list[tuple[object, ...]] = []
    today = time.time() // 86400 * 86400
    rng = random.Random(13)
    for back in range(days, 0, -1):
        for weight, profile in enumerate(PROFILES, start=2):
            for n in range(rng.randint(20, 40) * weight // 2):
                at = today - back * 86400 + rng.uniform(0, 86399)
                tokens = (rng.randint(20, 400), rng.randint(50, 900), 0)
                request_id = f"seed-{back}-{profile}-{n}"
                route = "/v1/chat/completions"
                rows.append(
                    (at, request_id, route, profile, "flash", 200, None, 0, *tokens, 400.0, 2500.0, None)
                )
    store.insert(rows)
    store.close()


def ask(run: Coordinator, content: str, model: str = "flash", priority: str = "normal") -> None:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Priority": priority}
    with contextlib.suppress(httpx.HTTPError):  # the slow ones are cut when the run stops
        httpx.post(run.url + "/v1/chat/completions", json=body, headers=headers, timeout=120)


def main(out: Path) -> int:
    if shutil.which(CHROMIUM) is None:
        print(f"{CHROMIUM} is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        seed_ledger(root / "seeded")
        runs = Runs(_Folders(root))  # type: ignore[arg-type]
        env = {
            "COORDINATOR_ADMIN_KEY": ADMIN_KEY,
            "MOCK_MODELS": "flash,pro",
            "MOCK_QUOTA_MODELS": "dave:pro",
            "MOCK_TOKEN_MS": "400",
        }
        try:
            run = runs.start(PROFILES, env=env, args=["--data-dir", str(root / "seeded")], api_key=ADMIN_KEY)
            for _ in range(3):
                ask(run, "hi")  # today's bar

            def dave_cooled() -> bool:
                # Until dave has been asked for `pro` and cooled down for it (the others answer).
                ask(run, "hi", "pro")
                return bool(run.child("dave")["model_cooldowns"])

            wait_for(dave_cooled, 30, "dave's cooldown for pro")
            run.post("/admin/children/erin/drain")
            run.wait_state("erin", "stopped")
            for index, priority in enumerate(("normal", "normal", "high", "normal", "high", "low")):
                threading.Thread(target=ask, args=(run, LONG, "flash", priority), daemon=True).start()
                if index == 3:  # every child busy, then two wait
                    wait_for(
                        lambda: sum(c["state"] == "busy" for c in run.children().values()) == 4, 10, "4 busy"
                    )
            wait_for(lambda: run.get("/health").json()["queue"]["waiting"] == 2, 10, "two waiting")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                watched = open_dashboard(browser, run)
                page = watched.page
                page.locator('#children tr[data-child="alice"] button[data-action="show"]').click()
                page.wait_for_function("() => document.getElementById('shot').naturalWidth > 0")
                page.locator("#usage-days svg rect.bar").first.wait_for()
                page.locator("#usage-profiles svg rect.bar").first.wait_for()
                page.wait_for_timeout(1600)  # one more poll of the children: the table is current
                page.screenshot(path=str(out), full_page=True)
                browser.close()
                problems = watched.console_errors + watched.page_errors + watched.foreign + watched.failed
        finally:
            runs.close()
    size = out.stat().st_size
    print(f"{out}: {size // 1024} KB" + (f"; problems on the page: {problems}" if problems else ""))
    return 0 if size <= MAX_BYTES and not problems else 1


if __name__ == "__main__":
    target = (
        Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else Path("docs/dashboard.png")
    )
    sys.exit(main(target))
