"""An open, headless digital twin of a robotic production line."""

from twin.sim.quiet import import_pybullet_quietly

__version__ = "0.1.0"

import_pybullet_quietly()  # before any module imports pybullet: no build-time banner
