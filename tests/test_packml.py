"""Tests for the PackML state machine (twin.production.packml)."""

from __future__ import annotations

import pytest

from twin.production.packml import (
    STATE_COMPLETE,
    TRANSITIONS,
    Command,
    IllegalCommand,
    PackMLMachine,
    State,
)

S, C = State, Command

ALL_PAIRS = [(s, c) for s in State for c in Command]
LEGAL_PAIRS = [p for p in ALL_PAIRS if p in TRANSITIONS]
ILLEGAL_PAIRS = [p for p in ALL_PAIRS if p not in TRANSITIONS]
WAIT_STATES = [s for s in State if s not in STATE_COMPLETE]


def _ids(pair: tuple[State, Command]) -> str:
    return f"{pair[0].value}-{pair[1].value}"


def test_enums_have_standard_values() -> None:
    assert len(State) == 17
    assert [c.value for c in Command] == [
        "Reset",
        "Start",
        "Stop",
        "Hold",
        "Unhold",
        "Suspend",
        "Unsuspend",
        "Abort",
        "Clear",
    ]
    assert State("Execute") is S.EXECUTE


def test_table_shape() -> None:
    stoppable = {s for (s, c) in TRANSITIONS if c is C.STOP}
    assert stoppable == set(State) - {S.STOPPED, S.STOPPING, S.ABORTING, S.ABORTED, S.CLEARING}
    abortable = {s for (s, c) in TRANSITIONS if c is C.ABORT}
    assert abortable == set(State) - {S.ABORTING, S.ABORTED}
    # Execute, and (ISA-TR88.00.02-2015) a unit waiting in the Suspended branch
    holdable = {s for (s, c) in TRANSITIONS if c is C.HOLD}
    assert holdable == {S.EXECUTE, S.SUSPENDING, S.SUSPENDED, S.UNSUSPENDING}
    assert set(WAIT_STATES) == {S.STOPPED, S.IDLE, S.HELD, S.SUSPENDED, S.COMPLETE, S.ABORTED}


def test_happy_path_to_complete_and_back_to_idle() -> None:
    m = PackMLMachine()
    assert m.state is S.STOPPED
    assert m.command(C.RESET) is S.RESETTING
    assert m.is_acting
    assert m.state_complete() is S.IDLE
    assert not m.is_acting
    assert m.command(C.START) is S.STARTING
    assert m.state_complete() is S.EXECUTE
    assert not m.is_acting  # Execute has an SC but is not an acting state
    assert m.state_complete() is S.COMPLETING
    assert m.state_complete() is S.COMPLETE
    assert m.command(C.RESET) is S.RESETTING
    assert m.state_complete() is S.IDLE
    assert m.state is S.IDLE


def test_hold_unhold() -> None:
    m = PackMLMachine(S.EXECUTE)
    assert m.command(C.HOLD) is S.HOLDING
    assert m.state_complete() is S.HELD
    assert m.allowed_commands() == (C.STOP, C.UNHOLD, C.ABORT)
    assert m.command(C.UNHOLD) is S.UNHOLDING
    assert m.state_complete() is S.EXECUTE


def test_suspend_unsuspend() -> None:
    m = PackMLMachine(S.EXECUTE)
    assert m.command(C.SUSPEND) is S.SUSPENDING
    assert m.state_complete() is S.SUSPENDED
    with pytest.raises(IllegalCommand):
        m.command(C.START)
    assert m.command(C.UNSUSPEND) is S.UNSUSPENDING
    assert m.state_complete() is S.EXECUTE


def test_a_suspended_unit_can_be_held_and_comes_back_through_execute() -> None:
    m = PackMLMachine(S.SUSPENDED)
    assert m.command(C.HOLD) is S.HOLDING
    assert m.state_complete() is S.HELD
    assert m.command(C.UNHOLD) is S.UNHOLDING
    assert m.state_complete() is S.EXECUTE


@pytest.mark.parametrize("state", [s for (s, c) in LEGAL_PAIRS if c is C.STOP])
def test_stop_from_each_legal_state(state: State) -> None:
    m = PackMLMachine(state)
    assert m.command(C.STOP) is S.STOPPING
    assert m.state_complete() is S.STOPPED


def test_abort_and_clear() -> None:
    m = PackMLMachine(S.EXECUTE)
    assert m.command(C.ABORT) is S.ABORTING
    assert m.state_complete() is S.ABORTED
    assert m.allowed_commands() == (C.CLEAR,)
    assert m.command(C.CLEAR) is S.CLEARING
    assert m.state_complete() is S.STOPPED


