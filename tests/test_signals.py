"""Signals are declared once: signals(), status(), describe() and the schema follow from the
declarations, and a declared rate or noise shapes the readings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from twin.config import load
from twin.devices.base import Device, SignalSpec
from twin.line import Line

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("config", ["default_line.toml", "two_robot_line.toml"])
def test_readings_describe_and_schema_agree_with_the_declarations(config: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    with Line(load(ROOT / "configs" / config)) as line:
        line.step(200)
        desc = line.describe()
        signals = line.signals()
        for dev_id, dev in line.devices.items():
            declared = [s.name for s in dev.signal_specs]
            assert list(signals[dev_id]) == declared, dev_id
            cls = type(dev)
            assert cls.signals in (cls._read_signals, Device.signals), f"{dev.kind}: by hand"
            assert cls.status in (cls._read_status, Device.status), f"{dev.kind}: by hand"
            assert list(dev.status()) == [s.name for s in dev.signal_specs if s.scan]
            listed = next(d for d in desc["devices"] if d["id"] == dev_id)["signals"]
            assert [s["name"] for s in listed] == declared
        jsonschema.validate(signals, desc["signals_schema"])
        # a value outside its declaration is caught by the schema
        signals["mill" if "mill" in signals else "drill"]["state"] = "Dancing"
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(signals, desc["signals_schema"])


class _Gauge(Device):
    kind = "gauge"
    signal_specs = (
        SignalSpec(name="level", type="float", unit="m", rate=10.0, doc="sampled at 10 Hz"),
        SignalSpec(name="noisy", type="float", unit="m", noise=0.01, attr="level"),
        SignalSpec(name="raw", type="float", unit="m", attr="level", scan=False),
    )

    def __init__(self, ctx) -> None:
        super().__init__(SimpleNamespace(id="gauge"), ctx)
        self.level = 0.0


def _ctx(world) -> SimpleNamespace:
    return SimpleNamespace(
        world=world, events=None, rng=lambda key: np.random.default_rng([7, len(key)])
    )


def test_a_declared_rate_holds_samples_and_noise_is_seeded() -> None:
    world = SimpleNamespace(sim_time=0.0)
    gauge = _Gauge(_ctx(world))
    readings = []
    for i in range(40):  # 0.4 s at 100 Hz: the level rises 1 mm per step
        world.sim_time = i * 0.01
        gauge.level = i * 0.001
        readings.append(gauge.signals())
    levels = [r["level"] for r in readings]
    assert levels[:10] == [0.0] * 10, "held between 10 Hz samples"
    assert levels[10] == pytest.approx(0.010) and levels[19] == levels[10]
    assert len(set(levels)) == 4
    assert [r["raw"] for r in readings] == [i * 0.001 for i in range(40)]
    noise = np.array([r["noisy"] - r["raw"] for r in readings])
    assert 0.003 < noise.std() < 0.03 and abs(noise.mean()) < 0.01
    assert "raw" not in gauge.status()
    again = _Gauge(_ctx(SimpleNamespace(sim_time=0.0)))
    assert again.signals()["noisy"] == readings[0]["noisy"], "seeded: same noise again"


def test_each_device_kind_is_registered_once_in_the_config_union() -> None:
    """A kind is a member of DeviceConfig whose tag names the module and class building it."""
    from twin.devices.kinds import BUILD_ORDER, device_class, kind_of

    kinds = [kind_of(cfg_type) for cfg_type in BUILD_ORDER]
    assert len(set(kinds)) == len(kinds)
    for cfg_type in BUILD_ORDER:
        cls = device_class(cfg_type)
        assert cls.kind == kind_of(cfg_type) and cls.__module__ == f"twin.devices.{cls.kind}"
