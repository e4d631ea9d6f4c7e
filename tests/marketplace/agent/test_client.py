"""The HTTP client: typed errors (transient vs permanent), Retry-After, pagination that keeps the token home."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from marketplace.agent.client import CenterClient, PermanentError, TransientError
from tests.marketplace.agent.fake_center import TOKEN, Fault


def _client(fake_center, token=TOKEN, timeout=5.0) -> CenterClient:
    return CenterClient(fake_center.url + "/api/v1/", token, timeout=timeout)


def test_allocations_follow_every_next_link(fake_center, clock):
    ids = {
        fake_center.add_booking(devices=1, start=clock.now - timedelta(hours=1), end=clock.now + timedelta(hours=1))
        for _ in range(5)
    }

    items = _client(fake_center).allocations()

    assert {item["id"] for item in items} == ids
    assert fake_center.count("allocations") == 3  # pages of 2, 2 and 1


def test_next_links_to_another_origin_are_sent_to_our_own_server(fake_center, clock):
    for _ in range(3):
        fake_center.add_booking(devices=1, start=clock.now - timedelta(hours=1), end=clock.now + timedelta(hours=1))
    fake_center.link_base = "http://internal-name.invalid:9"  # never contacted: the token stays with our server

    assert len(_client(fake_center).allocations()) == 3


def test_server_errors_and_throttling_are_transient_with_retry_after(fake_center):
    fake_center.fail("heartbeat", Fault(503, retry_after="7"), Fault(429, retry_after="30"), Fault(500))
    client = _client(fake_center)

    with pytest.raises(TransientError) as unavailable:
        client.heartbeat({"agent": "node3", "devices": []})
    with pytest.raises(TransientError) as throttled:
        client.heartbeat({"agent": "node3", "devices": []})
    with pytest.raises(TransientError) as broken:
        client.heartbeat({"agent": "node3", "devices": []})

    assert (unavailable.value.status, unavailable.value.retry_after) == (503, 7.0)
    assert (throttled.value.status, throttled.value.retry_after) == (429, 30.0)
    assert (broken.value.status, broken.value.retry_after) == (500, None)
    assert unavailable.value.code == "unavailable"
    assert client.heartbeat({"agent": "node3", "devices": []})["agent"] == "node3"


def test_client_errors_are_permanent_with_the_servers_detail_and_code(fake_center):
    with pytest.raises(PermanentError) as unauthorized:
        _client(fake_center, token="wrong").heartbeat({"agent": "node3", "devices": []})
    with pytest.raises(PermanentError) as missing:
        _client(fake_center).report_allocation("0b1d4a36-9f0e-4a55-8b1c-0000000000ff", "provisioned")

    assert (unauthorized.value.status, unauthorized.value.code) == (401, "authentication_failed")
    assert unauthorized.value.detail == "Invalid token."
    assert "401 authentication_failed: Invalid token." in str(unauthorized.value)
    assert (missing.value.status, missing.value.code) == (404, "not_found")


def test_connection_refused_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.

    with pytest.raises(TransientError, match="connection refused"):
        CenterClient(f"http://127.0.0.1:{port}/api/v1/", TOKEN, timeout=2).heartbeat({})


def test_a_server_that_never_answers_is_a_transient_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the connection is accepted by the kernel, the request is never read
        port = silent.getsockname()[1]

        with pytest.raises(TransientError, match="timed out"):
            CenterClient(f"http://127.0.0.1:{port}/api/v1/", TOKEN, timeout=0.5).heartbeat({})
