"""CORS: preflights answered without a key for allowed origins only, and the headers of answers."""

from __future__ import annotations

import pytest

from coordinator.serving.cors import EXPOSED_HEADERS, Cors, parse_origins

APP = "https://chat.example.com"
DEV = "http://localhost:3000"


def preflight_headers(origin: str = APP, method: str = "POST", asked: str | None = None) -> dict[str, str]:
    headers = {"origin": origin, "access-control-request-method": method}
    if asked is not None:
        headers["access-control-request-headers"] = asked
    return headers


def as_dict(pairs: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    assert len({name for name, _ in pairs}) == len(pairs), "a header twice"
    return {name.decode(): value.decode() for name, value in pairs}


@pytest.fixture
def cors() -> Cors:
    return Cors(parse_origins(f"{APP}, {DEV}"))


def test_off_by_default_it_answers_nothing_and_adds_nothing() -> None:
    cors = Cors(parse_origins(None))
    assert not cors.enabled
    assert cors.preflight("OPTIONS", preflight_headers()) is None
    assert cors.headers(APP) == ()


def test_a_preflight_from_an_allowed_origin_is_204_with_what_the_browser_checks(cors: Cors) -> None:
    answer = cors.preflight("OPTIONS", preflight_headers(asked="Authorization, Content-Type"))

    assert answer is not None and answer.status == 204 and answer.refusal is None
    headers = as_dict(answer.headers)
    assert headers["access-control-allow-origin"] == APP
    assert "POST" in headers["access-control-allow-methods"].split(", ")
    allowed = headers["access-control-allow-headers"].split(", ")
    # Authorization is never covered by a wildcard: it must be named.
    assert {"authorization", "content-type", "x-api-key", "x-request-id"} <= set(allowed)
    assert int(headers["access-control-max-age"]) > 0
    assert headers["vary"] == "origin"
    assert "access-control-allow-credentials" not in headers


def test_the_headers_the_openai_sdk_asks_for_are_allowed(cors: Cors) -> None:
    asked = "authorization,content-type,x-stainless-os,x-stainless-retry-count,openai-project"
    answer = cors.preflight("OPTIONS", preflight_headers(asked=asked))

    assert answer is not None
    allowed = as_dict(answer.headers)["access-control-allow-headers"].split(", ")
    assert {"x-stainless-os", "x-stainless-retry-count", "openai-project"} <= set(allowed)


@pytest.mark.parametrize(
    "asked", [", ".join(f"x-h{n}" for n in range(100)), "bad header", "x-ok, x\u00e9", "x-" + "a" * 200]
)
def test_unreasonable_requested_headers_are_not_echoed(cors: Cors, asked: str) -> None:
    answer = cors.preflight("OPTIONS", preflight_headers(asked=asked))

    assert answer is not None and answer.status == 204
    assert as_dict(answer.headers)["access-control-allow-headers"] == (
        "authorization, content-type, x-api-key, x-request-id"
    )


@pytest.mark.parametrize("origin", ["https://evil.example", "https://chat.example.com.evil", "null"])
def test_a_preflight_from_another_origin_is_403_without_allow_headers(cors: Cors, origin: str) -> None:
    answer = cors.preflight("OPTIONS", preflight_headers(origin))

    assert answer is not None and answer.status == 403
    assert answer.refusal is not None and "--cors-origins" in answer.refusal
    assert not any(name.startswith(b"access-control-") for name, _ in answer.headers)


def test_a_preflight_for_a_method_the_api_never_takes_is_403(cors: Cors) -> None:
    answer = cors.preflight("OPTIONS", preflight_headers(method="DELETE"))
    assert answer is not None and answer.status == 403


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("POST", preflight_headers()),  # not OPTIONS
        ("OPTIONS", {"origin": APP}),  # no Access-Control-Request-Method: a plain OPTIONS
        ("OPTIONS", {"access-control-request-method": "POST"}),  # no Origin
    ],
)
def test_what_is_no_preflight_takes_its_usual_route(cors: Cors, method: str, headers: dict[str, str]) -> None:
    assert cors.preflight(method, headers) is None


def test_answers_to_an_allowed_origin_expose_our_headers(cors: Cors) -> None:
    headers = as_dict(cors.headers(DEV))

    assert headers["access-control-allow-origin"] == DEV
    assert headers["vary"] == "origin"
    exposed = headers["access-control-expose-headers"].split(", ")
    assert {"x-request-id", "x-coordinator-child", "retry-after"} <= set(exposed)
    assert EXPOSED_HEADERS.decode() == headers["access-control-expose-headers"]


@pytest.mark.parametrize("origin", [None, "", "https://evil.example"])
def test_answers_to_other_origins_get_only_vary(cors: Cors, origin: str | None) -> None:
    assert cors.headers(origin) == ((b"vary", b"origin"),)


def test_any_origin_answers_star_without_vary() -> None:
    cors = Cors(parse_origins("*"))
    answer = cors.preflight("OPTIONS", preflight_headers("https://anyone.example"))

    assert answer is not None and answer.status == 204
    assert as_dict(answer.headers)["access-control-allow-origin"] == "*"
    assert "vary" not in as_dict(answer.headers)
    assert as_dict(cors.headers("https://anyone.example"))["access-control-allow-origin"] == "*"
    assert cors.headers(None) == ()


def test_origins_compare_case_insensitively() -> None:
    cors = Cors(parse_origins("HTTPS://Chat.Example.com/"))
    assert cors.allows(APP) and cors.allows("https://CHAT.example.com")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        (" * ", ("*",)),
        (f"{APP},{APP}/, {DEV}", (APP, DEV)),
        ("http://[::1]:8080", ("http://[::1]:8080",)),
    ],
)
def test_parse_origins(text: str, expected: tuple[str, ...]) -> None:
    assert parse_origins(text) == expected


@pytest.mark.parametrize(
    "text", ["chat.example.com", "https://chat.example.com/app", "ftp://x", f"*, {APP}", "https://a b"]
)
def test_parse_origins_refuses_what_is_no_origin(text: str) -> None:
    with pytest.raises(ValueError, match="--cors-origins"):
        parse_origins(text)
