"""PackML (ISA-88 / ISA-TR88.00.02) unit state machine.

Pure logic: no physics, no I/O, no clock. The owner (a station, the line) drives it with
commands and "state complete" (SC) signals and listens for transitions to publish events.

States
    Wait states (no SC; leave only by command): Stopped, Idle, Held, Suspended, Complete,
    Aborted. Execute is also waited in, but it has an SC (the unit finished its work).
    Acting states (leave on SC): Starting, Resetting, Holding, Unholding, Suspending,
    Unsuspending, Stopping, Aborting, Clearing, Completing.

Command transitions (``TRANSITIONS``)
    ============  =========  ============
    from          command    to
    ============  =========  ============
    Stopped       Reset      Resetting
    Complete      Reset      Resetting
    Idle          Start      Starting
    Execute       Hold       Holding
    Suspending    Hold       Holding  [3]
    Suspended     Hold       Holding  [3]
    Unsuspending  Hold       Holding  [3]
    Held          Unhold     Unholding
    Execute       Suspend    Suspending
    Suspended     Unsuspend  Unsuspending
    Aborted       Clear      Clearing
    (any) [1]     Stop       Stopping
    (any) [2]     Abort      Aborting
    ============  =========  ============

    [1] every state except Stopped, Stopping, Aborting, Aborted, Clearing.
    [2] every state except Aborting, Aborted.

    [3] the ISA-TR88.00.02-2015 extension: a unit waiting in Suspended (starved or blocked)
        must still be holdable, e.g. when it breaks down or the line is held.

How a producing unit uses it (the stations of this twin): Execute is where it produces,
part after part; with no work (starved, or blocked by a finished part not taken) it
suspends itself and unsuspends when work arrives; Execute -> Completing -> Complete only
at the end of a batch or order.

State-complete transitions (``STATE_COMPLETE``)
    Starting->Execute, Resetting->Idle, Holding->Held, Unholding->Execute,
    Suspending->Suspended, Unsuspending->Execute, Stopping->Stopped, Aborting->Aborted,
    Clearing->Stopped, Completing->Complete, Execute->Completing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

__all__ = [
    "STATE_COMPLETE",
    "TRANSITIONS",
    "Command",
    "IllegalCommand",
    "PackMLMachine",
    "State",
    "TransitionListener",
    "parse_command",
]


class State(enum.StrEnum):
    """The 17 standard PackML states; values are the standard display names."""

    STOPPED = "Stopped"
    STARTING = "Starting"
    IDLE = "Idle"
    SUSPENDING = "Suspending"
    SUSPENDED = "Suspended"
    UNSUSPENDING = "Unsuspending"
    EXECUTE = "Execute"
    STOPPING = "Stopping"
    ABORTING = "Aborting"
    ABORTED = "Aborted"
    HOLDING = "Holding"
    HELD = "Held"
    UNHOLDING = "Unholding"
    COMPLETING = "Completing"
    COMPLETE = "Complete"
    RESETTING = "Resetting"
    CLEARING = "Clearing"


class Command(enum.StrEnum):
    """PackML commands (the order here is the order of ``allowed_commands``)."""

    RESET = "Reset"
    START = "Start"
    STOP = "Stop"
    HOLD = "Hold"
    UNHOLD = "Unhold"
    SUSPEND = "Suspend"
    UNSUSPEND = "Unsuspend"
    ABORT = "Abort"
    CLEAR = "Clear"


# States from which Stop is NOT accepted: already stopping/stopped, or inside the abort branch
# (Abort outranks Stop, and Clearing leads to Stopped anyway).
_NOT_STOPPABLE = frozenset(
    {State.STOPPED, State.STOPPING, State.ABORTING, State.ABORTED, State.CLEARING}
)
# Abort is accepted everywhere except where the unit is already aborting/aborted.
_NOT_ABORTABLE = frozenset({State.ABORTING, State.ABORTED})


def _build_transitions() -> dict[tuple[State, Command], State]:
    table: dict[tuple[State, Command], State] = {
        (State.STOPPED, Command.RESET): State.RESETTING,
        (State.COMPLETE, Command.RESET): State.RESETTING,
        (State.IDLE, Command.START): State.STARTING,
        (State.EXECUTE, Command.HOLD): State.HOLDING,
        (State.SUSPENDING, Command.HOLD): State.HOLDING,
        (State.SUSPENDED, Command.HOLD): State.HOLDING,
        (State.UNSUSPENDING, Command.HOLD): State.HOLDING,
        (State.HELD, Command.UNHOLD): State.UNHOLDING,
        (State.EXECUTE, Command.SUSPEND): State.SUSPENDING,
        (State.SUSPENDED, Command.UNSUSPEND): State.UNSUSPENDING,
        (State.ABORTED, Command.CLEAR): State.CLEARING,
    }
    for state in State:
        if state not in _NOT_STOPPABLE:
            table[(state, Command.STOP)] = State.STOPPING
        if state not in _NOT_ABORTABLE:
            table[(state, Command.ABORT)] = State.ABORTING
    return table


TRANSITIONS: dict[tuple[State, Command], State] = _build_transitions()
"""Command transitions: ``(from_state, command) -> to_state``."""

STATE_COMPLETE: dict[State, State] = {
    State.STARTING: State.EXECUTE,
    State.RESETTING: State.IDLE,
    State.HOLDING: State.HELD,
    State.UNHOLDING: State.EXECUTE,
    State.SUSPENDING: State.SUSPENDED,
    State.UNSUSPENDING: State.EXECUTE,
    State.STOPPING: State.STOPPED,
    State.ABORTING: State.ABORTED,
    State.CLEARING: State.STOPPED,
    State.COMPLETING: State.COMPLETE,
    # Execute is a wait state for commands, but the unit itself signals "work done".
    State.EXECUTE: State.COMPLETING,
}
"""State-complete (SC) transitions: ``from_state -> to_state``."""

# Acting states: those that end on their own (SC). Execute has an SC but is not "acting".
ACTING_STATES: frozenset[State] = frozenset(STATE_COMPLETE) - {State.EXECUTE}

TransitionListener = Callable[[State, State, str], None]
"""Called as ``(old, new, cause)``; cause is the command value, ``"SC"`` or ``"force"``."""

_COMMANDS_BY_LOWER = {c.value.lower(): c for c in Command}


def allowed_commands(state: State) -> tuple[Command, ...]:
    """Commands accepted in ``state``, in ``Command`` enum order."""
    return tuple(c for c in Command if (state, c) in TRANSITIONS)


def parse_command(cmd: Command | str) -> Command:
    """Turn a ``Command`` or a case-insensitive command name into a ``Command``."""
    if isinstance(cmd, Command):
        return cmd
    found = _COMMANDS_BY_LOWER.get(str(cmd).strip().lower())
    if found is None:
        valid = ", ".join(c.value for c in Command)
        raise ValueError(f"unknown PackML command {cmd!r} (valid: {valid})")
    return found


class IllegalCommand(ValueError):
    """A command that is not legal in the machine's current state."""

    def __init__(self, command: Command, state: State, allowed: tuple[Command, ...]) -> None:
        self.command = command
        self.state = state
        self.allowed = allowed
        names = ", ".join(c.value for c in allowed) or "none"
        super().__init__(
            f"command {command.value} is not allowed in state {state.value} (allowed: {names})"
        )


