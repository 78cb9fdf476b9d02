"""An open, headless digital twin of a robotic production line."""

__version__ = "0.1.0"
