"""Foxglove live: a running twin's telemetry and 3D scene over Foxglove's WebSocket protocol.

`twin foxglove` (or `twin serve --foxglove`) is a client of the twin's ZeroMQ protocol that
republishes `state`, `event` and `kpi` with foxglove-sdk, on channels with the same JSON
Schemas as the MCAP recordings (twin.record.format), plus a `scene` of foxglove.SceneUpdate
built from `describe`'s geometry and each state. A Foxglove user opens a running twin the
way they open a recording. It is read-only: nothing reaches the twin from Foxglove.
"""
