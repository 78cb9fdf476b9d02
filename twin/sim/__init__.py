"""Physics: the World that owns one pybullet client, and asset and model lookup.

May import `twin.config` only.
"""
