"""Cameras: config checks, intrinsics and pose, rendering only on demand, the `camera`
telemetry topic and `get_image` over real sockets."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from twin.automation import build_line
from twin.client import Client, TwinError
from twin.config import ConfigError, loads
from twin.devices.camera import Camera
from twin.protocol import messages as m
from twin.protocol.codec import decode_telemetry
from twin.serve_process import ROOT
from twin.telemetry import TelemetryStepper, state_message
from twin.vision.feed import CameraDemand, CameraFeed
from twin.vision.frames import decode_image

pytestmark = pytest.mark.timeout(120)

CAMERA_LINE = (ROOT / "configs" / "camera_line.toml").read_text()
# the shipped camera line with small images, so tests render fast
SMALL = CAMERA_LINE.replace("width = 320\nheight = 240", "width = 64\nheight = 48").replace(
    "width = 160\nheight = 120", "width = 48\nheight = 36"
)
OVERHEAD = "devices[9] (device 'overhead')"
WRIST = "devices[10] (device 'wrist')"


def small_line_file(tmp_path: Path) -> Path:
    path = tmp_path / "camera_line.toml"
    path.write_text(SMALL)
    return path


def edit(old: str, new: str) -> str:
    assert old in SMALL, old
    return SMALL.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (edit("fov = 45.0", "fov = 180.0"), f"{OVERHEAD}.fov", "Expected `float` < 180"),
        (edit("fov = 45.0", "fov = 0.0"), f"{OVERHEAD}.fov", "Expected `float` > 0"),
        (edit("far = 3.0", "far = 0.05"), f"{OVERHEAD}.far", "is not beyond near 0.1 m"),
        (
            edit("width = 64\nheight = 48", "width = 4096\nheight = 4096"),
            f"{OVERHEAD}.width",
            "16777216 pixels is more than the limit 4194304",
        ),
        (
            edit('link = "panda_hand"', 'link = "panda_nose"'),
            f"{WRIST}.mount.link",
            "has no link 'panda_nose'",
        ),
        (
            edit('arm = "robot", link', 'arm = "mill", link'),
            f"{WRIST}.mount.arm",
            "'mill' is a station, expected a arm",
        ),
        (
            edit("look_at = [0.05, -0.45, 0.75]", ""),
            f"{OVERHEAD}.look_at",
            "a fixed camera needs look_at",
        ),
        (
            edit('modalities = ["rgb", "depth", "segmentation"]', 'modalities = ["thermal"]'),
            f"{OVERHEAD}.modalities[0]",
            "Invalid enum value 'thermal'",
        ),
        (
            edit("rate = 5.0", "rate = -1.0"),
            f"{OVERHEAD}.rate",
            "Expected `float` > 0",
        ),
    ],
    ids=["fov-180", "fov-0", "far-before-near", "too-many-pixels", "unknown-link",
         "mount-on-station", "no-look-at", "unknown-modality", "negative-rate"],
)  # fmt: skip
def test_impossible_cameras_are_refused_naming_the_field(text, field, problem):
    with pytest.raises(ConfigError) as err:
        loads(text, "cams.toml")
    message = str(err.value)
    assert message.startswith(f"cams.toml: {field}: "), message
    assert problem in message, message
    assert "\n" not in message


def test_twin_check_refuses_a_camera_on_a_missing_link_in_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(edit('link = "panda_hand"', 'link = "panda_nose"'))
    proc = subprocess.run(
        [sys.executable, "-m", "twin.cli", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "mount.link" in lines[0] and "panda_nose" in lines[0], proc.stderr


def project(cam: Camera, point: list[float]) -> tuple[float, float, float]:
    """(u, v, depth) of a world point in the camera's image, from its described pose."""
    import pybullet

    pose = cam.describe()["camera"]
    k = pose["intrinsics"]
    pos = np.array(pose["pose"]["position"])
    r = np.array(pybullet.getMatrixFromQuaternion(pose["pose"]["orientation"])).reshape(3, 3)
    x, y, z = r.T @ (np.array(point) - pos)
    return k["fx"] * x / z + k["cx"], k["fy"] * y / z + k["cy"], z


@pytest.fixture(scope="module")
def running_line():
    """The small camera line after 5 s: a part on the infeed in the overhead camera's view."""
    built = build_line(loads(SMALL, "small.toml"))
    built.step(500)
    yield built
    built.line.close()


