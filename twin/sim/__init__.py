"""Physics: the World that owns one pybullet client, and asset lookup."""
