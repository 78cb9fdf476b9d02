"""An open, headless digital twin of a robotic production line.

Data flows one way: config -> line (sim, devices, production models; the plant) ->
automation (built-in controller, scripted e-stops) -> telemetry (one stepper) -> server,
recorder, analytics, gym. Each package's docstring says what it may import; a test
(tests/test_imports.py) holds them to it.
"""

from twin.sim.quiet import import_pybullet_quietly

__version__ = "0.1.0"

import_pybullet_quietly()  # before any module imports pybullet: no build-time banner
