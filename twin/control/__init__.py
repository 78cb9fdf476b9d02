"""Controllers and the port they use: `port.py` (read signals, send commands; geometry from
`twin.geometry`) and the built-in PLC-like `sequencer.py`.

May import the config, the geometry, the production models and `devices.base`'s
CommandError; never the line itself (the composing code, `twin.automation`, runs them).
"""
