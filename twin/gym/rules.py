"""The rest of the line while a policy works the arm: the built-in sequencer without transfers.

The sequencer runs belts (stop at the pick eye) and stations (reset, start, unhold) from
signals alone. Here it is ticked once per env step, outside the twin, so it sends its
commands through the same back end as the policy: in-process and remote behave the same.
"""

from __future__ import annotations

import msgspec

from twin.config import LineConfig
from twin.control.sequencer import Sequencer
from twin.gym.task import Port


def line_rules(cfg: LineConfig, env_dt: float, port: Port) -> Sequencer | None:
    """The config's sequencer with every arm transfer removed (None if it has no controller).
    One tick per env step: its timers count env steps."""
    if cfg.controller is None:
        return None
    rules = msgspec.structs.replace(cfg.controller, transfers=[])
    return Sequencer(cfg, port, env_dt, rules=rules)
