"""Recording and deterministic replay: MCAP files with JSON-Schema channels (Foxglove-ready).

- `writer.Recorder` writes config, telemetry and accepted requests;
- `server_tap.record_server` attaches it to a built server (`twin.serving` composes them);
  `twin run` adds it to its telemetry stepper;
- `reader.RecordingReader` reads a file front to back, even one whose writer was killed;
- `replay.verify` / `replay.publish` and `inspect.summarise` back `twin replay` and `twin inspect`.

May import the protocol, the config, the line and its composition (`twin.automation`,
`twin.telemetry`) and the names `twin.server` exports, never the server's modules.
"""
