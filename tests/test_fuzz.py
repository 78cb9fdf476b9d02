"""Fuzzing the wire: random bytes, random MessagePack values and well-typed-looking requests with
wrong fields, against the request decoder (in process, tens of thousands of cases) and against
a live `twin serve --mode lockstep` (a few thousand cases over the socket).

What must hold: the decoder only ever raises ProtocolError; the server answers every message,
never crashes, and a refused message changes nothing (the whole state, step and time included,
is byte-identical before and after). Derandomized, so CI runs the same cases every time.

Line configs are fuzzed too: the shipped configs with values swapped for extreme or wrongly
typed ones, and their text with bytes flipped. Loading raises only ConfigError, and every
config it accepts builds and runs with finite numbers in its state.
"""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from processes import ServeProcess

from twin.protocol import messages as m
from twin.protocol.codec import ProtocolError, decode_request, encode

pytestmark = pytest.mark.timeout(240)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

# hypothesis builds structured cases (a few ms each); a seeded mutator makes the bulk cheaply
IN_PROCESS = 1_000  # hypothesis cases per decoder property (three properties)
MUTATIONS = 40_000  # mutated valid requests through the decoder
LIVE = 400  # hypothesis cases per live-server property (three properties)
LIVE_MUTATIONS = 1_500  # mutated valid requests sent to the live server
REPLY_TIMEOUT_MS = 10_000


def _settings(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# strategies ----------------------------------------------------------------------------
HUGE_INTS = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, -(2**63), -1, 0, 10_001, 2**31])
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    HUGE_INTS,
    FLOATS,
    st.text(max_size=20),
    st.binary(max_size=20),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(-(2**63), 2**63)), inner, max_size=5
        ),
    ),
    max_leaves=10,
)

DEVICES = ["infeed", "outfeed", "robot", "mill", "source", "sink", "infeed_pick_eye", "nope", ""]
COMMANDS = [
    "run",
    "stop",
    "set_speed",
    "set_direction",
    "pick",
    "place",
    "move_to",
    "move_joints",
    "home",
    "halt",
    "start",
    "reset",
    "hold",
    "unhold",
    "abort",
    "clear",
    "spawn",
    "enable",
    "disable",
    "fault",
    "fly",
    "x" * 200,
]
ARG_NAMES = ["speed", "position", "positions", "reverse", "on", "type", "part", "good", "bogus"]
FIELDS = ["id", "protocol", "client", "n", "watchdog", "seed", "reason", "part", "device"]
FIELDS += ["command", "args", "zzz"]


def _nested(depth: int) -> object:
    value: object = None
    for _ in range(depth):
        value = [value]
    return value


ARG_VALUES = st.one_of(
    VALUES,
    st.lists(FLOATS, min_size=0, max_size=9),
    st.lists(st.floats(-3, 3), min_size=3, max_size=3),
    st.integers(1, 400).map(_nested),
)


@st.composite
def wrong_requests(draw) -> dict:
    """A map with a real request tag and fields that are mostly the wrong type or value."""
    msg: dict = {"type": draw(st.sampled_from(sorted(m.REQUEST_TAGS)))}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        msg[name] = draw(VALUES)
    if msg["type"] == "command" or draw(st.booleans()):
        msg["device"] = draw(st.one_of(st.sampled_from(DEVICES), VALUES))
        msg["command"] = draw(st.one_of(st.sampled_from(COMMANDS), VALUES))
        args = draw(st.dictionaries(st.sampled_from(ARG_NAMES), ARG_VALUES, max_size=3))
        msg["args"] = draw(st.one_of(st.just(args), VALUES)) if draw(st.booleans()) else args
    if draw(st.booleans()):
        msg["n"] = draw(st.one_of(st.integers(-2, 3), HUGE_INTS, FLOATS, st.text(max_size=3)))
    if draw(st.booleans()):
        msg["watchdog"] = draw(st.one_of(FLOATS, st.integers(-1, 4000), st.text(max_size=3)))
    return msg


