"""What a client sees of the arm: its signals, commands, job results and activities.

Declared once here; `describe`, the signal schema and the docs derive from these.
"""

from __future__ import annotations

import numpy as np

from twin.devices.base import Arg, CommandSpec, SignalSpec

RESULTS = (
    "none",
    "running",
    "ok",
    "no_part",
    "pick_failed",
    "not_reached",
    "collision",
    "halted",
)
ACTIVITIES = (
    "idle",
    "moving",
    "moving_to_pick",
    "picking",
    "moving_to_place",
    "placing",
    "waiting",
    "halted",
)


SIGNALS = (
    SignalSpec(
        name="state",
        type="str",
        choices=("idle", "moving", "picking", "placing", "halted"),
        doc="what the arm's job is",
    ),
    SignalSpec(name="busy", type="bool", doc="a job is running"),
    SignalSpec(
        name="result",
        type="str",
        choices=RESULTS,
        doc="outcome of the last job (running while one runs; none before the first)",
    ),
    SignalSpec(name="jobs_done", type="int", min=0, doc="jobs finished (any result)"),
    SignalSpec(name="vacuum", type="bool"),
    SignalSpec(name="holding", type="int|null", doc="id of the part on the cup"),
    SignalSpec(
        name="activity",
        type="str",
        choices=ACTIVITIES,
        doc="what the robot is doing, for utilisation (waiting: idle holding a part)",
    ),
    SignalSpec(
        name="planned_duration",
        type="float",
        unit="s",
        min=0.0,
        doc="the motion profile's duration of the current (or last) job",
    ),
    SignalSpec(
        name="seated",
        type="bool",
        doc="the part of the last place sits flat on its point (false until a place)",
    ),
    SignalSpec(name="joint_positions", type="floats", unit="rad", scan=False),
    SignalSpec(name="joint_velocities", type="floats", unit="rad/s", scan=False),
    SignalSpec(name="tool_position", type="floats", unit="m", scan=False),
)


def command_specs(lower: np.ndarray, upper: np.ndarray) -> tuple[CommandSpec, ...]:
    """The arm's commands; `move_joints` states the model's joint limits."""
    n = len(lower)
    pos = Arg(name="position", type="vec3", unit="m", doc="tool (cup) point in world frame")
    limits = list(zip(lower.round(4).tolist(), upper.round(4).tolist()))
    return (
        CommandSpec(
            name="move_joints",
            args=(
                Arg(
                    name="positions",
                    type="floats",
                    length=n,
                    unit="rad",
                    doc=f"limits per joint: {limits}",
                ),
            ),
            doc="synchronised joint move, time-optimal within the model's joint speed "
            "limits and the configured joint acceleration and jerk",
        ),
        CommandSpec(
            name="move_to",
            args=(pos,),
            doc="straight-line tool move, cup pointing down, S-curve profile; result ok, "
            "not_reached (with distance) or collision (with hit)",
        ),
        CommandSpec(
            name="pick",
            args=(pos,),
            doc="locate the part at position, travel above it (blended), turn the cup to "
            "its yaw, search down until the cup seals, lift to travel height; result ok, "
            "no_part, or pick_failed after pick_attempts tries or for a tilted part",
        ),
        CommandSpec(
            name="place",
            args=(
                pos,
                Arg(
                    name="yaw",
                    type="float",
                    unit="rad",
                    optional=True,
                    doc="the part's yaw on the point (default: square to the arm's base)",
                ),
            ),
            doc="carry the held part above position, lower it until its bottom is at "
            "position's z, release, lift, check it is seated; position is the surface "
            "point",
        ),
        CommandSpec(name="vacuum", args=(Arg(name="on", type="bool"),), doc="switch the cup"),
        CommandSpec(name="home", doc="joint move to the home pose"),
        CommandSpec(name="halt", doc="abort the job and hold the current pose"),
    )
