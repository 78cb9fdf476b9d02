"""Inspection station: a camera picture of each part at a photo-eye, judged pass or reject.

The part that newly blocks the eye is photographed (RGB and segmentation, rendered at that
step) and handed to the inspector with its pixel mask: the built-in colour test or a Python
callable named in the config. A reject makes the part's quality reject, which the sink, the
genealogy and OEE's quality count. An inspector that raises or answers nonsense, or a part
the camera does not see, gets the config's `on_error` verdict and an `inspection_failed`
event saying why; the line keeps running.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from twin.config import InspectionConfig
from twin.devices.base import Arg, BuildContext, CommandError, CommandSpec, Device, SignalSpec
from twin.devices.camera import Camera

Inspector = Callable[[np.ndarray, np.ndarray, dict[str, Any]], Any]


def color_test(
    rgb: np.ndarray, mask: np.ndarray, color: list[float], defect: list[float] | None, tol: float
) -> tuple[str, str]:
    """(verdict, reason) from the mean colour of the part's pixels."""
    mean = rgb[mask].mean(axis=0) / 255.0
    good = float(np.linalg.norm(mean - np.array(color[:3])))
    seen = f"mean colour {np.round(mean, 2).tolist()}"
    if defect is not None:
        bad = float(np.linalg.norm(mean - np.array(defect[:3])))
        if bad < good:
            return "reject", f"{seen} nearer the defect colour ({bad:.2f} < {good:.2f})"
        return "pass", f"{seen} nearer the good colour ({good:.2f} <= {bad:.2f})"
    if good > tol:
        return "reject", f"{seen} is {good:.2f} from the good colour (tolerance {tol})"
    return "pass", f"{seen} within {tol} of the good colour"


