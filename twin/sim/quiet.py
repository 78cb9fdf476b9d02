"""Keep pybullet's C-level chatter off our stdout and stderr."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def _silenced(stream: TextIO) -> Iterator[None]:
    """Point the stream's file descriptor at /dev/null for the duration."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # no real fd (e.g. captured): nothing to hide
        yield
        return
    stream.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def quiet_stdout() -> contextlib.AbstractContextManager[None]:
    """pybullet's C code prints 'argv[0]=' on connect; keep our stdout for our own output."""
    return _silenced(sys.stdout)


def import_pybullet_quietly() -> None:
    """pybullet prints its build time on stderr when first imported; import it with stderr
    silenced, so that what the twin prints there (a one-line error) stands alone. An import
    that fails still raises."""
    if "pybullet" in sys.modules:
        return
    with _silenced(sys.stderr):
        import pybullet  # noqa: F401
