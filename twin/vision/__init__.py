"""Vision beside the camera device: frames as messages, which frames are wanted, datasets."""