RANDOM_MSGPACK = VALUES.map(msgspec.msgpack.encode)
DEEP = st.integers(1, 100_000).map(lambda d: b"\x91" * d + b"\xc0")
WRONG = wrong_requests().map(msgspec.msgpack.encode)
RANDOM_BYTES = st.one_of(st.binary(max_size=300), DEEP)


# the decoder, in process -----------------------------------------------------------------
def _check_decoder(data: bytes) -> None:
    try:
        request = decode_request(data)
    except ProtocolError as e:
        assert e.code in m.ERROR_CODES and e.message
        assert e.request_id is None or isinstance(e.request_id, (int, str))
        return
    assert isinstance(request, m.REQUEST_TYPES)
    # whatever passed is within its declared limits and survives a round trip
    if isinstance(request, m.Step):
        assert 1 <= request.n <= m.MAX_STEPS_PER_REQUEST
    if isinstance(request, m.TakeControl) and request.watchdog is not None:
        assert math.isfinite(request.watchdog) and 0 < request.watchdog <= m.MAX_WATCHDOG_S
    assert encode(decode_request(encode(request))) == encode(request)  # NaN != NaN: bytes


@_settings(IN_PROCESS)
@given(RANDOM_BYTES)
def test_decoder_random_bytes(data):
    _check_decoder(data)


@_settings(IN_PROCESS)
@given(RANDOM_MSGPACK)
def test_decoder_random_msgpack(data):
    _check_decoder(data)


@_settings(IN_PROCESS)
@given(WRONG)
def test_decoder_wrong_requests(data):
    _check_decoder(data)


# a seeded mutator: valid requests with bytes or values changed ---------------------------
CORPUS = [
    {"type": "hello", "protocol": 2, "client": "fuzz", "id": 1},
    {"type": "describe", "id": "d"},
    {"type": "get_state"},
    {"type": "get_kpis"},
    {"type": "get_genealogy", "part": 1},
    {"type": "take_control", "watchdog": 2.0, "id": 2},
    {"type": "heartbeat"},
    {"type": "estop", "reason": "fuzz"},
    {"type": "release_control"},
    {"type": "step", "n": 2, "id": 3},
    {"type": "reset", "seed": 3},
    {"type": "pause"},
    {"type": "command", "device": "infeed", "command": "set_speed", "args": {"speed": 0.3}},
    {"type": "command", "device": "robot", "command": "pick", "args": {"position": [0.7, 0, 0.8]}},
    {
        "type": "command",
        "device": "robot",
        "command": "move_joints",
        "args": {"positions": [0] * 7},
    },
    {"type": "command", "device": "mill", "command": "reset", "id": 9},
]
POISON = [math.nan, math.inf, -math.inf, 2**64 - 1, -(2**63), 1e308, "", "x" * 300, None, True]
POISON += [[], {}, [1.0] * 1000, {"a": {"b": {"c": None}}}, _nested(300), b"\x00", -1, 0]


def _mutate_value(rng: random.Random, msg: dict) -> dict:
    msg = msgspec.msgpack.decode(msgspec.msgpack.encode(msg))  # a deep copy
    target = msg
    if "args" in msg and rng.random() < 0.5:
        target = msg["args"]
    keys = [*target, "zzz", "type", "id"]
    key = rng.choice(keys)
    if rng.random() < 0.2:
        target.pop(key, None)
    else:
        target[key] = rng.choice(POISON) if rng.random() < 0.7 else rng.choice(COMMANDS)
    return msg


def mutations(seed: int, count: int, lease=lambda: None):
    """`count` payloads derived from CORPUS by value or byte mutations; the same every run.
    `lease()` is the control lease to put in each request first (None: none)."""
    rng = random.Random(seed)
    for _ in range(count):
        msg = rng.choice(CORPUS)
        if lease() is not None:
            msg = {**msg, "lease": lease()}
        if rng.random() < 0.5:
            yield msgspec.msgpack.encode(_mutate_value(rng, msg))
            continue
        data = bytearray(msgspec.msgpack.encode(msg))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data) + 1)
            op = rng.random()
            if op < 0.4 and i < len(data):
                data[i] = rng.randrange(256)
            elif op < 0.6:
                data.insert(i, rng.randrange(256))
            elif op < 0.8 and i < len(data):
                del data[i]
            else:
                del data[i:]
                if not data:
                    data.append(rng.randrange(256))
        yield bytes(data)


