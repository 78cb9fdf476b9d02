"""A rendered image as a `camera` message: metadata and bytes in a stated encoding.

Encodings name the bytes as Foxglove and ROS do: rgb8 (H x W x 3 bytes), 32FC1 (float32 depth
in m, little-endian), 32SC1 (int32 part ids, little-endian), all row-major without padding;
png or jpeg (an RGB PNG or JPEG file) when a camera's `encoding` asks for it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from twin.devices.camera import Camera
from twin.protocol.messages import CameraFrame

RAW_ENCODINGS = {"rgb": "rgb8", "depth": "32FC1", "segmentation": "32SC1"}


def camera_topic(camera: str, modality: str) -> bytes:
    """The wire topic of one camera's modality: subscribe to b"camera/" for every camera."""
    return f"camera/{camera}/{modality}".encode()


def encode_image(
    modality: str, image: np.ndarray, encoding: str, quality: int = 90
) -> tuple[str, bytes]:
    """(encoding name, bytes) of one image; PNG and JPEG apply to RGB only."""
    if modality == "rgb" and encoding in ("png", "jpeg"):
        out = io.BytesIO()
        if encoding == "png":
            Image.fromarray(image, "RGB").save(out, format="PNG", compress_level=1)
        else:
            Image.fromarray(image, "RGB").save(out, format="JPEG", quality=quality)
        return encoding, out.getvalue()
    dtype = {"rgb": "u1", "depth": "<f4", "segmentation": "<i4"}[modality]
    return RAW_ENCODINGS[modality], np.ascontiguousarray(image, dtype=dtype).tobytes()


def decode_image(frame: CameraFrame) -> np.ndarray:
    """The image a `camera` message carries, as an array (what a client does with it)."""
    if frame.encoding in ("png", "jpeg"):
        return np.asarray(Image.open(io.BytesIO(frame.data)).convert("RGB"))
    dtype, channels = {"rgb8": ("u1", 3), "32FC1": ("<f4", 1), "32SC1": ("<i4", 1)}[frame.encoding]
    shape = (frame.height, frame.width, channels) if channels > 1 else (frame.height, frame.width)
    return np.frombuffer(frame.data, dtype=dtype).reshape(shape)


def frame_messages(
    camera: Camera,
    step: int,
    time: float,
    modalities: tuple[str, ...],
    request_id: int | str | None = None,
) -> list[CameraFrame]:
    """Render `camera` once and make one message per modality, all of the same instant."""
    images = camera.render(modalities)
    pose = camera.pose_dict()
    intrinsics = camera.intrinsics.as_dict()
    out = []
    for modality in modalities:
        encoding, data = encode_image(
            modality, images[modality], camera.cfg.encoding, camera.cfg.jpeg_quality
        )
        out.append(
            CameraFrame(
                id=request_id,
                step=step,
                time=time,
                camera=camera.id,
                modality=modality,
                encoding=encoding,
                width=camera.cfg.width,
                height=camera.cfg.height,
                pose=pose,
                intrinsics=intrinsics,
                data=data,
            )
        )
    return out