class PackMLMachine:
    """One PackML unit state machine.

    ``on_transition`` (optional) is called after every state change as ``(old, new, cause)``
    so the owner can publish events; it is not called when a command is rejected.
    """

    def __init__(self, initial: State = State.STOPPED) -> None:
        # plain attributes, kept by _set: the step loop reads them several times a step
        self.state: State = State(initial)  # the current state (change it by command)
        self.state_value: str = self.state.value  # its name
        self.is_acting: bool = self.state in ACTING_STATES  # one that ends on its own (SC)
        self.on_transition: TransitionListener | None = None

    def __repr__(self) -> str:
        return f"PackMLMachine(state={self.state.value})"

    def allowed_commands(self) -> tuple[Command, ...]:
        """Commands accepted in the current state, in ``Command`` enum order."""
        return allowed_commands(self.state)

    def can(self, cmd: Command | str) -> bool:
        """Whether ``cmd`` would be accepted now (unknown names still raise ValueError)."""
        return (self.state, parse_command(cmd)) in TRANSITIONS

    def command(self, cmd: Command | str) -> State:
        """Apply ``cmd`` and return the new state; raise IllegalCommand (no change) if illegal."""
        command = parse_command(cmd)
        target = TRANSITIONS.get((self.state, command))
        if target is None:
            raise IllegalCommand(command, self.state, self.allowed_commands())
        self._set(target, command.value)
        return target

    def state_complete(self) -> State:
        """Apply the SC transition of the current state and return the new state.

        Raises ValueError (no change) in a wait state that has no SC, e.g. Idle or Held.
        """
        target = STATE_COMPLETE.get(self.state)
        if target is None:
            raise ValueError(
                f"state {self.state.value} has no state-complete transition "
                f"(it waits for a command; allowed: "
                f"{', '.join(c.value for c in self.allowed_commands()) or 'none'})"
            )
        self._set(target, "SC")
        return target

    def force(self, state: State) -> State:
        """Set ``state`` unconditionally (safe-state logic, e.g. Held on a watchdog trip).

        Bypasses the table on purpose; the listener still sees it with cause ``"force"``.
        """
        self._set(State(state), "force")
        return self.state

    def _set(self, new: State, cause: str) -> None:
        old = self.state
        # Update before notifying so a listener reading ``state`` sees the new value.
        self.state = new
        self.state_value = new.value
        self.is_acting = new in ACTING_STATES
        if self.on_transition is not None:
            self.on_transition(old, new, cause)