@pytest.mark.parametrize(("state", "cmd"), LEGAL_PAIRS, ids=[_ids(p) for p in LEGAL_PAIRS])
def test_every_legal_pair_goes_to_table_target(state: State, cmd: Command) -> None:
    m = PackMLMachine(state)
    assert cmd in m.allowed_commands()
    assert m.command(cmd) is TRANSITIONS[(state, cmd)]
    assert m.state is TRANSITIONS[(state, cmd)]


@pytest.mark.parametrize(("state", "cmd"), ILLEGAL_PAIRS, ids=[_ids(p) for p in ILLEGAL_PAIRS])
def test_every_illegal_pair_raises_without_change(state: State, cmd: Command) -> None:
    m = PackMLMachine(state)
    seen: list[tuple[State, State, str]] = []
    m.on_transition = lambda *a: seen.append(a)
    with pytest.raises(IllegalCommand) as info:
        m.command(cmd)
    err = info.value
    assert isinstance(err, ValueError)
    assert state.value in str(err)
    assert cmd.value in str(err)
    assert (err.command, err.state) == (cmd, state)
    assert err.allowed == m.allowed_commands()
    assert cmd not in err.allowed
    assert m.state is state
    assert seen == []


def test_illegal_message_format() -> None:
    m = PackMLMachine(S.EXECUTE)
    with pytest.raises(IllegalCommand) as info:
        m.command("Start")
    assert str(info.value) == (
        "command Start is not allowed in state Execute (allowed: Stop, Hold, Suspend, Abort)"
    )
    assert info.value.allowed == (C.STOP, C.HOLD, C.SUSPEND, C.ABORT)


@pytest.mark.parametrize("state", WAIT_STATES)
def test_state_complete_in_wait_state_raises(state: State) -> None:
    m = PackMLMachine(state)
    seen: list[tuple[State, State, str]] = []
    m.on_transition = lambda *a: seen.append(a)
    with pytest.raises(ValueError, match=state.value):
        m.state_complete()
    assert m.state is state
    assert seen == []


@pytest.mark.parametrize("state", list(STATE_COMPLETE))
def test_state_complete_targets(state: State) -> None:
    m = PackMLMachine(state)
    assert m.is_acting is (state is not S.EXECUTE)
    assert m.state_complete() is STATE_COMPLETE[state]


def test_allowed_commands_in_enum_order() -> None:
    order = list(Command)
    for state in State:
        allowed = PackMLMachine(state).allowed_commands()
        assert list(allowed) == sorted(allowed, key=order.index)
        assert set(allowed) == {c for c in Command if (state, c) in TRANSITIONS}
    assert PackMLMachine(S.STOPPED).allowed_commands() == (C.RESET, C.ABORT)


def test_listener_sees_each_transition() -> None:
    m = PackMLMachine()
    seen: list[tuple[State, State, str]] = []

    def listener(old: State, new: State, cause: str) -> None:
        assert m.state is new  # state already updated when notified
        seen.append((old, new, cause))

    m.on_transition = listener
    m.command(C.RESET)
    m.state_complete()
    m.command("start")
    m.state_complete()
    m.force(S.HELD)
    m.command(C.ABORT)
    assert seen == [
        (S.STOPPED, S.RESETTING, "Reset"),
        (S.RESETTING, S.IDLE, "SC"),
        (S.IDLE, S.STARTING, "Start"),
        (S.STARTING, S.EXECUTE, "SC"),
        (S.EXECUTE, S.HELD, "force"),
        (S.HELD, S.ABORTING, "Abort"),
    ]


def test_force_bypasses_table() -> None:
    m = PackMLMachine(S.IDLE)
    assert m.force(S.HELD) is S.HELD
    assert m.state is S.HELD
    assert m.command(C.UNHOLD) is S.UNHOLDING


@pytest.mark.parametrize("text", ["start", "Start", "START", "sTaRt"])
def test_string_commands_case_insensitive(text: str) -> None:
    m = PackMLMachine(S.IDLE)
    assert m.command(text) is S.STARTING


def test_unknown_command_string_raises_naming_it() -> None:
    m = PackMLMachine(S.IDLE)
    with pytest.raises(ValueError, match="frobnicate") as info:
        m.command("frobnicate")
    assert not isinstance(info.value, IllegalCommand)
    for c in Command:
        assert c.value in str(info.value)  # names the valid commands
    assert m.state is S.IDLE
