"""Production models that devices are built from: the PackML state machine and fault models.

May import `twin.config` and the standard library only; the consumers of what these models
produce (KPIs, genealogy, plots) live in `twin.analytics`.
"""