def test_decoder_mutations():
    for data in mutations(seed=1, count=MUTATIONS):
        _check_decoder(data)


# the live server -------------------------------------------------------------------------
PROBE = msgspec.msgpack.encode({"type": "get_state", "id": "probe"})


class Session:
    """A controlling DEALER on a lockstep server, and the state before the next case."""

    def __init__(self, server: ServeProcess, ctx: zmq.Context) -> None:
        self.server = server
        self.dealer = ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(server.control)
        self.cases = self.refused = 0
        self.lease = None
        self.rearm()

    def ask(self, frames: list[bytes]) -> dict:
        self.dealer.send_multipart(frames)
        assert self.dealer.poll(REPLY_TIMEOUT_MS), f"no reply to {frames!r:.200}"
        reply = self.dealer.recv_multipart()
        assert reply[:-1] == frames[:-1], "the envelope is not echoed"
        decoded = msgspec.msgpack.decode(reply[-1])
        assert isinstance(decoded, dict) and decoded["version"] == m.PROTOCOL_VERSION
        return decoded

    def state(self) -> bytes:
        self.dealer.send(PROBE)
        assert self.dealer.poll(REPLY_TIMEOUT_MS), "no reply to get_state"
        return self.dealer.recv()

    def rearm(self) -> None:
        """Hold control, not e-stopped; remember the state."""
        hello = self.ask([msgspec.msgpack.encode({"type": "hello", "lease": self.lease})])
        if not hello.get("you_control"):
            reply = self.ask([msgspec.msgpack.encode({"type": "take_control"})])
            assert reply["type"] == "control", reply
            self.lease = reply["lease"]
        reset = {"type": "estop_reset", "lease": self.lease}
        assert self.ask([msgspec.msgpack.encode(reset)])["type"] == "ok"
        self.before = self.state()

    def case(self, frames: list[bytes]) -> None:
        reply = self.ask(frames)
        self.cases += 1
        assert reply["type"] in (
            "error",
            "ok",
            "state",
            "hello",
            "describe",
            "kpis",
            "genealogy",
            "control",
            "image_layout",
        )
        if reply["type"] == "control":
            self.lease = reply["lease"]
        if reply["type"] == "error":
            self.refused += 1
            assert reply["code"] != "internal", reply
            assert self.state() == self.before, f"refused {frames!r:.300} changed the state"
        else:
            self.rearm()


def _cheap(payload: bytes) -> bytes:
    """Make a valid request that would take long (a big step, a rebuild) invalid instead."""
    try:
        request = decode_request(payload)
    except ProtocolError:
        return payload
    if isinstance(request, m.Reset) or (isinstance(request, m.Step) and request.n > 3):
        raw = msgspec.msgpack.decode(payload)
        raw["zzz"] = 1
        return msgspec.msgpack.encode(raw)
    return payload


@pytest.fixture(scope="module")
def session(serve_module):
    with (
        serve_module("--mode", "lockstep", "--no-builtin-controller") as server,
        zmq.Context() as ctx,
    ):
        s = Session(server, ctx)
        try:
            yield s
        finally:
            s.dealer.close(linger=0)
        assert server.proc.poll() is None, "the server died"
        assert "Traceback" not in server.stderr_text(), server.stderr_text()
        assert server.stop() == 0


ENVELOPES = st.lists(st.binary(max_size=4), max_size=2)


@_settings(LIVE)
@given(envelope=ENVELOPES, payload=RANDOM_BYTES.filter(lambda b: len(b) < 2_000))
def test_server_random_bytes(session, envelope, payload):
    session.case([*envelope, payload])


