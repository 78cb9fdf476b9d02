"""Vet a robot model before a line is built: it loads, it is an arm, and it has the links and
joints the config names.

The model is loaded once per process into a headless client of its own (collision shapes
only, which is what the build's loader validates too), its joint table is kept, and every
config that names the model is checked against that table. So `twin check` and every
command that loads a config refuse what building the arm would fail on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import msgspec
import pybullet
from pybullet_utils.bullet_client import BulletClient

from twin.sim.assets import resolve_asset
from twin.sim.quiet import quiet_stdout

_MOVABLE = (pybullet.JOINT_REVOLUTE, pybullet.JOINT_PRISMATIC)
_LIMIT_SLACK = 1e-6  # rad or m: a home exactly at a limit is within it


class ModelError(ValueError):
    """A robot model that the twin cannot build an arm from; `field` is the config field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Joint(msgspec.Struct, frozen=True):
    name: str
    movable: bool
    lower: float
    upper: float
    child_link: str


class ModelInfo(msgspec.Struct, frozen=True):
    joints: tuple[Joint, ...]

    @property
    def links(self) -> list[str]:
        """The links a tool can be on: every link but the fixed base."""
        return [j.child_link for j in self.joints]


def check_arm_model(
    model: str,
    tool_link: str,
    held_joints: Mapping[str, float],
    home: Sequence[float],
) -> ModelInfo:
    """Raise ModelError naming the field when an arm config does not fit its model."""
    try:
        path = resolve_asset(model)
    except FileNotFoundError as e:
        raise ModelError("model", str(e)) from None
    if path.suffix.lower() != ".urdf":
        raise ModelError("model", f"'{model}' is not a URDF file (*.urdf)")
    stat = path.stat()
    info = _load(str(path), stat.st_mtime_ns, stat.st_size)
    if info is None:
        raise ModelError("model", f"'{model}' cannot be loaded as a URDF robot model")
    movable = {j.name: j for j in info.joints if j.movable}
    if not movable:
        raise ModelError("model", f"'{model}' has no movable joints: it is not a robot arm")
    if tool_link not in info.links:
        raise ModelError(
            "tool_link", f"model '{model}' has no link '{tool_link}' (links: {_names(info.links)})"
        )
    for name, value in held_joints.items():
        joint = movable.get(name)
        if joint is None:
            raise ModelError(
                f"held_joints.{name}",
                f"model '{model}' has no movable joint '{name}' (movable: {_names(movable)})",
            )
        if not _within(joint, value):
            raise ModelError(
                f"held_joints.{name}",
                f"{value} is outside the joint's limits [{joint.lower}, {joint.upper}]",
            )
    arm = [j for j in info.joints if j.movable and j.name not in held_joints]
    if not arm:
        raise ModelError(
            "held_joints", f"every movable joint of '{model}' is held: no arm joints remain"
        )
    if len(home) != len(arm):
        raise ModelError(
            "home",
            f"{len(home)} values, but model '{model}' has {len(arm)} arm joints "
            f"({_names([j.name for j in arm])})",
        )
    for k, (joint, value) in enumerate(zip(arm, home)):
        if not _within(joint, value):
            raise ModelError(
                f"home[{k}]",
                f"{value} is outside the limits of joint '{joint.name}' "
                f"[{joint.lower}, {joint.upper}]",
            )
    return info


def shoulder_point(client, body: int, joints: Sequence[int]) -> list[float]:  # noqa: ANN001
    """World point of the shoulder of a loaded arm: the first of `joints` (from the base)
    whose axis is horizontal in its current pose; the base if none is. Reach is measured
    from there."""
    for j in joints:
        state = client.getLinkState(body, j, computeForwardKinematics=1)
        axis = client.rotateVector(state[5], client.getJointInfo(body, j)[13])
        if abs(axis[2]) < 0.5 * (math.hypot(*axis) or 1.0):
            return list(state[4])
    return list(client.getBasePositionAndOrientation(body)[0])


def shoulder_offset(
    model: str, held_joints: Mapping[str, float], home: Sequence[float]
) -> tuple[float, float, float]:
    """Where the shoulder of an arm of this (vetted, see check_arm_model) model is at its
    home pose, in its base frame: what the config's reach checks measure from."""
    path = resolve_asset(model)
    stat = path.stat()
    held = tuple(sorted(held_joints.items()))
    return _shoulder(str(path), stat.st_mtime_ns, stat.st_size, held, tuple(home))


@functools.lru_cache(maxsize=32)
def _shoulder(
    path: str, mtime_ns: int, size: int, held: tuple[tuple[str, float], ...], home: tuple
) -> tuple[float, float, float]:
    del mtime_ns, size  # only part of the cache key
    with quiet_stdout():
        c = BulletClient(connection_mode=pybullet.DIRECT)
    try:
        body = c.loadURDF(path, useFixedBase=True, flags=pybullet.URDF_IGNORE_VISUAL_SHAPES)
        held_by_name = dict(held)
        arm: list[int] = []
        for j in range(c.getNumJoints(body)):
            info = c.getJointInfo(body, j)
            if info[2] not in _MOVABLE:
                continue
            name = info[1].decode()
            value = held_by_name[name] if name in held_by_name else home[len(arm)]
            if name not in held_by_name:
                arm.append(j)
            c.resetJointState(body, j, value)
        x, y, z = shoulder_point(c, body, arm)
        return (x, y, z)
    finally:
        c.disconnect()


def _within(joint: Joint, value: float) -> bool:
    if not joint.lower < joint.upper:  # continuous joints have no limits (upper < lower)
        return math.isfinite(value)
    return joint.lower - _LIMIT_SLACK <= value <= joint.upper + _LIMIT_SLACK


def _names(names: Sequence[str] | Mapping[str, object], limit: int = 16) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")


@functools.lru_cache(maxsize=32)
def _load(path: str, mtime_ns: int, size: int) -> ModelInfo | None:
    """The joint table of a URDF, or None if pybullet cannot load it. Cached per file
    version (the mtime and size are part of the key), so a process pays once per model."""
    del mtime_ns, size  # only part of the cache key
    with quiet_stdout():
        client = pybullet.connect(pybullet.DIRECT)
    try:
        try:
            body = pybullet.loadURDF(
                path,
                useFixedBase=True,
                flags=pybullet.URDF_IGNORE_VISUAL_SHAPES,
                physicsClientId=client,
            )
        except pybullet.error:
            return None
        joints = []
        for j in range(pybullet.getNumJoints(body, physicsClientId=client)):
            info = pybullet.getJointInfo(body, j, physicsClientId=client)
            joints.append(
                Joint(
                    name=info[1].decode(),
                    movable=info[2] in _MOVABLE,
                    lower=float(info[8]),
                    upper=float(info[9]),
                    child_link=info[12].decode(),
                )
            )
        return ModelInfo(joints=tuple(joints))
    finally:
        pybullet.disconnect(client)
