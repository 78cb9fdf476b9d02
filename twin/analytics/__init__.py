"""Downstream consumers of a line's events: KPIs, part genealogy, timelines and plots.

They read `twin.events` structs only, never the physics or the devices. May import
`twin.events` (and, for construction, a built `Line`'s device configs); nothing here is
imported by `devices/`, `sim/` or `production/`.
"""
