"""How a controller drives each device kind, and what the PackML states allow: published by
`describe` (and documented in docs/protocol.md) so a controller can be written from the
protocol alone. The PackML part is derived from `twin.production.packml`'s transition tables.
"""

from __future__ import annotations

from typing import Any

from twin.production.packml import STATE_COMPLETE, TRANSITIONS, Command, State

# per device kind: the steps a controller follows, in order; signals and commands by name
RECIPES: dict[str, list[str]] = {
    "line": [
        "The line is a PackML unit of its own (device 'line'): it starts itself, Stopped -> "
        "Resetting -> Idle -> Starting -> Execute, in its first steps.",
        "The built-in controller acts only while the line is in Execute. Device commands are "
        "accepted in every line state except during an e-stop (see the e-stop rule).",
        "line hold, stop or abort put every device in its safe state (belts stop, arms halt, "
        "producing stations go to Held), line abort aborts every station; line start/unhold/"
        "unsuspend let it run again.",
        "Without the built-in controller (--no-builtin-controller) the devices still run by "
        "themselves: sources keep spawning parts at their interval (disable them to stop), "
        "belts keep their configured 'running', stations wait in Stopped, arms stay at home.",
    ],
    "station": [
        "reset: Stopped -> Resetting -> Idle after transition_time; start: Idle -> Starting -> "
        "Execute. Once, not per part: in Execute the station works part after part.",
        "load while load_ok (the interlock: no part, not broken down): an arm places a part "
        "on the fixture (its fixture_point). Once at rest it is judged: seated (flat and "
        "centred) parts are processed for cycle_time (progress); a part that is not seated "
        "is not processed (seated false, event part_not_seated): take it off and place it "
        "again.",
        "with no work (starved: no part; blocked: part_done, a finished part on it) the "
        "station suspends itself (Suspending -> Suspended) and unsuspends itself when a "
        "seated part arrives; suspend/unsuspend by command keep it suspended until unsuspend.",
        "unload while unload_ok (a finished or unseated part, not broken down): an arm picks "
        "the part at the fixture_point until part_present is false. No reset between parts.",
        "a breakdown (fault set) holds the station in every producing state and it unholds "
        "itself when repaired; a safe stop holds it too (send unhold); an e-stop aborts it "
        "(send clear, then reset and start). Complete only ends a batch (batch_size parts): "
        "reset it once emptied.",
    ],
    "conveyor": [
        "run (at speed, set_speed/set_direction any time); parts ride on the moving surface.",
        "with an end stop, parts accumulate against it: on a plain belt stop it once the "
        "pick eye has been blocked for a moment, so the part rests at the stop, and run it "
        "again after the pick. A zoned belt (zones > 1) does this by itself: each zone "
        "stops its part at the end stop or one zone short of the next part (queued counts "
        "them), so just keep it running.",
    ],
    "photoeye": [
        "read blocked (and part, the part in the beam); count counts rising edges.",
        "the pick point of a part held at the eye is the eye's pick_point in describe.",
    ],
    "arm": [
        "pick at a teach point (position, the surface point under the part): busy goes true, "
        "the arm searches down until the cup seals, lifts; wait until busy is false and "
        "jobs_done has counted up; result ok means holding is the part id, no_part that "
        "nothing was there.",
        "place at a teach point (the surface point where the part's bottom goes): wait the "
        "same way; the part is released and holding is null.",
        "a job interrupted by halt or a safe stop ends with result halted; a part still held "
        "can be placed again. move_to, move_joints and home move without the vacuum.",
    ],
    "source": [
        "parts appear at the drop_point at interval (with jitter) while enabled, when the "
        "drop zone is clear (blocked otherwise); spawn puts one part down now.",
        "a source at a dock puts each part on the deck of the AMR docked there, when one with "
        "an empty deck is (blocked otherwise).",
    ],
    "amr": [
        "go_to a node (or go_along adjacent nodes): state driving, it turns in place at nodes "
        "and drives straight along lanes; the move ends with moves_done counting up, result "
        "ok and state idle at the node (goal ''). Refused at once: bad_value (unknown node), "
        "unreachable (no route), docked (undock first), overloaded, battery_empty.",
        "dock (at the dock's approach node, the dock free): state docking, then docked; "
        "undock: back to the approach node. A source, sink or arm loads and unloads the deck "
        "while it is docked (load, load_type, load_mass).",
        "the safety field slows it (safety warning) and stops it (protective, state blocked); "
        "blocked for blocked_timeout, the move ends result blocked and it stands where it is "
        "(node '' on a lane): send a new go_to. stop, a safe stop or an e-stop end a move "
        "halted (state stopped).",
        "charge at a charger node (state charging until battery reaches full); at battery 0 "
        "it stops (state battery_empty) and only charge is accepted.",
    ],
    "dock": [
        "read occupied and amr (the AMR docked there), part and part_type (on its deck), "
        "empty_amr (docked with an empty deck: place a part) and delivery (it brought its "
        "part here: pick it). Nothing to command.",
    ],
    "camera": [
        "no commands: subscribe to camera/<id>/<modality> for frames at the camera's rate, or "
        "send get_image (camera, modality) for one frame now; describe gives its intrinsics "
        "and pose (see docs/protocol.md, Cameras).",
    ],
    "inspection": [
        "nothing to command: each part that blocks the inspection's eye is photographed and "
        "judged (event part_inspected, signals passed/rejected); a rejected part's quality "
        "is reject, so the sink counts it as a reject.",
        "with inspector = 'external': on inspection_requested (part, camera, timeout) look "
        "with get_image (rgb and segmentation: the part's pixels) and send the station's "
        "verdict command (part, verdict pass/reject) within timeout s of simulated time; "
        "silence gets the on_error verdict and an inspection_failed event.",
    ],
    "sink": [
        "a part whose centre enters the zone is completed: count and good count up, "
        "last_part and last_lead_time say which and how long it took.",
        "a sink at a dock completes the part an AMR delivers there as soon as it has docked.",
    ],
}


def packml_description() -> dict[str, Any]:
    """States, commands (as sent: lower case), and which command is legal in which state."""
    legal: dict[str, list[str]] = {s.value: [] for s in State}
    for (state, command), _ in TRANSITIONS.items():
        legal[state.value].append(command.value.lower())
    order = [c.value.lower() for c in Command]
    return {
        "states": [s.value for s in State],
        "commands": order,
        "legal_commands": {s: sorted(cs, key=order.index) for s, cs in legal.items()},
        "transitions": [
            {"from": s.value, "command": c.value.lower(), "to": to.value}
            for (s, c), to in TRANSITIONS.items()
        ],
        "state_complete": [{"from": s.value, "to": to.value} for s, to in STATE_COMPLETE.items()],
    }
