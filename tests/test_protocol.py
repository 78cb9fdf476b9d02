"""The wire format and the server's small pure parts, without sockets."""

from __future__ import annotations

import math

import msgspec
import pytest

from twin.protocol import messages as m
from twin.protocol.codec import (
    MAX_MESSAGE_BYTES,
    ProtocolError,
    decode_reply,
    decode_request,
    decode_telemetry,
    encode,
)
from twin.server.control_lock import ControlLock, LeaseRefused
from twin.server.endpoints import RemoteBindRefused, check_bind, is_loopback
from twin.server.host import steps_per_state


def _raw(obj) -> bytes:
    return msgspec.msgpack.encode(obj)


def _deep(depth: int) -> msgspec.Raw:
    """`depth` nested one-element arrays: valid MessagePack that nests too deeply to decode."""
    return msgspec.Raw(b"\x91" * depth + b"\xc0")


@pytest.mark.parametrize(
    "request_",
    [
        m.Hello(client="x", id=1),
        m.Describe(),
        m.GetState(id="a"),
        m.Command(device="infeed", command="set_speed", args={"speed": 0.2}),
        m.Step(n=50),
        m.TakeControl(watchdog=1.5),
        m.ReleaseControl(),
        m.Heartbeat(),
        m.Pause(),
        m.Resume(),
        m.Reset(seed=3),
        m.Estop(reason="door"),
        m.EstopReset(lease="0" * 32),
        m.DeclareImage(inputs=["a.b"], outputs=["c.d"]),
        m.ImageCycle(id=3, lease="0" * 32, layout=1, n=1, outputs=[None, [0.2], []]),
    ],
)
def test_every_request_round_trips(request_):
    assert decode_request(encode(request_)) == request_


def test_requests_are_plain_maps_with_a_type_tag():
    assert msgspec.msgpack.decode(encode(m.Step(n=5, id=9))) == {
        "type": "step",
        "n": 5,
        "commands": [],
        "id": 9,
        "lease": None,
    }


def test_an_image_cycle_is_a_plain_array():
    cycle = m.ImageCycle(id=7, lease="ab", layout=2, n=1, outputs=[None, [0.3]])
    assert msgspec.msgpack.decode(encode(cycle)) == ["image", 7, "ab", 2, 1, [None, [0.3]]]
    reply = m.ImageReply(id=7, step=3, time=0.03, inputs=[True, 0.5], refused=[])
    assert encode(reply) == _raw(["image", 7, 3, 0.03, [True, 0.5], []])
    assert decode_reply(encode(reply)) == reply


@pytest.mark.parametrize(
    "payload",
    [
        _raw({"type": "take_control", "watchdog": 2}),  # JavaScript's 2.0
        _raw({"type": "step", "n": 1, "commands": [{"device": "a", "command": "b"}]}),
        _raw(["image", 1, "ab", 1, 0, [[0], [1, 2, 3], None]]),
    ],
)
def test_integers_are_accepted_where_floats_are_expected(payload):
    decode_request(payload)


def test_replies_and_telemetry_round_trip():
    err = m.Error(code="busy", message="no", id=4, step=3, time=0.015)
    assert decode_reply(encode(err)) == err
    ev = m.EventMsg(step=1, time=0.005, kind="eye_blocked", device="eye", data={"part": 1})
    assert decode_telemetry(encode(ev)) == ev


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "malformed"),
        (b"\xc1", "malformed"),
        (_raw("step"), "malformed"),
        (_raw({"n": 1}), "unknown_request"),
        (_raw({"type": "jump"}), "unknown_request"),
        (_raw({"type": [1, 2]}), "unknown_request"),
        (
            _raw({"type": "command", "device": "a", "command": "b", "args": {"x": _deep(100_000)}}),
            "malformed",
        ),
        (_raw({"type": "step", "n": 1.5}), "bad_request"),
        (_raw({"type": "step", "n": 10_001}), "bad_request"),
        (_raw({"type": "take_control", "watchdog": math.inf}), "bad_request"),
        (_raw({"type": "take_control", "watchdog": -1.0}), "bad_request"),
        (_raw({"type": "command", "device": "a", "command": "b", "args": [1]}), "bad_request"),
        (_raw({"type": "heartbeat", "extra": True}), "bad_request"),
        (_raw({"type": "heartbeat", "x": "y" * MAX_MESSAGE_BYTES}), "too_large"),
        (_raw({"type": "heartbeat", "lease": 5}), "bad_request"),
        (_raw(["image", 1, "ab", 1]), "bad_request"),
        (_raw(["image", 1, "ab", 1, -1, []]), "bad_request"),
        (_raw(["image", 1, None, 1, 0, []]), "bad_request"),
        (_raw(["step", 1]), "unknown_request"),
        (_raw([]), "unknown_request"),
        (b"\x93\xa5image", "malformed"),
    ],
)
def test_bad_bytes_raise_protocol_errors_with_a_code(payload, code):
    with pytest.raises(ProtocolError) as err:
        decode_request(payload)
    assert err.value.code == code and err.value.message


