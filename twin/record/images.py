"""Camera frames in a recording, as Foxglove's image panel reads them.

Each camera modality is a channel `camera/<id>/<modality>` of `foxglove.RawImage` (or
`foxglove.CompressedImage` for PNG and JPEG frames), and each camera has `camera/<id>/calibration`
(`foxglove.CameraCalibration`) and `camera/<id>/pose` (`foxglove.FrameTransform` from `world` to
the camera's optical frame: x right, y down, z forward), once per frame instant: protobuf
messages with the schemas the Foxglove SDK ships. `frame_id` is the camera's id, so a 3D view
places each image where its camera was, a wrist camera's too. Segmentation masks (int32 part ids on the
wire) are recorded as `mono16` (part id modulo 65536): Foxglove has no signed 32-bit image.
"""

from __future__ import annotations

import numpy as np
from foxglove.messages import (
    CameraCalibration,
    CompressedImage,
    FrameTransform,
    Quaternion,
    RawImage,
    Timestamp,
    Vector3,
)

from twin.protocol.messages import CameraFrame

_BYTES_PER_PIXEL = {"rgb8": 3, "32FC1": 4, "mono16": 2}
WORLD = "world"  # the twin's world frame (m, z up), as in Foxglove live's scene


def image_channel(frame: CameraFrame) -> str:
    return f"camera/{frame.camera}/{frame.modality}"


def calibration_channel(camera: str) -> str:
    return f"camera/{camera}/calibration"


def pose_channel(camera: str) -> str:
    return f"camera/{camera}/pose"


def image_schema(frame: CameraFrame) -> tuple[str, bytes]:
    """(schema name, protobuf FileDescriptorSet) of the frame's image channel."""
    compressed = frame.encoding in ("png", "jpeg")
    schema = (CompressedImage if compressed else RawImage).get_schema()
    return schema.name, schema.data


def calibration_schema() -> tuple[str, bytes]:
    schema = CameraCalibration.get_schema()
    return schema.name, schema.data


def pose_schema() -> tuple[str, bytes]:
    schema = FrameTransform.get_schema()
    return schema.name, schema.data


def _stamp(log_ns: int) -> Timestamp:
    return Timestamp(sec=log_ns // 1_000_000_000, nsec=log_ns % 1_000_000_000)


def image_message(frame: CameraFrame, log_ns: int) -> bytes:
    """The frame as a Foxglove image message (protobuf bytes)."""
    stamp = _stamp(log_ns)
    if frame.encoding in ("png", "jpeg"):
        return CompressedImage(
            timestamp=stamp, frame_id=frame.camera, data=frame.data, format=frame.encoding
        ).encode()
    encoding, data = frame.encoding, frame.data
    if encoding == "32SC1":
        ids = np.frombuffer(data, dtype="<i4")
        encoding, data = "mono16", (ids & 0xFFFF).astype("<u2").tobytes()
    return RawImage(
        timestamp=stamp,
        frame_id=frame.camera,
        width=frame.width,
        height=frame.height,
        encoding=encoding,
        step=frame.width * _BYTES_PER_PIXEL[encoding],
        data=data,
    ).encode()


def calibration_message(frame: CameraFrame, log_ns: int) -> bytes:
    """The camera's pinhole calibration (no distortion) at the frame's instant."""
    k = frame.intrinsics
    fx, fy, cx, cy = k["fx"], k["fy"], k["cx"], k["cy"]
    return CameraCalibration(
        timestamp=_stamp(log_ns),
        frame_id=frame.camera,
        width=frame.width,
        height=frame.height,
        distortion_model="plumb_bob",
        D=[0.0] * 5,
        K=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
        R=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        P=[fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    ).encode()


def pose_message(frame: CameraFrame, log_ns: int) -> bytes:
    """Where the camera was at the frame's instant: the transform from `world` to its
    optical frame."""
    x, y, z = frame.pose["position"]
    qx, qy, qz, qw = frame.pose["orientation"]
    return FrameTransform(
        timestamp=_stamp(log_ns),
        parent_frame_id=WORLD,
        child_frame_id=frame.camera,
        translation=Vector3(x=x, y=y, z=z),
        rotation=Quaternion(x=qx, y=qy, z=qz, w=qw),
    ).encode()
