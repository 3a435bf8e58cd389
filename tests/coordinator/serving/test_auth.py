"""Keys: who may reach /v1 and /admin, and whose request is whose, from a request's head alone."""

from __future__ import annotations

import pytest

from coordinator.serving.auth import OPEN, Grant, KeyRing, may_cancel

CLIENT = ("client-key-1", "client-key-2")
ADMIN = ("admin-key-1",)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_no_keys_means_open_to_all() -> None:
    ring = KeyRing()
    for path in ("/v1/chat/completions", "/admin/children"):
        assert ring.check({}, path) == OPEN
    assert OPEN.allowed and OPEN.owner is None


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong"), {"x-api-key": "wrong"}, {"authorization": "Basic Y2xpZW50LWtleS0x"}, bearer("")],
)
@pytest.mark.parametrize("path", ["/v1/models", "/admin/children", "/anything"])
def test_a_missing_or_wrong_key_is_401_with_the_bearer_challenge(headers: dict[str, str], path: str) -> None:
    grant = KeyRing(CLIENT, ADMIN).check(headers, path)

    assert grant.status == 401 and not grant.allowed
    assert grant.code == "invalid_api_key" and "Bearer" in grant.message
    assert grant.headers == ((b"www-authenticate", b"Bearer"),)


def test_client_keys_guard_admin_too_while_no_admin_key_is_set() -> None:
    ring = KeyRing(CLIENT)
    assert ring.check(bearer(CLIENT[1]), "/admin/children") == Grant(0, "client-1")
    assert ring.check({"x-api-key": CLIENT[0]}, "/v1/models") == Grant(0, "client-0")


@pytest.mark.parametrize("path", ["/admin", "/admin/children", "/admin/children/a/drain"])
def test_with_admin_keys_a_client_key_is_403_on_admin(path: str) -> None:
    grant = KeyRing(CLIENT, ADMIN).check(bearer(CLIENT[0]), path)

    assert grant.status == 403 and grant.code == "permission_denied"
    assert "admin key" in grant.message and grant.headers == ()


def test_an_admin_key_reaches_admin_and_v1() -> None:
    ring = KeyRing(CLIENT, ADMIN)
    for path in ("/admin/children", "/v1/chat/completions"):
        assert ring.check(bearer(ADMIN[0]), path) == Grant(0, "admin-0", admin=True)
    # A path that merely starts with the same letters is no admin path.
    assert ring.check(bearer(CLIENT[0]), "/administrator").allowed


def test_a_key_in_both_lists_is_an_admin_key() -> None:
    grant = KeyRing(("shared",), ("shared",)).check(bearer("shared"), "/admin/children")
    assert grant == Grant(0, "admin-0", admin=True)


def test_owner_labels_never_contain_the_key() -> None:
    ring = KeyRing(CLIENT, ADMIN)
    for key in (*CLIENT, *ADMIN):
        owner = ring.check(bearer(key), "/v1/models").owner
        assert owner is not None and key not in owner


def test_bearer_scheme_is_case_insensitive_and_space_trimmed() -> None:
    ring = KeyRing(CLIENT)
    assert ring.check({"authorization": f"bearer  {CLIENT[0]} "}, "/v1/models").allowed


def test_a_non_ascii_key_matches_its_utf8_bytes_on_the_wire() -> None:
    key = "clé-ünïcode"
    # The server decodes header bytes as latin-1; the bytes on the wire are the key's UTF-8.
    on_the_wire = key.encode().decode("latin-1")
    assert KeyRing((key,)).check(bearer(on_the_wire), "/v1/models").allowed


def test_who_may_cancel_what() -> None:
    ring = KeyRing(CLIENT, ADMIN)
    alice, bob, admin = (ring.check(bearer(key), "/v1/cancel/x") for key in (*CLIENT, *ADMIN))
    assert may_cancel(alice, alice.owner)
    assert not may_cancel(bob, alice.owner)
    assert may_cancel(admin, alice.owner) and may_cancel(admin, None)
    # With no keys configured, everyone is nobody: anyone may cancel anything.
    assert may_cancel(OPEN, None)
