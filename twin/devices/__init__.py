"""Line devices, one module per kind."""
