"""`twin serve` composed: the server, and the recorder attached to it when asked for.

The server (`twin.server`) and the recorder (`twin.record`) know nothing of each other; this
is where they meet. The CLI and the benchmarks build served lines here.
"""

from __future__ import annotations

from twin.config import LineConfig
from twin.record.server_tap import record_server
from twin.server.loop import ServeOptions, Server
from twin.server.loop import serve as run_server


def _attach(cfg: LineConfig, opts: ServeOptions):
    def attach(server: Server) -> None:
        if opts.record:
            record_server(opts.record, cfg, server)

    return attach


def build_server(cfg: LineConfig, opts: ServeOptions) -> Server:
    """A server with what `opts` asks to be attached (a recording); the caller closes it."""
    server = Server(cfg, opts)
    try:
        _attach(cfg, opts)(server)
    except Exception:
        server.close()
        raise
    return server


def serve(cfg: LineConfig, opts: ServeOptions) -> int:
    """Run `twin serve` until SIGINT or SIGTERM (see twin.server.loop.serve)."""
    return run_server(cfg, opts, attach=_attach(cfg, opts))
