"""A client written only from docs/protocol.md: raw pyzmq and msgspec.msgpack, nothing from
`twin`. If this breaks, either the server or the document is wrong."""

from __future__ import annotations

import time

import msgspec
import pytest
import zmq

pytestmark = pytest.mark.timeout(60)
TIMEOUT_MS = 10_000


class RawClient:
    def __init__(self, control: str, telemetry: str) -> None:
        self.ctx = zmq.Context()
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(control)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.connect(telemetry)
        self.next_id = 0

    def call(self, request: dict) -> dict:
        self.next_id += 1
        request = {**request, "id": self.next_id}
        self.dealer.send(msgspec.msgpack.encode(request))
        while True:
            assert self.dealer.poll(TIMEOUT_MS), f"no reply to {request}"
            reply = msgspec.msgpack.decode(self.dealer.recv())
            if reply["id"] == self.next_id:
                return reply

    def close(self) -> None:
        self.dealer.close(linger=0)
        self.sub.close(linger=0)
        self.ctx.term()


@pytest.fixture
def raw(serve):
    with serve("--mode", "lockstep") as server:
        client = RawClient(server.control, server.telemetry)
        try:
            yield client
        finally:
            client.close()


def test_raw_client_handshakes_describes_steps_and_reads_telemetry(raw):
    hello = raw.call({"type": "hello", "protocol": 2, "client": "raw"})
    assert hello["type"] == "hello" and hello["version"] == 2 and hello["protocol"] == 2
    assert hello["mode"] == "lockstep" and hello["timestep"] > 0

    desc = raw.call({"type": "describe"})
    assert desc["type"] == "describe"
    conveyors = [d for d in desc["devices"] if d["kind"] == "conveyor"]
    assert conveyors and any(c["name"] == "set_speed" for c in conveyors[0]["commands"])
    assert "Step" in desc["schema"]["$defs"]

    # control is needed to step
    refused = raw.call({"type": "step", "n": 10})
    assert refused["type"] == "error" and refused["code"] == "not_controller"
    control = raw.call({"type": "take_control", "watchdog": 30})  # an int where a float goes
    assert control["type"] == "control" and control["watchdog"] == 30.0
    lease = control["lease"]

    raw.sub.setsockopt(zmq.SUBSCRIBE, b"state")
    raw.sub.setsockopt(zmq.SUBSCRIBE, b"event")
    time.sleep(0.3)  # let the subscription reach the publisher (PUB/SUB slow joiner)

    state = raw.call({"type": "step", "n": 200, "lease": lease})
    assert state["type"] == "state" and state["step"] == 200
    assert abs(state["time"] - 200 * hello["timestep"]) < 1e-9
    assert set(state["signals"]) == {d["id"] for d in desc["devices"]}

    topics: dict[bytes, list[dict]] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (b"state" in topics and b"event" in topics):
        if not raw.sub.poll(1000):
            continue
        topic, payload = raw.sub.recv_multipart()
        topics.setdefault(topic, []).append(msgspec.msgpack.decode(payload))
    assert topics.get(b"state") and topics.get(b"event"), topics.keys()
    assert all(s["step"] % 10 == 0 and s["version"] == 2 for s in topics[b"state"])
    assert {e["type"] for e in topics[b"event"]} == {"event"}

    bad = raw.call({"type": "command", "device": "nope", "command": "run", "lease": lease})
    assert bad["type"] == "error" and bad["code"] == "unknown_device" and bad["message"]
