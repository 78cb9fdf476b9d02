"""The other processes of the benchmarks, run as `python -m twin.bench.peers ROLE ...`.

- `subscriber ADDR`: a SUB that reads everything; prints `ready` at its first message and,
  when its stdin closes, the number of messages it got.
- `stuck-subscriber ADDR`: a SUB that connects and never reads; prints `ready` once connected.
  Lines `unsubscribe` / `subscribe` on its stdin toggle its subscription (answered `ok`), so
  one publisher can be timed with and without it without reconnecting.
- `stepping-echo CONFIG`: the lockstep baseline. Builds the line (no controller), runs it
  for WARMUP_S simulated seconds so that belts move and parts are on them as on the served
  line, and binds a REP on a wildcard port (printed as `control ADDR`). A request whose first
  byte is `s` costs one bare stepSimulation; every request is answered with a blob of the
  length in bytes 1-9.

Every peer exits when its stdin closes, so the benchmark can always end it.
"""

from __future__ import annotations

import select
import sys

import zmq

POLL_MS = 50
WARMUP_S = 20.0  # the served line in the lockstep benchmark runs about 0 .. 45 s


def _stdin_closed() -> bool:
    readable, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(readable) and not sys.stdin.readline()


def _say(text: str) -> None:
    print(text, flush=True)


def _subscribe(ctx: zmq.Context, addr: str) -> zmq.Socket:
    """A SUB to every topic of the PUB at `addr`."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(addr)
    return sub


def subscriber(addr: str) -> None:
    ctx = zmq.Context()
    sub = _subscribe(ctx, addr)
    count = 0
    while not _stdin_closed():
        if sub.poll(POLL_MS, zmq.POLLIN):
            while True:
                try:
                    sub.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                count += 1
                if count == 1:
                    _say("ready")
    _say(f"received {count}")
    sub.close(linger=0)
    ctx.term()


def stuck_subscriber(addr: str) -> None:
    ctx = zmq.Context()
    sub = _subscribe(ctx, addr)
    # peek until the first message is queued (so the PUB knows us), then never read again
    while not _stdin_closed():
        if sub.poll(POLL_MS, zmq.POLLIN):
            break
    _say("ready")
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], 0.2)
        if not readable:
            continue
        order = sys.stdin.readline().strip()
        if not order:
            break
        if order in ("subscribe", "unsubscribe"):
            sub.setsockopt(zmq.SUBSCRIBE if order == "subscribe" else zmq.UNSUBSCRIBE, b"")
            _say("ok")
    sub.close(linger=0)
    ctx.term()


def stepping_echo(config: str) -> None:
    from twin.config import load
    from twin.line import Line

    line = Line(
        load(config),
    )
    line.step(round(WARMUP_S / line.dt))  # the bodies in the same kind of state as served
    step = line.world.client.stepSimulation
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.setsockopt(zmq.RCVTIMEO, POLL_MS)  # a blocking receive: the leanest loop pyzmq has
    rep.bind("tcp://127.0.0.1:*")
    _say(f"control {rep.getsockopt_string(zmq.LAST_ENDPOINT)}")
    blobs: dict[int, bytes] = {}
    while True:
        try:
            request = rep.recv()
        except zmq.Again:  # idle: time to see whether the benchmark has finished
            if _stdin_closed():
                break
            continue
        if request[:1] == b"s":
            step()
        size = int(request[1:10])
        blob = blobs.get(size)
        if blob is None:
            blob = blobs[size] = bytes(size)
        rep.send(blob)
    rep.close(linger=0)
    ctx.term()
    line.close()


ROLES = {"subscriber": subscriber, "stuck-subscriber": stuck_subscriber}


def main(argv: list[str]) -> int:
    role, arg = argv[0], argv[1]
    if role == "stepping-echo":
        stepping_echo(arg)
    else:
        ROLES[role](arg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
