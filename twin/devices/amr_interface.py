"""What a client sees of an AMR: its signals, commands, states and move results.

Declared once here; `describe`, the signal schema and the docs derive from these.
"""

from __future__ import annotations

from twin.devices.base import Arg, CommandSpec, SignalSpec

STATES = (
    "idle",  # at a node (or stopped on a lane after a move ended), ready for a command
    "driving",  # on a move along the route network (turning at nodes included)
    "docking",  # creeping from a dock's approach node onto the dock
    "docked",  # on a dock, within its tolerance
    "undocking",  # creeping back from the dock to its approach node
    "charging",  # on a charger node, charging
    "stopped",  # brought to rest by `stop`, a safe stop or an e-stop
    "blocked",  # a move waits: something is inside the protective field
    "battery_empty",  # the battery ran flat: it cannot drive until charged
)
RESULTS = ("", "ok", "blocked", "halted", "battery_empty")
SAFETY = ("clear", "warning", "protective")

SIGNALS = (
    SignalSpec(name="x", type="float", unit="m", doc="chassis centre on the floor"),
    SignalSpec(name="y", type="float", unit="m"),
    SignalSpec(name="yaw", type="float", unit="rad", doc="heading, -pi to pi"),
    SignalSpec(name="speed", type="float", unit="m/s", doc="along the heading, signed"),
    SignalSpec(name="yaw_rate", type="float", unit="rad/s"),
    SignalSpec(name="state", type="str", choices=STATES),
    SignalSpec(name="node", type="str", doc="the node it is at or last passed; '' on a lane"),
    SignalSpec(name="goal", type="str", doc="where the current move ends (node or dock); ''"),
    SignalSpec(name="dock", type="str", attr="dock_id", doc="the dock it is docked at, or ''"),
    SignalSpec(name="battery", type="float", min=0.0, max=1.0, doc="state of charge"),
    SignalSpec(name="load", type="int|null", doc="id of the part on the deck"),
    SignalSpec(name="load_type", type="str", doc="its part type, or ''"),
    SignalSpec(name="load_mass", type="float", unit="kg", min=0.0, doc="mass on the deck"),
    SignalSpec(
        name="overloaded", type="bool", doc="load_mass above max_payload: it will not drive"
    ),
    SignalSpec(
        name="safety",
        type="str",
        choices=SAFETY,
        doc="the safety field: warning slows to warning_speed, protective stops",
    ),
    SignalSpec(name="moves_done", type="int", min=0, doc="moves ended (any result)"),
    SignalSpec(
        name="result",
        type="str",
        choices=RESULTS,
        doc="outcome of the last move ('' before the first)",
    ),
)


def command_specs(nodes: tuple[str, ...], docks: tuple[str, ...]) -> tuple[CommandSpec, ...]:
    """The AMR's commands; the network's nodes and docks are the values they accept."""
    return (
        CommandSpec(
            name="go_to",
            args=(Arg(name="node", type="str", choices=nodes, doc="a node of the route network"),),
            doc="drive the shortest route to the node: turn in place at nodes, straight along "
            "lanes; refused (nothing applied) with bad_value for an unknown node, unreachable "
            "when no route leads there, docked while on a dock, overloaded",
        ),
        CommandSpec(
            name="go_along",
            args=(
                Arg(
                    name="nodes",
                    type="strs",
                    choices=nodes,
                    doc="adjacent nodes; the first may be the node it is at",
                ),
            ),
            doc="drive exactly this route (each step a lane), e.g. segment by segment as a "
            "traffic manager reserves them",
        ),
        CommandSpec(
            name="dock",
            args=(
                Arg(
                    name="dock",
                    type="str",
                    choices=docks,
                    doc="a dock whose approach node it is at",
                ),
            ),
            doc="creep onto the dock at dock_speed, ending with the dock's heading; only from "
            "the dock's approach node (not_at_dock) and onto a free dock (dock_occupied)",
        ),
        CommandSpec(name="undock", doc="creep back from the dock to its approach node"),
        CommandSpec(
            name="charge",
            doc="charge on the charger at this node up to battery.full (not_at_charger)",
        ),
        CommandSpec(name="stop", doc="controlled stop at max_deceleration; the move ends halted"),
    )
