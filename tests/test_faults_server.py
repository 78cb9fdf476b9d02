"""Process faults around `twin serve`: a controller killed mid-step, the twin stopped
mid-recording, a subscriber that never reads, clients that connect and never speak. Each ends
in the documented state with nothing lost. Every wait has a timeout; every process is killed."""

from __future__ import annotations

import os
import socket
import time

import pytest
import zmq
from conservation import assert_parts_conserved
from mcap.reader import make_reader
from processes import run_script

from twin.client import Client

pytestmark = pytest.mark.timeout(120)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


_STEPPING_CONTROLLER = """
import sys
import zmq
from twin.client import Client
from twin.protocol import messages as m
from twin.protocol.codec import encode
c = Client(sys.argv[1], timeout=10)
c.take_control(watchdog=float(sys.argv[2]))
c.command("infeed", "run")
c._dealer.send(encode(m.Step(n=int(sys.argv[3]), id="long", lease=c.lease)))  # in flight
print("stepping", flush=True)
sys.stdin.read()  # wait to be killed
"""


def test_controller_killed_mid_step_trips_the_watchdog(serve):
    watchdog, steps = 1.0, 2000
    with (
        serve("--mode", "lockstep", "--no-builtin-controller") as server,
        Client(server.control, server.telemetry, timeout=60) as observer,
    ):
        observer.subscribe(["event"])
        start = observer.get_state().step
        ctl = run_script(_STEPPING_CONTROLLER, server.control, str(watchdog), str(steps))
        try:
            assert ctl.stdout.readline().strip() == "stepping", ctl.stderr.read()
            time.sleep(0.2)
            ctl.kill()  # SIGKILL while the step request is being carried out
        finally:
            ctl.kill()
            ctl.wait(10)
        # the server finishes the step (its reply goes nowhere), then answers the others
        after = observer.get_state()
        assert after.step == start + steps
        event = observer.wait_for_event("watchdog", timeout=watchdog + 10)
        assert event.data["silent_for"] > watchdog
        state = observer.get_state()
        assert not state.controlled and not state.signals["infeed"]["running"]
        assert state.step == start + steps  # nobody stepped since: lockstep
        with Client(server.control) as rescuer:  # the line is free to take over
            rescuer.take_control()
            assert rescuer.step(1).step == start + steps + 1
        assert_parts_conserved(observer.get_state().counts)


def test_sigterm_mid_recording_closes_the_file(tmp_path, serve):
    path = tmp_path / "run.mcap"
    with serve("--mode", "fast", "--record", str(path)) as server:
        deadline = time.monotonic() + 30
        while path.stat().st_size < 20_000:
            assert time.monotonic() < deadline, "the recording does not grow"
            time.sleep(0.1)
        assert server.stop() == 0, server.stderr_text()
    with open(path, "rb") as f:
        reader = make_reader(f)  # the seeking reader needs the footer and summary
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        counts = {
            summary.channels[ch].topic: n
            for ch, n in summary.statistics.channel_message_counts.items()
        }
        assert counts["recording"] == 1 and counts["state"] > 10
        assert sum(1 for _ in reader.iter_messages()) == summary.statistics.message_count


def _step_rate(c: Client, seconds: float) -> float:
    first = c.get_state()
    t0 = time.monotonic()
    time.sleep(seconds)
    last = c.get_state()
    return (last.step - first.step) / (time.monotonic() - t0)


def test_subscriber_that_never_reads_does_not_slow_the_twin(serve):
    with (
        serve("--mode", "fast", "--state-rate", "200") as server,  # state every step
        Client(server.control, server.telemetry, timeout=10) as reader,
        zmq.Context() as ctx,
    ):
        before = _step_rate(reader, 1.5)
        stuck = []
        try:
            for _ in range(3):
                sub = ctx.socket(zmq.SUB)
                sub.setsockopt(zmq.LINGER, 0)
                sub.setsockopt(zmq.RCVHWM, 1)
                sub.setsockopt(zmq.RCVBUF, 4096)
                sub.setsockopt(zmq.SUBSCRIBE, b"")
                sub.connect(server.telemetry)
                stuck.append(sub)
            time.sleep(2.0)  # long enough for their queues to fill up
            during = _step_rate(reader, 1.5)
            # a reading subscriber still gets current telemetry
            reader.subscribe(["state"])
            topic, msg = reader.recv_telemetry(timeout=10)
            assert topic == "state" and msg.step >= reader.get_state().step - 2000
        finally:
            for sub in stuck:
                sub.close(linger=0)
        assert before > 0 and during > 0.5 * before, (before, during)


def test_silent_clients_change_nothing_and_leak_nothing(serve):
    with (
        serve("--mode", "lockstep", "--no-builtin-controller") as server,
        Client(server.control, server.telemetry, timeout=10) as c,
        zmq.Context() as ctx,
    ):
        c.take_control()
        c.step(10)
        before = c.get_state()
        fds_before = _fds(server.proc.pid)
        host, port = server.control.removeprefix("tcp://").rsplit(":", 1)
        raw = [socket.create_connection((host, int(port)), timeout=5) for _ in range(20)]
        dealers = []
        for _ in range(20):
            d = ctx.socket(zmq.DEALER)
            d.setsockopt(zmq.LINGER, 0)
            d.connect(server.control)
            dealers.append(d)
        try:
            time.sleep(0.5)
            assert _fds(server.proc.pid) >= fds_before + 20  # the connections are there
            after = c.step(5)  # others are unaffected
            assert after.step == before.step + 5 and after.controlled
            for d in dealers:
                assert not d.poll(0), "a client that said nothing got a message"
        finally:
            for s in raw:
                s.close()
            for d in dealers:
                d.close(linger=0)
        deadline = time.monotonic() + 10
        while _fds(server.proc.pid) > fds_before + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _fds(server.proc.pid) <= fds_before + 2
        assert c.get_state().step == before.step + 5
        assert_parts_conserved(c.get_state().counts)
        assert server.stop() == 0
