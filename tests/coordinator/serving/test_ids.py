"""Request ids: a client's safe id is kept, an unsafe one refused, a generated one unguessable."""

from __future__ import annotations

import re

import pytest

from coordinator.serving.ids import INVALID, MAX_LENGTH, new_request_id, request_id


def test_generated_ids_are_random_not_a_counter() -> None:
    made = [new_request_id() for _ in range(1000)]
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", made_id) for made_id in made)
    # No shared prefix past `req_`: a per-run prefix with a counter would share all but the tail.
    assert len({made_id[4:8] for made_id in made}) > 500


@pytest.mark.parametrize("given", ["", "   "])
def test_no_id_gets_a_new_one(given: str) -> None:
    assert (request_id({"x-request-id": given}) or "").startswith("req_")
    assert (request_id({}) or "").startswith("req_")


@pytest.mark.parametrize("given", ["trace-7", "a", "A.b_c:d-9", "x" * MAX_LENGTH, "01HZX3K6:span.2"])
def test_a_safe_id_is_kept(given: str) -> None:
    assert request_id({"x-request-id": given}) == given


@pytest.mark.parametrize(
    "given",
    ["has space", "a?b=1", "50%25", "a/b", "a#b", "é", "tab\there", "x" * (MAX_LENGTH + 1), 'q"uote', "<i>"],
)
def test_an_unsafe_id_is_refused(given: str) -> None:
    assert request_id({"x-request-id": given}) is None


def test_the_refusal_names_the_header_and_the_allowed_set() -> None:
    assert "X-Request-ID" in INVALID and "A-Z a-z 0-9 - _ . :" in INVALID and str(MAX_LENGTH) in INVALID