def test_describe_gives_intrinsics_and_a_pose_that_projects_the_world(running_line):
    line = running_line.line
    cam = line.devices["overhead"]
    desc = cam.describe()["camera"]
    k = desc["intrinsics"]
    assert (k["width"], k["height"], k["fov"], k["near"], k["far"]) == (64, 48, 45.0, 0.1, 3.0)
    assert k["fy"] == pytest.approx(24 / np.tan(np.radians(22.5)))
    assert k["k"] == [k["fx"], 0.0, 32.0, 0.0, k["fy"], 24.0, 0.0, 0.0, 1.0]
    assert desc["pose"]["position"] == [0.05, -0.45, 1.45]
    # the point it looks at is the image centre, 0.7 m ahead
    u, v, z = project(cam, [0.05, -0.45, 0.75])
    assert (u, v, z) == pytest.approx((32, 24, 0.7))
    # the centre sees the end stop, 6.2 cm above the belt; the belt surface is 0.7 m below
    # (with 1 mm noise and quantum); 0 where nothing is within `far`
    images = cam.render(("depth", "segmentation"))
    depth = images["depth"]
    assert depth[24, 32] == pytest.approx(0.7 - 0.062, abs=0.005)
    u, v, _ = project(cam, [-0.25, -0.42, 0.75])
    assert images["segmentation"][int(v), int(u)] == 0  # no part there
    assert depth[int(v), int(u)] == pytest.approx(0.7, abs=0.005)
    assert depth.dtype == np.float32 and depth.min() > 0


def test_a_wrist_camera_moves_with_its_link(running_line):
    line = running_line.line
    wrist = line.devices["wrist"]
    before = wrist.pose()[0]
    line.apply("robot", "move_to", {"position": [0.3, 0.2, 1.0]})
    running_line.step(150)
    after = wrist.pose()[0]
    assert np.linalg.norm(np.subtract(after, before)) > 0.1
    hand = line.world.client.getLinkState(wrist._mount[0], wrist._mount[1])[4]
    # the offset is 6 cm along the hand's y and 2 cm along its z
    assert np.linalg.norm(np.subtract(after, hand)) == pytest.approx(np.hypot(0.06, 0.02))


def test_segmentation_shows_each_part_where_its_pose_is(running_line):
    line = running_line.line
    cam = line.devices["overhead"]
    mask = cam.render(("segmentation",))["segmentation"]
    seen = set(np.unique(mask)) - {0}
    assert seen, "a part should be in the overhead camera's view after 5 s"
    poses = {p["id"]: p["position"] for p in line.part_poses()}
    for part in seen:
        u, v, _ = project(cam, poses[part])
        rows, cols = np.nonzero(mask == part)
        assert mask[int(v), int(u)] == part
        assert (cols.mean() + 0.5, rows.mean() + 0.5) == pytest.approx((u, v), abs=1.0)


def test_a_camera_nobody_wants_never_renders():
    line_built = build_line(loads(SMALL, "small.toml"))
    line = line_built.line
    try:
        demand = CameraDemand()
        sent: list[tuple[bytes, object]] = []
        stepper = TelemetryStepper(
            line_built,
            state_rate=10.0,
            state=lambda: state_message(line, "fast"),
            sinks=[lambda topic, msg: sent.append((topic, msg))],
            cameras=CameraFeed(line, demand),
        )
        stepper.advance(200)
        cams = [line.devices["overhead"], line.devices["wrist"]]
        assert [c.frames for c in cams] == [0, 0]
        assert not [t for t, _ in sent if t.startswith(b"camera")]
        demand.subscribe(b"state")  # another topic changes nothing
        stepper.advance(100)
        assert [c.frames for c in cams] == [0, 0]
        demand.subscribe(b"camera/overhead/depth")
        stepper.advance(100)  # 5 Hz: a frame every 20 steps
        assert [c.frames for c in cams] == [5, 0]
        frames = [msg for t, msg in sent if t.startswith(b"camera")]
        assert [f.step for f in frames] == [320, 340, 360, 380, 400]
        assert {(f.camera, f.modality, f.encoding) for f in frames} == {
            ("overhead", "depth", "32FC1")
        }
        demand.unsubscribe(b"camera/overhead/depth")
        stepper.advance(100)
        assert [c.frames for c in cams] == [5, 0]
    finally:
        line.close()


