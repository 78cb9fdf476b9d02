"""Where the twin runs for a Gymnasium env: in this process, or behind `twin serve --mode lockstep`.

Both back ends offer the same five operations (describe, reset, command, step, render) and
return the same `Snapshot`, so an env cannot tell them apart: same config, seed and command
sequence at the same steps give bit-identical snapshots (the server runs the same `Line`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np

from twin.config import LineConfig
from twin.devices.base import CommandError


class Snapshot(NamedTuple):
    """The line as an external controller sees it after a step (the protocol's `state`)."""

    time: float  # s of simulated time
    signals: dict[str, dict[str, Any]]
    parts: list[dict[str, Any]]  # id, type, position, orientation
    counts: dict[str, int]  # parts_spawned, parts_completed, wip


class Backend(Protocol):
    builtin_controller: bool

    def describe(self) -> list[dict[str, Any]]: ...
    def reset(self, seed: int) -> Snapshot: ...
    def command(self, device: str, command: str, args: dict[str, Any]) -> None: ...
    def step(self, n: int) -> Snapshot: ...
    def render(self, width: int, height: int) -> np.ndarray: ...
    def image(self, camera: str, modality: str) -> np.ndarray: ...
    def close(self) -> None: ...


class InProcessBackend:
    """Builds a `twin.line.Line` directly: no sockets, the fastest way to step."""

    def __init__(self, cfg: LineConfig, builtin_controller: bool, visuals: bool = False) -> None:
        self.cfg = cfg
        self.builtin_controller = builtin_controller
        self.visuals = visuals  # robots with their visual meshes, to render
        self._build(None)
        self._pristine = True  # built and never stepped or commanded: reset may reuse it

    def _build(self, seed: int | None) -> None:
        # pybullet is only loaded where a twin is built
        from twin.automation import build_line
        from twin.telemetry import TelemetryStepper

        self.line = build_line(
            self.cfg, seed=seed, builtin_controller=self.builtin_controller, visuals=self.visuals
        )
        # the stepper everyone steps with; nobody reads the events here: it keeps the log empty
        self._stepper = TelemetryStepper(self.line, state_rate=0.0, state=self._state)

    def describe(self) -> list[dict[str, Any]]:
        return self.line.describe()["devices"]

    def reset(self, seed: int) -> Snapshot:
        # rebuild like the server's `reset` does; skip it when the line is already that state
        if not (self._pristine and self.line.seed == seed):
            self.line.close()
            self._build(seed)
        self._pristine = True
        return self._snapshot()

    def command(self, device: str, command: str, args: dict[str, Any]) -> None:
        self._pristine = False
        self.line.apply(device, command, args)

    def step(self, n: int) -> Snapshot:
        self._pristine = False
        self._stepper.advance(n)
        return self._snapshot()

    def _state(self) -> Any:
        from twin.telemetry import state_message

        return state_message(self.line.line, "lockstep")

    def _snapshot(self) -> Snapshot:
        return self.snapshot_of(self._state())

    @staticmethod
    def snapshot_of(state: Any) -> Snapshot:
        """The snapshot of a protocol `state` (built in-process, or received)."""
        return Snapshot(state.time, state.signals, state.parts, state.counts)

    def render(self, width: int, height: int) -> np.ndarray:
        return self.line.world.render(self.cfg.view, width, height)

    def image(self, camera: str, modality: str) -> np.ndarray:
        """One modality of a configured camera now, rendered as `get_image` renders it (one
        render per modality, so its noise draws match a remote twin's)."""
        self._pristine = False  # the camera's noise generator moved on
        return self.line.line.devices[camera].render((modality,))[modality]  # type: ignore[attr-defined]

    def close(self) -> None:
        self.line.close()


# request-level refusals are a broken session, not a refused device command
_SESSION_ERRORS = frozenset(
    {
        "malformed",
        "too_large",
        "unknown_request",
        "bad_request",
        "version_mismatch",
        "not_controller",
        "stale_lease",
        "bad_lease",
        "control_held",
        "wrong_mode",
        "internal",
    }
)


class RemoteBackend:
    """Drives a `twin serve --mode lockstep` through `twin.client.Client`.

    reset = the server's `reset` with the seed; step = queued commands, then `step n`.
    """

    def __init__(
        self,
        cfg: LineConfig,
        control: str,
        builtin_controller: bool,
        timeout: float = 10.0,
    ) -> None:
        from twin.client import Client

        self.cfg = cfg
        self.builtin_controller = builtin_controller
        self.client = Client(control, timeout=timeout)
        try:
            self._handshake(control)
        except BaseException:
            self.client.close()
            raise

    def _handshake(self, control: str) -> None:
        hello = self.client.hello("twin.gym")
        problems = []
        if hello.mode != "lockstep":
            problems.append(f"mode is '{hello.mode}', expected 'lockstep'")
        if hello.line != self.cfg.name:
            problems.append(f"line is '{hello.line}', the env's config is '{self.cfg.name}'")
        if hello.builtin_controller != self.builtin_controller:
            flag = "without" if self.builtin_controller else "with"
            problems.append(
                f"builtin_controller is {hello.builtin_controller}; this task needs a server "
                f"{flag} --no-builtin-controller"
            )
        if problems:
            raise ValueError(f"twin server at {control} does not fit: {'; '.join(problems)}")
        self.client.take_control()
        self._devices = self.client.describe().devices

    def describe(self) -> list[dict[str, Any]]:
        return self._devices

    def _held(self, call: Callable[[], Any]) -> Any:
        """`call()` under the control lease; if the lease ran out while the agent was busy
        elsewhere (a training update longer than the server's lease timeout), take control
        again, once: the line was left as it was, and another client may have taken it."""
        from twin.client import TwinError

        try:
            return call()
        except TwinError as e:
            if e.code != "stale_lease":
                raise
            self.client.take_control()
            return call()

    def reset(self, seed: int) -> Snapshot:
        # a rebuild loads URDFs: give it longer than a step
        self._held(lambda: self.client.reset(seed, timeout=max(30.0, self.client.timeout)))
        return self._snapshot(self.client.get_state())

    def command(self, device: str, command: str, args: dict[str, Any]) -> None:
        from twin.client import TwinError

        try:
            self._held(lambda: self.client.command(device, command, **args))
        except TwinError as e:
            if e.code in _SESSION_ERRORS:
                raise
            raise CommandError(e.code, e.message) from None

    def step(self, n: int) -> Snapshot:
        return self._snapshot(self._held(lambda: self.client.step(n)))

    @staticmethod
    def _snapshot(state: Any) -> Snapshot:
        return InProcessBackend.snapshot_of(state)

    def image(self, camera: str, modality: str) -> np.ndarray:
        from twin.protocol import messages as m
        from twin.vision.frames import decode_image

        frame = self._held(
            lambda: self.client.request(m.GetImage(camera=camera, modality=modality))
        )
        return decode_image(frame)

    def render(self, width: int, height: int) -> np.ndarray:
        raise NotImplementedError(
            "the twin protocol has no render request: use backend='inprocess' to render"
        )

    def close(self) -> None:
        from twin.protocol import messages as m

        try:  # briefly: the server may be gone already, and closing must still succeed
            self.client.request(m.ReleaseControl(), timeout=1.0)
        except Exception:
            pass
        self.client.close()
