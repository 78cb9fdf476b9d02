"""The lockstep baseline's transport: a raw REQ/REP ping-pong with blobs of the sizes our
messages have, against the stepping echo (twin.bench.peers), which steps on `s`."""

from __future__ import annotations

import time

import zmq

TARGET = 0.85  # the ratio every lockstep variant aims for
RECV_TIMEOUT_MS = 10_000
SPEEDS = (0.2, 0.25)  # the belt speeds the controllers alternate


class PingPong:
    """The baseline: REQ/REP with blobs of our request/reply sizes; the peer steps on `s`.
    `exchanges` are (kind, request size, reply size), one per round trip of a step."""

    def __init__(self, addr: str, exchanges: list[tuple[bytes, int, int]]) -> None:
        self.ctx = zmq.Context()
        self.req = self.ctx.socket(zmq.REQ)
        self.req.setsockopt(zmq.LINGER, 0)
        self.req.setsockopt(zmq.RCVTIMEO, RECV_TIMEOUT_MS)
        self.req.connect(addr)
        self.blobs = [self._blob(kind, size, reply) for kind, size, reply in exchanges]

    @staticmethod
    def _blob(kind: bytes, size: int, reply_size: int) -> bytes:
        head = kind + b"%09d" % reply_size
        return head + bytes(max(0, size - len(head)))

    def round_trip(self) -> None:
        for blob in self.blobs:
            self.req.send(blob)
            self.req.recv()  # raises zmq.Again after RECV_TIMEOUT_MS

    def rate(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.round_trip()
        return steps / (time.perf_counter() - t0)

    def close(self) -> None:
        self.req.close(linger=0)
        self.ctx.term()
