"""Give freed memory back to the operating system after a pybullet client is closed.

A closed client frees its heap (about 45 MB for the default line headless, 100 MB with the
Panda's visual meshes), but glibc's allocator keeps freed pages in the process. A server that rebuilds its line on `reset` builds the new line before
closing the old one, so without this its resident memory would stay at two lines' worth.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return the allocator's free pages to the OS where the C library can (glibc); a no-op
    elsewhere."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