class Inspection(Device):
    kind = "inspection"
    signal_specs = (
        SignalSpec(name="inspected", type="int", min=0, doc="parts inspected"),
        SignalSpec(name="passed", type="int", min=0, doc="parts passed"),
        SignalSpec(name="rejected", type="int", min=0, doc="parts rejected"),
        SignalSpec(name="last_part", type="int|null", doc="the part inspected last"),
        SignalSpec(
            name="last_verdict", type="str|null", choices=("pass", "reject"), doc="its verdict"
        ),
    )

    commands = (
        CommandSpec(
            name="verdict",
            args=(
                Arg(name="part", type="int", min=1, doc="a part the station asked about"),
                Arg(name="verdict", type="str", choices=("pass", "reject")),
                Arg(name="reason", type="str", optional=True, doc="for the event"),
            ),
            doc="an external inspector's verdict on a part (inspector = 'external')",
        ),
    )

    def __init__(self, cfg: InspectionConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        self.camera: Camera = ctx.devices[cfg.camera]  # type: ignore[assignment]
        self.eye = ctx.devices[cfg.eye]
        self.inspected = self.passed = self.rejected = 0
        self.last_part: int | None = None
        self.last_verdict: str | None = None
        self._callable: Inspector | None = None
        # a Python inspector runs on its own thread so that one that hangs costs the step loop
        # at most `call_timeout`; a thread cannot be killed, so while a call that timed out is
        # still running, later parts get the on_error verdict at once
        self._running: tuple[int, _Call] | None = None
        self.pending: dict[int, float] = {}  # part -> sim time its external verdict is due
        if cfg.inspector not in ("color", "external"):
            module, _, name = cfg.inspector.partition(":")
            self._callable = getattr(importlib.import_module(module), name)

    def after_step(self) -> None:
        part = self.eye.part  # type: ignore[attr-defined]
        if part is not None and part != self._seen and part in self.ctx.pool.active:
            self._seen = part
            self.inspect(part)
        if self.pending:
            now = self.ctx.world.sim_time
            for part_id, due in list(self.pending.items()):
                if now >= due:
                    del self.pending[part_id]
                    reason = f"no verdict from the external inspector within {self.cfg.timeout} s"
                    self._decide(part_id, self.cfg.on_error, reason, failed=True)

    _seen: int | None = None  # the part last seen at the eye

    def inspect(self, part_id: int) -> str | None:
        """Photograph and judge one part now; returns the verdict (None: asked outside)."""
        cfg = self.cfg
        if cfg.inspector == "external":
            self.pending[part_id] = self.ctx.world.sim_time + cfg.timeout
            self.emit(
                "inspection_requested", part=part_id, camera=self.camera.id, timeout=cfg.timeout
            )
            return None
        part = self.ctx.pool.active[part_id]
        images = self.camera.render(("rgb", "segmentation"))
        mask = images["segmentation"] == part_id
        verdict, reason, failed = self._judge(images["rgb"], mask, part)
        return self._decide(part_id, verdict, reason, failed)

    def cmd_verdict(self, part: int, verdict: str, reason: str = "") -> None:
        if part not in self.pending:
            raise CommandError(
                "not_pending",
                f"inspection '{self.id}' is not waiting for a verdict on part {part} "
                f"(waiting: {sorted(self.pending)})",
            )
        del self.pending[part]
        self._decide(part, verdict, reason or "the external inspector decided", failed=False)

    def _decide(self, part_id: int, verdict: str, reason: str, failed: bool) -> str:
        cfg = self.cfg
        if failed:
            self.emit("inspection_failed", part=part_id, reason=reason, verdict=verdict)
        self.emit(
            "part_inspected",
            part=part_id,
            verdict=verdict,
            inspector=cfg.inspector,
            reason=reason,
        )
        self.inspected += 1
        self.last_part, self.last_verdict = part_id, verdict
        if verdict == "reject":
            self.rejected += 1
            part = self.ctx.pool.active.get(part_id)
            if part is not None:  # a part that left the line meanwhile keeps its quality
                part.quality = "reject"
                part.defect = part.defect or f"rejected at inspection {self.id}"
        else:
            self.passed += 1
        return verdict

    def _judge(self, rgb: np.ndarray, mask: np.ndarray, part: Any) -> tuple[str, str, bool]:
        """(verdict, reason, failed)."""
        cfg = self.cfg
        if not mask.any():
            return cfg.on_error, f"camera '{self.camera.id}' does not see the part", True
        if self._callable is None:
            t = self.ctx.pool.types[part.type]
            verdict, reason = color_test(rgb, mask, t.color, t.defect_color, cfg.tolerance)
            return verdict, reason, False
        info = {"id": part.id, "type": part.type}
        if self._running is not None and not self._running[1].done.is_set():
            busy_with = self._running[0]
            return cfg.on_error, f"inspector still busy with part {busy_with} (timed out)", True
        call = _Call(self._callable, rgb, mask, info)
        self._running = (part.id, call)
        if not call.done.wait(cfg.call_timeout):
            return cfg.on_error, f"inspector gave no answer within {cfg.call_timeout} s", True
        try:
            answer = call.outcome()
        except Exception as e:  # user code: any failure is the part's on_error verdict
            return cfg.on_error, f"inspector raised {type(e).__name__}: {e}", True
        if answer is True or answer == "pass":
            return "pass", "the inspector passed it", False
        if answer is False or answer == "reject":
            return "reject", "the inspector rejected it", False
        return cfg.on_error, f"inspector answered {answer!r}, not pass/reject or a bool", True


class _Call:
    """One call of a Python inspector on a daemon thread (a hung one never blocks exit)."""

    def __init__(self, fn: Inspector, *args: Any) -> None:
        self.done = threading.Event()
        self._answer: Any = None
        self._error: Exception | None = None
        threading.Thread(target=self._run, args=(fn, *args), daemon=True).start()

    def _run(self, fn: Inspector, *args: Any) -> None:
        try:
            self._answer = fn(*args)
        except Exception as e:  # handed to the step loop, which decides on_error
            self._error = e
        finally:
            self.done.set()

    def outcome(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._answer
