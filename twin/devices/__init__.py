"""Line devices, one module per kind (`kind` = the config tag = the module name), on the
common base in `base.py` (declared signals and commands, argument checking, build context).

May import `twin.config`, `twin.sim`, `twin.parts`, `twin.events`, `twin.geometry` and
`twin.production` only: a device never knows about controllers, sockets or consumers.
"""
