"""Gateways: OPC UA and Modbus TCP servers in front of a running twin.

Each gateway is a client of the twin's ZeroMQ protocol (docs/protocol.md) in its own process:
it builds its address space or register map from `describe`, mirrors the `state`, `event` and
`kpi` telemetry, and turns writes and method calls into `command` requests under the twin's
control lease. Nothing here runs inside the twin's step loop.
"""