def _next_frame(sub: zmq.Socket, timeout_s: float = 20.0) -> tuple[bytes, object]:
    assert sub.poll(int(timeout_s * 1000)), "no telemetry in time"
    topic, payload = sub.recv_multipart()
    return topic, decode_telemetry(payload)


def test_subscriber_masks_match_the_parts_of_the_same_steps_state(tmp_path, serve):
    path = small_line_file(tmp_path)
    with serve(str(path), "--mode", "lockstep") as server:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        try:
            sub.connect(server.telemetry)
            sub.setsockopt(zmq.SUBSCRIBE, b"camera/overhead/segmentation")
            sub.setsockopt(zmq.SUBSCRIBE, b"state")
            with Client(server.control, timeout=30.0) as c:
                desc = c.describe()
                cam = next(d for d in desc.devices if d["id"] == "overhead")["camera"]
                c.take_control()
                time.sleep(0.3)  # the subscription reaches the server
                c.step(500)
                states, masks = {}, {}
                while 500 not in states or 500 not in masks:
                    topic, msg = _next_frame(sub)
                    if topic == b"state":
                        states[msg.step] = msg
                    else:
                        assert topic == b"camera/overhead/segmentation"
                        masks[msg.step] = msg
                # a frame every 20 steps (5 Hz at 10 ms), each at its own step
                assert sorted(masks)[-5:] == [420, 440, 460, 480, 500]
                frame = masks[500]
                assert (frame.width, frame.height, frame.encoding) == (64, 48, "32SC1")
                assert frame.intrinsics == cam["intrinsics"] and frame.pose == cam["pose"]
                mask = decode_image(frame)
                seen = set(np.unique(mask)) - {0}
                poses = {p["id"]: p["position"] for p in states[500].parts}
                assert seen and seen <= set(poses)
                import pybullet

                k = frame.intrinsics
                r = np.array(pybullet.getMatrixFromQuaternion(frame.pose["orientation"]))
                for part in seen:
                    x, y, z = r.reshape(3, 3).T @ (
                        np.array(poses[part]) - np.array(frame.pose["position"])
                    )
                    u, v = k["fx"] * x / z + k["cx"], k["fy"] * y / z + k["cy"]
                    assert mask[int(v), int(u)] == part

                # get_image: the same instant on request, any configured modality
                rgb = c.request(m.GetImage(camera="overhead", modality="rgb"))
                assert (rgb.step, rgb.encoding) == (500, "rgb8")
                assert decode_image(rgb).shape == (48, 64, 3)
                wrist = c.request(m.GetImage(camera="wrist", modality="rgb"))
                assert wrist.encoding == "png" and decode_image(wrist).shape == (36, 48, 3)
                with pytest.raises(TwinError) as err:
                    c.request(m.GetImage(camera="mill", modality="rgb"))
                assert err.value.code == "unknown_camera"
                assert "'overhead', 'wrist'" in err.value.message
                with pytest.raises(TwinError) as err:
                    c.request(m.GetImage(camera="wrist", modality="segmentation"))
                assert err.value.code == "unknown_modality"
                # after unsubscribing, no more camera frames
                sub.setsockopt(zmq.UNSUBSCRIBE, b"camera/overhead/segmentation")
                time.sleep(0.3)
                c.step(1)  # lets the server hear it
                while sub.poll(200):
                    sub.recv_multipart()
                c.step(100)
                topics = []
                while sub.poll(500):
                    topics.append(sub.recv_multipart()[0])
                assert topics == [b"state"] * 10
        finally:
            sub.close(linger=0)
            ctx.term()


# recording -------------------------------------------------------------------------------
TWIN = [sys.executable, "-m", "twin.cli"]


def _twin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TWIN, *args], cwd=ROOT, capture_output=True, text=True, timeout=90, check=False
    )


@pytest.fixture(scope="module")
def camera_recording(tmp_path_factory) -> Path:
    """`twin run --record` of the small camera line for 2 simulated seconds."""
    folder = tmp_path_factory.mktemp("rec")
    config = small_line_file(folder)
    path = folder / "cameras.mcap"
    done = _twin("run", str(config), "--duration", "2", "--quiet", "--record", str(path))
    assert done.returncode == 0, done.stderr
    return path


