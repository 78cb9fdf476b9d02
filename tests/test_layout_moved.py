"""A line turned about the vertical and moved across the floor is the same line: the same
parts come out, at the same pace. Headings are angles, and a heading near ±pi (a robot
facing -x) must not send a wrist the long way round."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from twin.automation import build_line
from twin.config import loads

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 120.0  # the first parts through the mill and out at the sink


def moved(text: str, turn: float, dx: float, dy: float) -> str:
    """The config text with every device turned by `turn` rad about the origin, then moved
    by (dx, dy): positions and headings (a device without a `yaw` gets one)."""
    c, s = math.cos(turn), math.sin(turn)

    def place(m: re.Match) -> str:
        x, y, z = (float(v) for v in m.group(1).split(","))
        return f"position = [{c * x - s * y + dx!r}, {s * x + c * y + dy!r}, {z!r}]"

    blocks = re.split(r"(?m)^(?=\[)", text)
    for i, block in enumerate(blocks):
        if not block.startswith("[[devices]]") or "position = [" not in block:
            continue
        block = re.sub(r"position = \[([^\]]+)\]", place, block, count=1)
        heading = re.search(r"(?m)^yaw = (\S+)", block)
        if heading:
            yaw = (float(heading.group(1)) + turn) % (2 * math.pi)
            block = block[: heading.start()] + f"yaw = {yaw!r}" + block[heading.end() :]
        else:
            block = re.sub(
                r"(?m)^(position = .*)$",
                lambda m: f"{m.group(1)}\nyaw = {turn % (2 * math.pi)!r}",
                block,
                count=1,
            )
        blocks[i] = block
    return "".join(blocks)


def completed(text: str) -> tuple[int, int]:
    """Parts completed, and alarms raised, in SECONDS of the line with its controller."""
    line = build_line(loads(text))
    try:
        steps = round(SECONDS / line.world.dt)
        alarms = 0
        for _ in range(steps // 500):
            line.step(500)
            alarms += sum(e.kind == "alarm" and e.data["active"] for e in line.line.events.drain())
        return line.line.counts()["parts_completed"], alarms
    finally:
        line.close()


# facing -x (the wrist's heading reads -pi where the base's is pi), and an odd angle
@pytest.mark.parametrize(
    ("config", "turns"),
    [("default_line.toml", (math.pi, math.radians(237))), ("two_robot_line.toml", (math.pi,))],
)
def test_a_line_turned_and_moved_makes_the_same_parts(config: str, turns: tuple) -> None:
    text = (ROOT / "configs" / config).read_text()
    done, alarms = completed(text)
    assert done >= 3 and alarms == 0
    for turn in turns:
        again, alarms = completed(moved(text, turn, 3.0, -2.0))
        assert abs(again - done) <= 1 and alarms == 0, (config, math.degrees(turn), again, done)
