"""Fixtures shared by the tests.

`serve` starts `twin serve` subprocesses (twin.serve_process, the one launcher): on free
loopback ports, every wait bounded, every process killed when the test ends, pass or fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from twin.serve_process import ServeProcess


def _launcher() -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def start(*args: str) -> ServeProcess:
        server = ServeProcess(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., ServeProcess]]:
    """`serve(*args)` starts `twin serve ARGS` and returns it (a context manager too)."""
    yield from _launcher()


@pytest.fixture(scope="module")
def serve_module() -> Iterator[Callable[..., ServeProcess]]:
    """`serve` for module-scoped fixtures: the servers live until the module's tests end."""
    yield from _launcher()


@pytest.fixture
def lockstep_server(serve: Callable[..., ServeProcess]) -> ServeProcess:
    """The default line in lockstep without its built-in controller."""
    return serve("--mode", "lockstep", "--no-builtin-controller")