@pytest.mark.parametrize(
    "payload",
    [
        _raw({"type": "step", "n": "x", "id": 42}),
        _raw({"type": "fly", "id": 42}),
        _raw({"type": "heartbeat", "id": 42, "x": "y" * MAX_MESSAGE_BYTES}),  # too_large
        _raw({"x": "y" * MAX_MESSAGE_BYTES, "type": "heartbeat", "id": 42}),
        _raw(["image", 42, "ab", 1, "n", []]),
        _raw(["image", 42, "x" * MAX_MESSAGE_BYTES]),
    ],
)
def test_protocol_error_keeps_the_request_id_when_it_can(payload):
    with pytest.raises(ProtocolError) as err:
        decode_request(payload)
    assert err.value.request_id == 42


def test_json_schema_covers_every_message():
    schema = m.json_schema()
    defs = schema["$defs"]
    for cls in (*m.REQUEST_TYPES, m.HelloReply, m.DescribeReply, m.State, m.Ok, m.Error):
        assert cls.__name__ in defs
    assert defs["ImageCycle"]["type"] == "array"
    assert schema["image_cycle"] == {"$ref": "#/$defs/ImageCycle"}
    assert defs["Step"]["properties"]["type"] == {"enum": ["step"]}
    assert len(schema["request"]["anyOf"]) == len(m.REQUEST_TYPES)
    assert set(m.ERROR_CODES) >= {"malformed", "too_large", "not_controller", "wrong_mode"}


@pytest.mark.parametrize(
    ("addr", "loopback"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.0.0.1:*", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/twin.sock", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.5:5555", False),
        ("tcp://eth0:5555", False),
        ("udp://127.0.0.1:5555", False),
    ],
)
def test_only_loopback_binds_without_allow_remote(addr, loopback):
    assert is_loopback(addr) is loopback
    if not loopback:
        with pytest.raises(RemoteBindRefused, match="--allow-remote"):
            check_bind(addr, allow_remote=False)
        check_bind(addr, allow_remote=True)


def test_control_lock_gives_control_to_one_client_and_its_watchdog_trips():
    lock = ControlLock(lease_timeout=10.0)
    lease = lock.take(b"a", None, 1.0, now=0.0)
    assert lease and len(lease) == 32
    assert lock.take(b"b", None, None, now=0.1) is None
    lock.touch(b"b", lease, now=0.9)  # another connection's traffic does not feed it
    lock.touch(b"a", None, now=0.9)  # nor the holder's routing id without the lease
    lock.touch(b"a", lease, now=0.5)
    assert lock.expired(now=1.4) is None
    expiry = lock.expired(now=1.6)
    assert expiry is not None and expiry.holder == b"a" and expiry.watchdog
    assert expiry.silent_for == pytest.approx(1.1)
    assert lock.holder is None and lock.take(b"b", None, None, now=2.0)


def test_every_lease_runs_out_without_a_watchdog():
    lock = ControlLock(lease_timeout=3.0)
    lease = lock.take(b"a", None, None, now=0.0)
    lock.touch(b"a", lease, now=2.0)
    assert lock.expired(now=4.9) is None
    expiry = lock.expired(now=5.1)
    assert expiry is not None and not expiry.watchdog and expiry.timeout == 3.0


def test_a_lease_gives_control_only_to_its_connection():
    lock = ControlLock()
    lease = lock.take(b"a", None, None, now=0.0)
    assert lease is not None
    lock.check(b"a", lease)
    for client, token, code in [
        (b"a", None, "not_controller"),
        (b"a", "", "not_controller"),
        (b"b", lease, "bad_lease"),  # a stolen token on another connection
        (b"a", "f" * 32, "bad_lease"),
        (b"a", "\u00e9" * 4, "bad_lease"),
    ]:
        with pytest.raises(LeaseRefused) as err:
            lock.check(client, token)
        assert err.value.code == code, (client, token)
    with pytest.raises(LeaseRefused):
        lock.check(b"a", lease, user="someone else's key")
    fresh = lock.renew("replaced by a reset")
    with pytest.raises(LeaseRefused, match="reset") as err:
        lock.check(b"a", lease)
    assert err.value.code == "stale_lease"
    lock.check(b"a", fresh)
    assert lock.take(b"a", fresh, 2.0, now=1.0) not in (None, fresh)  # re-take: a new lease


def test_state_rate_is_in_simulated_hz():
    assert steps_per_state(10.0, 0.005) == 20
    assert steps_per_state(1000.0, 0.005) == 1
    assert steps_per_state(0.0, 0.005) == 0
