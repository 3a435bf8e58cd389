"""What the site answers a prompt with, read as the coordinator must treat it."""

from __future__ import annotations

from child.engines.base import (
    AuthExpired,
    PermissionDenied,
    QuotaExhausted,
    RateLimited,
    site_refusal,
)


def test_resource_exhausted_is_a_quota_for_the_model_unless_it_says_rate_limit() -> None:
    quota = site_refusal("gemini-pro", "RESOURCE_EXHAUSTED: user has exceeded quota", rpc_code=8)
    assert isinstance(quota, QuotaExhausted) and quota.model == "gemini-pro" and quota.status == 429
    assert isinstance(site_refusal("m", "You've reached your rate limit", http_status=429), RateLimited)


def test_permission_denied_is_its_own_refusal_and_not_a_quota() -> None:
    refused = site_refusal("m", "The caller does not have permission", rpc_code=7)
    assert isinstance(refused, PermissionDenied) and not isinstance(refused, QuotaExhausted)
    assert (refused.status, refused.code) == (403, "permission_denied")
    assert isinstance(site_refusal("m", "", http_status=403), PermissionDenied)


def test_unauthenticated_is_a_logged_out_session_and_anything_else_is_none() -> None:
    assert isinstance(site_refusal("m", "", rpc_code=16), AuthExpired)
    assert site_refusal("m", "INTERNAL", rpc_code=13) is None
    assert site_refusal("m", "", http_status=500) is None
