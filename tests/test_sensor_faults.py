"""Sensor faults mean what they say: noise and dropout are rates per second of simulated
time (the same at any timestep), a dropout is an intermittent loss unlike stuck_off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conservation import assert_parts_conserved

from twin.config import ConfigError, SensorFault, loads
from twin.line import Line
from twin.production.faults import SensorFaults

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = (ROOT / "configs" / "default_line.toml").read_text()


def readings(fault: SensorFault, dt: float, seconds: float, beam: bool = False) -> np.ndarray:
    faults = SensorFaults([fault], np.random.default_rng(11))
    n = round(seconds / dt)
    return np.array([faults.apply(beam, k * dt)[0] for k in range(n)])


def runs_of(values: np.ndarray, value: bool) -> list[int]:
    """Lengths (in samples) of the runs where `values` equals `value`."""
    out, length = [], 0
    for v in values:
        if v == value:
            length += 1
        elif length:
            out.append(length)
            length = 0
    return out + ([length] if length else [])


@pytest.mark.parametrize("dt", [0.01, 0.002])
def test_noise_flips_at_its_rate_per_second_at_any_timestep(dt):
    rate, seconds = 2.0, 1000.0
    flips = readings(SensorFault(kind="noise", rate=rate), dt, seconds).sum()
    # a Poisson count of ~2000: its standard deviation is ~45; several flips within one
    # step merge, which costs rate*dt/2 of them (1 % at 10 ms)
    assert flips == pytest.approx(rate * seconds, rel=0.06)


@pytest.mark.parametrize("dt", [0.01, 0.002])
def test_dropout_loses_the_signal_in_short_spells_at_any_timestep(dt):
    rate, duration, seconds = 0.5, 0.2, 1000.0
    fault = SensorFault(kind="dropout", rate=rate, duration=duration)
    seen = readings(fault, dt, seconds, beam=True)
    lost_share = 1 - seen.mean()
    # the share of time inside at least one spell of a Poisson process of spells
    assert lost_share == pytest.approx(1 - np.exp(-rate * duration), abs=0.012)
    spells = runs_of(seen, False)
    expected = rate * seconds * np.exp(-rate * duration)  # overlapping spells merge
    assert len(spells) == pytest.approx(expected, rel=0.12)
    assert np.median(spells) * dt == pytest.approx(duration, abs=2 * dt)
    # stuck_off, by contrast, loses the signal for the whole window
    stuck = readings(SensorFault(kind="stuck_off", start=0.0, end=50.0), dt, 60.0, beam=True)
    assert runs_of(stuck, False) == [round(50.0 / dt)]


def test_a_dropout_on_a_real_eye_blinks_while_a_part_sits_in_the_beam():
    text = DEFAULT.replace(
        "offset = -0.55\n",
        'offset = -0.55\nfaults = [{ kind = "dropout", start = 1.0, rate = 2.0, duration = 0.1 }]\n',
    )
    with Line(loads(text, "dropout.toml")) as line:
        line.apply("source", "disable")
        eye = line.devices["infeed_entry_eye"]
        line.pool.spawn("housing", line.devices["infeed"].point(-0.55, 0, 0.03), 0.0, 0.0)
        line.step(round(1.0 / line.dt))
        assert line.signals()["infeed_entry_eye"]["blocked"] is True
        seen = []
        for _ in range(round(20.0 / line.dt)):
            line.step()
            seen.append(eye.signals()["blocked"])
        spells = runs_of(np.array(seen), False)
        assert 20 <= len(spells) <= 60  # ~2 per second, some merged
        assert max(spells) * line.dt < 0.6  # short losses, not a stuck sensor
        assert_parts_conserved(line.counts())


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ('{ kind = "noise" }', "faults[0].rate: a noise fault needs rate > 0"),
        ('{ kind = "dropout", rate = 1.0, duration = 0.0 }', "faults[0].duration"),
        ('{ kind = "stuck_on", start = 5.0, end = 2.0 }', "faults[0].end: 2.0 s is not after"),
        ('{ kind = "noise", probability = 0.1 }', "unknown field `probability`"),
    ],
)
def test_a_sensor_fault_without_what_it_needs_is_refused(fault, message):
    text = DEFAULT.replace("offset = -0.55\n", f"offset = -0.55\nfaults = [{fault}]\n")
    with pytest.raises(ConfigError, match="infeed_entry_eye") as err:
        loads(text, "f.toml")
    assert message in str(err.value)
