"""Peer processes for the gateway benchmarks: `python -m twin.bench.gateway_peers ROLE ARG`.

- `opcua-subscriber ENDPOINT`: subscribes to every variable of the line at a 10 ms sampling
  and publishing interval, prints `ready`, counts data-change notifications until stdin
  closes, then prints `received N`.
"""

from __future__ import annotations

import asyncio
import sys

from asyncua import Client, ua


async def _variables(client: Client, node, out: list) -> None:  # noqa: ANN001
    for child in await node.get_children():
        cls = await child.read_node_class()
        if cls == ua.NodeClass.Variable:
            out.append(child)
        elif cls == ua.NodeClass.Object:
            await _variables(client, child, out)


async def opcua_subscriber(endpoint: str) -> None:
    received = 0

    class Handler:
        def datachange_notification(self, node, val, data) -> None:  # noqa: ANN001
            nonlocal received
            received += 1

    async with Client(endpoint, timeout=30) as client:
        objects = await client.nodes.objects.get_children()
        line = objects[-1]  # the line's object comes after the standard Server object
        nodes: list = []
        await _variables(client, line, nodes)
        sub = await client.create_subscription(10, Handler())
        await sub.subscribe_data_change(nodes, sampling_interval=10)
        print("ready", len(nodes), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        print("received", received, flush=True)


def main() -> int:
    role, arg = sys.argv[1], sys.argv[2]
    if role == "opcua-subscriber":
        asyncio.run(opcua_subscriber(arg))
        return 0
    print(f"unknown role {role}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
