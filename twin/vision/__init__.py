"""Vision beside the camera device kind (twin.devices.camera): frames as `camera` messages,
which frames are wanted and when (a camera nobody wants never renders).

May import the plant (config, line, devices) and the protocol's messages; nothing here knows
a socket, a server or a recorder.
"""