@_settings(LIVE)
@given(envelope=ENVELOPES, payload=RANDOM_MSGPACK)
def test_server_random_msgpack(session, envelope, payload):
    session.case([*envelope, _cheap(payload)])


@_settings(LIVE)
@given(payload=WRONG)
def test_server_wrong_requests(session, payload):
    session.case([_cheap(payload)])


def test_server_mutations(session):
    for data in mutations(seed=2, count=LIVE_MUTATIONS, lease=lambda: session.lease):
        session.case([_cheap(data)])


def test_server_fuzz_summary(session):
    """Runs last in this module: most cases were refused, and the line still steps."""
    assert session.cases >= 3 * LIVE + LIVE_MUTATIONS - 100
    assert session.refused > session.cases // 2
    before = msgspec.msgpack.decode(session.before)
    step = {"type": "step", "n": 5, "lease": session.lease}
    after = session.ask([msgspec.msgpack.encode(step)])
    assert after["type"] == "state" and after["step"] == before["step"] + 5


# line configs -------------------------------------------------------------------------
CONFIG_MUTANTS = 600  # mutated configs through the loader
CONFIG_RUNS = 14  # of those it accepts, built and run for a few simulated seconds
TEXT_MUTANTS = 1_500  # configs with bytes flipped, through the loader
EXTREMES = [
    0, 1, -1, 2**63 - 1, -(2**63), 0.0, -0.0, 5e-324, 1e-9, 1e-3, 0.5, 6.3, 99.0, 101.0,
    1e9, 1e308, -1e308, math.nan, math.inf, -math.inf, True, "x", "", [], {}, [1.0, 2.0],
]  # fmt: skip


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path


def _config_mutants(seed: int, count: int):
    """(label, TOML text) of shipped configs with one to three values replaced."""
    from twin.sweep.toml_text import dumps

    rng = random.Random(seed)
    bases = [msgspec.toml.decode(p.read_bytes()) for p in sorted(CONFIG_DIR.glob("*line*.toml"))]
    for _ in range(count):
        raw = copy.deepcopy(rng.choice(bases))
        edits = []
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(list(_leaves(raw)))
            node = raw
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value = copy.deepcopy(rng.choice(EXTREMES))
            edits.append((".".join(map(str, path)), value))
        yield edits, dumps(raw)


def test_mutated_configs_are_refused_in_one_line_or_run_clean():
    from twin.automation import build_line
    from twin.config import ConfigError, loads

    accepted, refused = [], 0
    for edits, text in _config_mutants(seed=3, count=CONFIG_MUTANTS):
        try:
            cfg = loads(text, "mutant.toml")
        except ConfigError as e:
            assert str(e).startswith("mutant.toml: ") and "\n" not in str(e), str(e)
            refused += 1
            continue
        accepted.append((edits, cfg))
    assert refused > CONFIG_MUTANTS // 2 and len(accepted) >= CONFIG_RUNS
    for edits, cfg in accepted[:CONFIG_RUNS]:
        with build_line(cfg) as line:
            line.step(round(3.0 / line.dt))
            state = msgspec.json.encode([line.signals(), line.part_poses(), line.counts()])
            assert b"NaN" not in state and b"Infinity" not in state, edits
            counts = line.counts()
            assert counts["parts_spawned"] == (
                counts["parts_completed"] + counts["parts_lost"] + counts["wip"]
            ), edits


def test_configs_with_flipped_bytes_raise_only_config_errors():
    from twin.config import ConfigError, loads

    rng = random.Random(4)
    texts = [p.read_bytes() for p in sorted(CONFIG_DIR.glob("*line*.toml"))]
    for _ in range(TEXT_MUTANTS):
        data = bytearray(rng.choice(texts))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.4:
                data[at] = rng.randrange(256)
            elif choice < 0.7:
                data[at : at + rng.randint(1, 40)] = b""
            else:
                data[at:at] = rng.choice([b"[", b"{", b"nan", b"inf", b"1e999", b"\x00", b'"'])
        try:
            loads(bytes(data), "flipped.toml")
        except ConfigError:
            pass
