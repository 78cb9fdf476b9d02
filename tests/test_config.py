"""Loading a line config: the shipped configs load, every kind of mistake names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.config import ConfigError, load, loads

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.toml") if "line" in p.stem)

MINIMAL = """
name = "mini"
[[part_types]]
name = "box"
size = [0.05, 0.05, 0.05]
mass = 0.2

[[devices]]
kind = "conveyor"
id = "belt"
position = [0.0, 0.0, 0.0]

[[devices]]
kind = "photoeye"
id = "eye"
conveyor = "belt"
offset = 0.2
"""


def test_shipped_configs_load():
    assert len(CONFIGS) >= 2
    for path in CONFIGS:
        cfg = load(path)
        assert cfg.devices and cfg.part_types


def test_minimal_config_loads_with_defaults():
    cfg = loads(MINIMAL, "mini.toml")
    assert cfg.physics.timestep == 0.01
    assert cfg.device("eye").conveyor == "belt"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # unknown key, top level and in a device
        (lambda t: t + "\ncolour = 3\n", ["mini.toml", "unknown field `colour`"]),
        (
            lambda t: t.replace("offset = 0.2", "offset = 0.2\nbeam_heigth = 0.01"),
            ["mini.toml", "devices[1] (device 'eye')", "unknown field `beam_heigth`"],
        ),
        # wrong type
        (
            lambda t: t.replace("mass = 0.2", 'mass = "heavy"'),
            ["part_types[0].mass", "Expected `float`, got `str`"],
        ),
        # out of range
        (
            lambda t: t.replace("mass = 0.2", "mass = -1.0"),
            ["part_types[0].mass", "> 0"],
        ),
        (
            lambda t: t.replace('name = "mini"', 'name = "mini"\n[physics]\ntimestep = 0.5'),
            ["physics.timestep", "<= 0.05"],
        ),
        (
            lambda t: t.replace("position = [0.0, 0.0, 0.0]", "position = [0.0, 0.0]"),
            ["devices[0] (device 'belt').position", "length >= 3"],
        ),
        # unknown device kind
        (
            lambda t: t.replace('kind = "photoeye"', 'kind = "laser"'),
            ["devices[1] (device 'eye').kind", "Invalid value 'laser'"],
        ),
        # duplicate id
        (
            lambda t: t.replace('id = "eye"', 'id = "belt"'),
            ["devices[1].id", "duplicate device id 'belt'"],
        ),
        # dangling reference
        (
            lambda t: t.replace('conveyor = "belt"', 'conveyor = "belt_2"'),
            ["devices[1] (device 'eye').conveyor", "'belt_2', which is not defined"],
        ),
        # reference to the wrong kind of device
        (
            lambda t: t.replace('conveyor = "belt"', 'conveyor = "eye"'),
            ["'eye' is a photoeye, expected a conveyor"],
        ),
        # a sensor off the end of its belt
        (lambda t: t.replace("offset = 0.2", "offset = 2.0"), ["offset", "is off the belt 'belt'"]),
        # missing asset
        (
            lambda t: (
                t + '\n[[devices]]\nkind = "arm"\nid = "robot"\nmodel = "no/such_robot.urdf"\n'
            ),
            ["devices[2] (device 'robot').model", "asset 'no/such_robot.urdf' not found"],
        ),
        # not TOML at all
        (lambda t: t + "\n[[devices]\n", ["mini.toml", "not valid TOML"]),
        # missing required field
        (lambda t: t.replace('id = "eye"\n', ""), ["devices[1]", "missing required field `id`"]),
    ],
    ids=[
        "unknown-key",
        "unknown-device-key",
        "wrong-type",
        "negative-mass",
        "timestep-too-large",
        "short-vector",
        "unknown-kind",
        "duplicate-id",
        "dangling-reference",
        "wrong-kind-reference",
        "offset-off-belt",
        "missing-asset",
        "bad-toml",
        "missing-field",
    ],
)
def test_bad_config_names_file_field_and_problem(edit, expected):
    with pytest.raises(ConfigError) as err:
        loads(edit(MINIMAL), "mini.toml")
    message = str(err.value)
    for fragment in expected:
        assert fragment in message, message


def test_unknown_part_type_in_source():
    text = (
        MINIMAL
        + """
[[devices]]
kind = "source"
id = "src"
conveyor = "belt"
parts = [{ type = "gear" }]
"""
    )
    with pytest.raises(
        ConfigError, match=r"devices\[2\].*parts\[0\]\.type.*unknown part type 'gear'"
    ):
        loads(text, "mini.toml")


def test_controller_references_are_checked():
    text = (
        MINIMAL
        + """
[controller]
kind = "sequencer"
belts = [{ conveyor = "belt", stop_eye = "no_eye" }]
"""
    )
    with pytest.raises(ConfigError, match=r"controller\.belts\[0\]\.stop_eye.*'no_eye'"):
        loads(text, "mini.toml")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nothing.toml"):
        load(tmp_path / "nothing.toml")


def test_layout_change_is_a_config_edit():
    """The two-robot line differs from the default only in its config file."""
    default = load(ROOT / "configs" / "default_line.toml")
    two = load(ROOT / "configs" / "two_robot_line.toml")
    arms = lambda cfg: [d.id for d in cfg.devices if type(d).__struct_config__.tag == "arm"]  # noqa: E731
    assert len(arms(default)) == 1 and len(arms(two)) == 2


@pytest.mark.parametrize(
    ("old", "new", "where", "distance"),
    [
        # the mill 1 m further out: the robot's pick from it is the first transfer to need it
        (
            'id = "mill"\nposition = [0.55, 0.0, 0.0]',
            'id = "mill"\nposition = [1.55, 0.0, 0.0]',
            "controller.transfers[0].pick: the pick point [1.550, 0.000, 0.750] at 'mill'",
            "1.561 m",
        ),
        # the outfeed moved away: placing on it is out of reach, the mill still within
        (
            'id = "outfeed"\nposition = [0.75, 0.45, 0.0]',
            'id = "outfeed"\nposition = [1.75, 1.45, 0.0]',
            "controller.transfers[0].place: the place point [1.030, 1.450, 0.750] at 'outfeed'",
            "1.788 m",
        ),
    ],
)
def test_a_teach_point_beyond_the_arms_reach_is_refused(old, new, where, distance):
    """The arm refuses commands beyond its reach, so such a line could never move a part:
    the config is refused, naming the transfer, the point and how far it is."""
    text = (ROOT / "configs" / "default_line.toml").read_text()
    assert old in text
    with pytest.raises(ConfigError) as err:
        loads(text.replace(old, new, 1), "far.toml")
    message = str(err.value)
    for fragment in (where, distance, "shoulder of arm 'robot'", "reach of 0.82 m"):
        assert fragment in message, message


def test_every_shipped_line_has_its_teach_points_within_reach():
    for path in CONFIGS:
        load(path)  # would raise naming the transfer
    factory = load(ROOT / "configs" / "factory_6cell.toml")
    assert factory.controller is not None and len(factory.controller.transfers) > 10
