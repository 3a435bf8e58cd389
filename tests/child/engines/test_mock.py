"""The mock engine's refusals (quota per model, rate limit, permission) and its write-back,
which the end-to-end tests of the coordinator rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from child.engines.base import EngineConfigError, PermissionDenied, Prompt, QuotaExhausted, RateLimited
from child.engines.mock import MockEngine, MockSettings
from child.engines.profile_writer import ProfileWriter
from coordinator.protocol.link import Finish

USER = ({"role": "user", "content": "hi"},)


async def answer(engine: MockEngine, model: str) -> list[object]:
    return [event async for event in engine.generate(Prompt(model=model, messages=USER))]


def test_the_knobs_are_read_per_profile() -> None:
    environ = {
        "MOCK_MODELS": "flash, pro",
        "MOCK_QUOTA_MODELS": "alpha:pro,beta:flash",
        "MOCK_RATE_LIMIT": "beta",
        "MOCK_PERMISSION_DENIED": "gamma",
        "MOCK_REFRESH_COOKIES": "alpha",
    }
    alpha = MockSettings.from_env(environ, "alpha")
    assert (alpha.models, alpha.quota_models) == (("flash", "pro"), frozenset({"pro"}))
    assert alpha.refresh_cookies
    assert not alpha.rate_limited and not alpha.permission_denied
    assert MockSettings.from_env(environ, "beta").rate_limited
    assert MockSettings.from_env(environ, "gamma").permission_denied
    assert MockSettings.from_env({}, "alpha").models == ("mock",)
    with pytest.raises(EngineConfigError, match="profile:model"):
        MockSettings.from_env({"MOCK_QUOTA_MODELS": "pro"}, "alpha")


async def test_a_model_out_of_quota_is_refused_by_name_while_the_others_answer() -> None:
    engine = MockEngine(MockSettings(models=("flash", "pro"), quota_models=frozenset({"pro"})))
    await engine.start()
    with pytest.raises(QuotaExhausted) as caught:
        await answer(engine, "pro")
    assert (caught.value.model, caught.value.param, caught.value.retry_after) == ("pro", "model", 600)
    assert set(engine.status().quota) == {"pro"} and 599 < engine.status().quota["pro"] <= 600
    assert isinstance((await answer(engine, "flash"))[-1], Finish)


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (MockSettings(models=("pro",), quota_models=frozenset({"pro"}), late_refusal=True), QuotaExhausted),
        (MockSettings(rate_limited=True, late_refusal=True), RateLimited),
    ],
    ids=["quota", "rate-limit"],
)
async def test_a_late_refusal_comes_after_the_first_token(
    settings: MockSettings, error: type[Exception]
) -> None:
    engine = MockEngine(settings)
    await engine.start()
    events = []
    with pytest.raises(error):
        async for event in engine.generate(
            Prompt(messages=({"role": "user", "content": "hi there"},), model="pro")
        ):
            events.append(event)
    assert len(events) == 1 and not isinstance(events[0], Finish)
    assert MockSettings.from_env({"MOCK_LATE_REFUSAL": "alpha"}, "alpha").late_refusal


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (MockSettings(rate_limited=True), RateLimited),
        (MockSettings(permission_denied=True), PermissionDenied),
    ],
)
async def test_a_rate_limit_and_a_refusal_are_their_own_errors(
    settings: MockSettings, error: type[Exception]
) -> None:
    engine = MockEngine(settings)
    await engine.start()
    with pytest.raises(error):
        await answer(engine, "mock")


async def test_a_refreshed_session_is_written_back_after_its_requests(tmp_path: Path) -> None:
    path = tmp_path / "alpha.json"
    state = {"cookies": [{"name": "sid", "value": "v1", "domain": "example.com"}], "origins": []}
    path.write_text(json.dumps(state))
    writer = ProfileWriter(path, every_s=0, every_requests=2)
    engine = MockEngine(MockSettings(refresh_cookies=True), writer)
    await engine.start()
    try:
        await answer(engine, "mock")
        assert json.loads(path.read_text()) == state
        await answer(engine, "mock")
        written = json.loads(path.read_text())
        assert written["cookies"][0] == state["cookies"][0]
        assert [c["name"] for c in written["cookies"]] == ["sid", "mock_refreshed"]
    finally:
        await engine.close()


async def test_without_refresh_nothing_changes_so_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "alpha.json"
    path.write_text(json.dumps({"cookies": [{"name": "sid", "value": "v1", "domain": "x"}], "origins": []}))
    before = path.stat().st_mtime_ns
    engine = MockEngine(MockSettings(), ProfileWriter(path, every_s=0, every_requests=1))
    await engine.start()
    await answer(engine, "mock")
    await engine.close()
    assert path.stat().st_mtime_ns == before
