"""Lockstep's wait for the next request: look for it for a short window after each reply
before sleeping on the socket.

A controller in a tight loop sends its next request within a few hundred µs of the reply.
A thread asleep on the socket then pays the kernel's wake-up (on a VM, an idle virtual CPU
woken by an interrupt, with cold caches), about a quarter of a lockstep cycle. Looking for the
request meanwhile costs CPU only while the controller keeps that pace: once a request takes
longer than the window, the server sleeps from its next reply on, until a request comes
within the window again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

DEFAULT_SPIN_US = 300.0  # lockstep: a cycle's round trip from the reply to the next request
# the server loop checks leases, watchdogs and subscriptions between two waits: a look is
# never longer than its idle wait on the socket (10 ms)
MAX_SPIN_US = 10_000.0
# between two looks, any other thread that wants this core gets it (its own socket thread,
# which delivers the request, may be one); where there is no such call, nothing
_yield: Callable[[], object] = getattr(os, "sched_yield", lambda: None)


class SpinWait:
    def __init__(self, window_s: float) -> None:
        if not 0 <= window_s <= MAX_SPIN_US * 1e-6:
            raise ValueError(
                f"the spin window must be 0 to {MAX_SPIN_US * 1e-6:g} s, got {window_s}"
            )
        self.window = window_s
        self.armed = window_s > 0  # the last request came within the window
        self.replied = -float("inf")  # perf_counter when the last reply went out

    def wait(self, ready: Callable[[], object]) -> bool:
        """Look for a request (`ready()` true) until the window after the last reply ends;
        whether one came. When none came, spinning stops until one comes in time again."""
        if not self.armed:
            return False
        clock, end, give_way = time.perf_counter, self.replied + self.window, _yield
        while not ready():
            give_way()
            if clock() > end:
                self.armed = False
                return False
        return True

    def woke(self) -> None:
        """A request arrived while the server slept on the socket: spin again after the next
        reply if it came within the window."""
        self.armed = self.window > 0 and time.perf_counter() - self.replied <= self.window

    def sent(self) -> None:
        """A reply went out: the window starts now."""
        self.replied = time.perf_counter()
