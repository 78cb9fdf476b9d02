"""Production KPIs and part genealogy over the sockets: the `kpi` topic, get_kpis, get_genealogy."""

from __future__ import annotations

import time

import pytest

from twin.client import Client, TwinError
from twin.protocol.messages import GetGenealogy


@pytest.fixture(scope="module")
def fast_server(serve_module):
    with serve_module("configs/default_line.toml", "--mode", "fast") as server:
        yield server


def test_kpis_are_live_on_telemetry(fast_server):
    with Client(fast_server.control, fast_server.telemetry, timeout=10) as client:
        client.subscribe(["kpi"])
        topic, first = client.recv_telemetry(timeout=20)
        assert topic == "kpi"
        topic, second = client.recv_telemetry(timeout=20)
        assert second.time == pytest.approx(first.time + 1.0)  # once per simulated second
        k = second.kpis
        assert {
            "throughput_per_hour",
            "wip",
            "wip_mean",
            "lead_time_s",
            "oee",
            "stations",
            "robots",
            "alarms",
            "bottleneck",
        } <= set(k)
        assert set(k["stations"]["mill"]["utilisation"]) == {
            "execute",
            "starved",
            "blocked",
            "idle",
            "held",
            "down",
            "stopped",
        }


def test_get_kpis_and_genealogy_after_the_first_part(fast_server):
    with Client(fast_server.control, timeout=10) as client:
        deadline = time.monotonic() + 120
        while client.get_state().counts["parts_completed"] < 1:
            assert time.monotonic() < deadline, "no part completed in fast mode within 120 s"
            time.sleep(0.5)
        kpis = client.get_kpis()
        assert kpis["parts_completed"] >= 1
        bottleneck = kpis["bottleneck"]
        assert (bottleneck["resource"], bottleneck["kind"]) in (
            ("mill", "station"),
            ("robot", "robot"),
        )
        assert kpis["robots"]["robot"]["busy"] > 0
        (record,) = client.genealogy(part=1)
        assert record["id"] == 1 and record["completed"] is not None
        assert record["visits"][0]["station"] == "mill" and record["visits"][0]["processed"]
        assert any(p["id"] == 1 for p in client.genealogy())
        with pytest.raises(TwinError) as err:
            client.genealogy(part=999_999)
        assert err.value.code == "unknown_part"
        assert kpis["factory"] is None  # a line, not a factory
        assert client.orders() == []
        with pytest.raises(TwinError) as err:
            client.orders("o1")
        assert err.value.code == "unknown_order" and "o1" in str(err.value)
        with pytest.raises(TwinError) as err:
            client.request(GetGenealogy(part=1, order="o1"))
        assert err.value.code == "bad_request"
