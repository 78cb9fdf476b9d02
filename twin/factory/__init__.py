"""A factory: several cells on one floor, mobile robots between them, and orders.

`layout` reads a factory file and expands it into one line config (each cell a line config
used as a template, placed with a pose and an id prefix); `checks` validates what makes a
line a factory; the fleet, traffic and order managers are built-in controllers that act
through the control port like the sequencer. May import: twin.config, twin.routes,
twin.geometry, twin.control, twin.events (never the line or the server).
"""