def pybullet_rotation(q: list[float]) -> list[list[float]]:
    """The 3x3 rotation of a quaternion [x, y, z, w], rows of the matrix."""
    import pybullet

    m = pybullet.getMatrixFromQuaternion(q)
    return [list(m[0:3]), list(m[3:6]), list(m[6:9])]


def _protobuf_class(schema):
    """The message class a protobuf schema (a FileDescriptorSet) describes, as a viewer
    builds it."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    files = descriptor_pb2.FileDescriptorSet.FromString(schema.data)
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.name))


def test_recorded_frames_are_foxglove_images_with_calibration(camera_recording):
    from mcap.reader import make_reader

    with open(camera_recording, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        channels = {ch.topic: ch for ch in summary.channels.values()}
        expected = {
            "camera/overhead/rgb": "foxglove.RawImage",
            "camera/overhead/depth": "foxglove.RawImage",
            "camera/overhead/segmentation": "foxglove.RawImage",
            "camera/overhead/calibration": "foxglove.CameraCalibration",
            "camera/overhead/pose": "foxglove.FrameTransform",
            "camera/wrist/rgb": "foxglove.CompressedImage",
            "camera/wrist/depth": "foxglove.RawImage",
            "camera/wrist/calibration": "foxglove.CameraCalibration",
            "camera/wrist/pose": "foxglove.FrameTransform",
        }
        for topic, schema_name in expected.items():
            schema = summary.schemas[channels[topic].schema_id]
            assert (channels[topic].message_encoding, schema.encoding) == ("protobuf", "protobuf")
            assert schema.name == schema_name
        counts = {
            summary.channels[c].topic: n
            for c, n in summary.statistics.channel_message_counts.items()
        }
        # 2 s: 10 frames at 5 Hz, 20 at 10 Hz, one calibration and one pose per frame instant
        for camera, n in (("overhead", 10), ("wrist", 20)):
            for kind in ("rgb", "calibration", "pose"):
                assert counts[f"camera/{camera}/{kind}"] == n, (camera, kind)
        decoded = {}
        poses: dict[str, list] = {"overhead": [], "wrist": []}
        for schema, channel, message in reader.iter_messages(topics=list(expected)):
            decoded[channel.topic] = (_protobuf_class(schema).FromString(message.data), message)
            if channel.topic.endswith("/pose"):
                poses[channel.topic.split("/")[1]].append(decoded[channel.topic][0])
    # each pose places the camera's optical frame (z forward) in the world
    for camera, transforms in poses.items():
        for tf in transforms:
            assert (tf.parent_frame_id, tf.child_frame_id) == ("world", camera)
            q = [tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w]
            assert np.linalg.norm(q) == pytest.approx(1.0)
    overhead = poses["overhead"][-1]
    t = overhead.translation
    assert [t.x, t.y, t.z] == pytest.approx([0.05, -0.45, 1.45])  # where the config puts it
    r = overhead.rotation
    forward = np.array(pybullet_rotation([r.x, r.y, r.z, r.w]))[:, 2]
    assert forward == pytest.approx([0.0, 0.0, -1.0], abs=1e-6)  # looking down at the belt
    rgb, message = decoded["camera/overhead/rgb"]
    assert (rgb.width, rgb.height, rgb.encoding, rgb.step) == (64, 48, "rgb8", 192)
    assert rgb.frame_id == "overhead" and len(rgb.data) == 64 * 48 * 3
    assert rgb.timestamp.seconds * 10**9 + rgb.timestamp.nanos == message.log_time == 2 * 10**9
    depth, _ = decoded["camera/overhead/depth"]
    metres = np.frombuffer(depth.data, dtype="<f4")
    assert depth.encoding == "32FC1"
    # the belt 0.7 m below the camera, the floor 1.45 m
    assert metres.min() < 0.75 and metres.max() == pytest.approx(1.45, abs=0.005)
    seg, _ = decoded["camera/overhead/segmentation"]
    assert seg.encoding == "mono16" and seg.step == 128
    calib, _ = decoded["camera/overhead/calibration"]
    assert calib.width == 64 and calib.K[0] == pytest.approx(24 / np.tan(np.radians(22.5)))
    assert list(calib.K[2:6]) == [32.0, 0.0, calib.K[4], 24.0]
    png, _ = decoded["camera/wrist/rgb"]
    assert png.format == "png" and png.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_replay_verifies_the_recorded_images(camera_recording, tmp_path):
    done = _twin("replay", str(camera_recording), "--verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: 20 states identical" in done.stdout
    assert "70 camera images identical" in done.stdout  # 3 x 10 overhead, 2 x 20 wrist

    # one pixel of one depth image changed: verify names the frame
    def flip_middle_bit(data: bytes) -> bytes:
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]

    tampered = tmp_path / "tampered.mcap"
    # the frame at 0.8 s, step 80
    _rewrite(camera_recording, tampered, "camera/overhead/depth", 4, flip_middle_bit)
    done = _twin("replay", str(tampered), "--verify")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "step 80: camera 'overhead' depth: the image differs" in done.stdout

    # the wrist camera's pose at 0.5 s moved by a nanometre: verify names the instant
    moved = tmp_path / "moved.mcap"
    _rewrite(camera_recording, moved, "camera/wrist/pose", 5, _nudge_pose)
    done = _twin("replay", str(moved), "--verify")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "step 50: camera 'wrist' rgb: the camera's pose differs" in done.stdout


def _nudge_pose(data: bytes) -> bytes:
    from foxglove.messages import FrameTransform

    tf = _protobuf_class(FrameTransform.get_schema()).FromString(data)
    tf.translation.x += 1e-9
    return tf.SerializeToString()


def _rewrite(source: Path, target: Path, topic: str, nth: int, change) -> None:  # noqa: ANN001
    """Copy a recording with the nth message (1-based) of `topic` changed."""
    from mcap.reader import NonSeekingReader
    from mcap.writer import Writer

    with open(source, "rb") as f, open(target, "wb") as out:
        writer = Writer(out)
        writer.start()
        schemas: dict[int, int] = {}
        channels: dict[int, int] = {}
        seen = 0
        for schema, ch, msg in NonSeekingReader(f).iter_messages(log_time_order=False):
            if ch.id not in channels:
                if schema.id not in schemas:
                    schemas[schema.id] = writer.register_schema(
                        schema.name, schema.encoding, schema.data
                    )
                channels[ch.id] = writer.register_channel(
                    ch.topic, ch.message_encoding, schemas[schema.id]
                )
            data = msg.data
            if ch.topic == topic:
                seen += 1
                if seen == nth:
                    data = change(data)
            writer.add_message(channels[ch.id], msg.log_time, data, msg.publish_time)
        writer.finish()


def test_jpeg_frames_decode_close_to_the_raw_image_and_record_as_compressed_images():
    from twin.record import images
    from twin.vision.frames import frame_messages

    text = SMALL.replace('encoding = "png"', 'encoding = "jpeg"\njpeg_quality = 95')
    built = build_line(loads(text, "jpeg.toml"))
    try:
        built.step(100)
        wrist = built.line.devices["wrist"]
        raw = wrist.render(("rgb",))["rgb"]
        (frame,) = frame_messages(wrist, 100, 1.0, ("rgb",))
        assert frame.encoding == "jpeg" and frame.data[:2] == b"\xff\xd8"
        decoded = decode_image(frame).astype(int)
        assert decoded.shape == raw.shape and np.abs(decoded - raw).mean() < 6
        assert images.image_schema(frame)[0] == "foxglove.CompressedImage"
        assert b"jpeg" in images.image_message(frame, 10**9)
    finally:
        built.line.close()


def test_noise_has_the_configured_spread_and_depth_its_quantum(running_line):
    cam = running_line.line.devices["overhead"]  # rgb 2 levels, depth 1 mm, quantum 1 mm
    a, b = cam.render(("rgb", "depth")), cam.render(("rgb", "depth"))
    inside = (a["rgb"] > 10) & (a["rgb"] < 245)  # away from clipping
    diff = a["rgb"].astype(float) - b["rgb"].astype(float)
    assert diff[inside].std() == pytest.approx(2.0 * np.sqrt(2), rel=0.1)
    assert abs(diff[inside].mean()) < 0.1
    mm = a["depth"].astype(np.float64) * 1000
    assert np.allclose(mm, np.rint(mm), atol=1e-3)
    assert not np.array_equal(a["depth"], b["depth"])
