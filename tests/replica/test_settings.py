"""The replica's thinking levels and grounding tools on the wire and in its model: the
request's `[3][9]` and `[7]`, what the endpoint refuses, how much the model thinks by
level, and the grounded answer's sources on its last frame (candidate `[8]`, `[12]`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from child.replica import ReplicaConfig
from child.replica.answer import reply_for, thoughts_for
from child.replica.grounding import ground
from child.replica.wire import WireError, encode_request, parse_request
from tests.support.replica import PageClient, ThreadedReplica


def test_the_level_and_tools_round_trip_through_the_wire(page_client: PageClient) -> None:
    request = page_client.request(thinking_level=2, search=True, url_context=False)
    data = json.loads(encode_request(request))
    assert data[3][9] == 2 and data[7] == [1, None]
    assert parse_request(encode_request(request)) == request


@pytest.mark.parametrize(("at", "value"), [((3, 9), "high"), ((7,), [1, 2]), ((7,), "on")])
def test_what_the_page_never_sends_is_refused(
    page_client: PageClient, at: tuple[int, ...], value: Any
) -> None:
    data = json.loads(encode_request(page_client.request(thinking_level=4)))
    target = data
    for index in at[:-1]:
        target = target[index]
    target[at[-1]] = value
    with pytest.raises(WireError):
        parse_request(json.dumps(data).encode())


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("replica-pro", {"thinking_level": 3}),  # pro has Low and High, no Medium
        ("replica-lite", {"thinking_level": 2}),  # lite has no thinking level at all
        ("replica-lite", {"search": True}),
        ("replica-lite", {"url_context": True}),
    ],
)
def test_a_setting_the_model_lacks_is_an_invalid_argument(
    replica: ThreadedReplica, page_client: PageClient, model: str, fields: dict[str, Any]
) -> None:
    response = page_client.post(page_client.request(model=model, **fields))
    assert response.status_code == 400 and json.loads(response.content)[1][0] == 3


def test_levels_by_model_and_their_defaults() -> None:
    config = ReplicaConfig()
    assert config.thinking_levels == {"replica-pro": ("Low", "High"),
                                      "replica-flash": ("Minimal", "Low", "Medium", "High")}  # fmt: skip
    assert (config.default_level("replica-pro"), config.default_level("replica-flash")) == ("High", "Minimal")
    assert config.default_level("replica-lite") is None
    # A model list of one's own takes only the defaults that name its models.
    own = {"models": ("m",), "default_model": "m", "thinking_models": (), "no_sampling_models": ()}
    assert ReplicaConfig(**own).thinking_levels == {}  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lowest first"):
        ReplicaConfig(thinking_levels={"replica-pro": ("High", "Low")})


def test_the_model_thinks_more_at_a_higher_level() -> None:
    lengths = [len(thoughts_for("why", "m", level)) for level in ("Minimal", "Low", "Medium", "High")]
    assert lengths[0] == 0 and lengths == sorted(lengths) and len(set(lengths)) == 4
    assert thoughts_for("why", "m") == thoughts_for("why", "m", "High")


def test_the_system_instruction_shows_in_the_answer() -> None:
    reply = reply_for("hi", "m", system="Talk like a pirate\n\nand be brief")
    assert "".join(reply.answer) == "Replica m answers: hi (system instruction: and be brief)"


def test_search_and_url_context_ground_the_answer() -> None:
    text, grounding = ground(
        "Base.", "moon tides", "see https://a.test/x, then", search=True, url_context=True
    )
    assert grounding is not None
    assert [source.url for source in grounding.sources] == [
        "https://search.replica.test/q/moon-tides",
        "https://wiki.replica.test/wiki/moon-tides",
        "https://a.test/x",
    ]
    assert [text[s.start : s.end] for s in grounding.supports] == [
        "Replica Search has two pages about moon tides.",
        "The page https://a.test/x says hello from a.test.",
    ]
    assert grounding.urls_read == ("https://a.test/x",)
    # Cut short by a token limit: the sentences that did not make it lose their support.
    reply = reply_for("moon tides", "m", search=True, max_tokens=6)
    assert reply.grounding is not None and reply.grounding.supports == ()


def test_the_grounding_rides_on_the_last_frame(replica: ThreadedReplica, page_client: PageClient) -> None:
    response = page_client.post(page_client.request("é tides", url_context=False, search=True))
    frames = json.loads(response.content)[0]
    assert all(len(f[0][0]) <= 2 for f in frames[:-1])
    candidate = frames[-1][0][0]
    chunks, supports, queries = candidate[8]
    assert queries == ["é tides"] and len(chunks) == 2 and len(candidate) == 9
    text = "".join(f[0][0][0][0][0][1] for f in frames).encode()
    [[segment, indices]] = supports
    # Offsets in UTF-8 bytes, as Gemini's.
    assert (
        text[segment[1] : segment[2]].decode() == segment[3] == "Replica Search has two pages about é tides."
    )
    assert indices == [0, 1]
    assert replica.wait_run(0, "completed", reported=False)["sources"] == [
        {"url": chunk[0][0], "title": chunk[0][1]} for chunk in chunks
    ]
