"""Port triples: the layout of DESIGN.md, overlap refused, a taken port named with its holder."""

from __future__ import annotations

import os
import socket

import pytest

from coordinator.lifecycle.ports import PortError, PortTriple, allocate, check_free


def test_triples_follow_the_bases_and_step() -> None:
    triples = allocate(3, base_api=3100, base_stream=3200, base_browser=9222, step=2)
    assert triples == [
        PortTriple(3100, 3200, 9222),
        PortTriple(3102, 3202, 9224),
        PortTriple(3104, 3204, 9226),
    ]


def test_overlapping_ranges_are_refused() -> None:
    with pytest.raises(PortError, match="api and stream port ranges overlap at port 3200"):
        allocate(101, base_api=3100, base_stream=3200, base_browser=9222, step=1)


def test_ports_beyond_65535_are_refused() -> None:
    with pytest.raises(PortError, match="above 65535"):
        allocate(10, base_api=3100, base_stream=3200, base_browser=65530, step=1)


def test_step_must_be_positive() -> None:
    with pytest.raises(PortError, match="--port-step"):
        allocate(2, base_api=3100, base_stream=3200, base_browser=9222, step=0)


def test_taken_port_names_its_use_and_holder() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortError) as caught:
            check_free({port: "child api of profile x"})
    message = str(caught.value)
    assert f"port {port} (child api of profile x) is already in use" in message
    assert f"pid {os.getpid()}" in message
