"""Production semantics on the real line: faults, KPIs, genealogy, e-stop, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
from conservation import assert_parts_conserved, summary_counts

from twin.analytics.monitor import ProductionMonitor
from twin.automation import build_line
from twin.config import load, loads
from twin.devices.base import CommandError
from twin.line import Line
from twin.run import run_line

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = (ROOT / "configs" / "default_line.toml").read_text()


def with_faults(text: str) -> str:
    """The default line with a scripted breakdown, process defects and a scripted e-stop."""
    text = text.replace(
        "cycle_time = 8.0              # s per part",
        "cycle_time = 8.0\ndefect_rate = 0.5\nbreakdowns = [{ at = 40.0, duration = 20.0 }]",
    )
    # a top-level key must come before the first table
    return text.replace(
        'name = "default_line"', 'name = "default_line"\nestops = [{ at = 100.0, duration = 5.0 }]'
    )


@pytest.fixture(scope="module")
def faulty_run():
    cfg = loads(with_faults(DEFAULT), "faulty.toml")
    return run_line(cfg, 180.0, progress=False)


def test_scripted_breakdown_uptime_is_time_up_over_planned_time(faulty_run):
    mill = faulty_run.kpis["stations"]["mill"]
    assert mill["time_s"]["down"] == pytest.approx(20.0, abs=0.01)
    assert mill["uptime"] == pytest.approx((180.0 - 20.0) / 180.0, abs=1e-4)
    # ISO 22400 availability: actual production time over planned busy time
    assert mill["availability"] == pytest.approx(mill["time_s"]["execute"] / 180.0)
    breakdowns = [f for f in faulty_run.faults if f.get("fault") == "breakdown"]
    assert [(f["time"], f["active"]) for f in breakdowns] == [
        pytest.approx((40.0, True), abs=0.01),
        pytest.approx((60.0, False), abs=0.01),
    ]


def test_quality_counts_rejects_and_oee_is_the_product(faulty_run):
    k = faulty_run.kpis
    mill = k["stations"]["mill"]
    assert 0 < mill["good"] < mill["processed"]  # defect_rate 0.5: some of each
    assert mill["quality"] == pytest.approx(mill["good"] / mill["processed"])
    assert mill["oee"] == pytest.approx(
        mill["availability"] * mill["performance"] * mill["quality"]
    )
    assert k["oee"]["quality"] == pytest.approx(k["parts_good"] / k["parts_completed"])
    rejects = [p for p in faulty_run.genealogy if p["quality"] == "reject" and p["completed"]]
    assert rejects and all("mill" in p["defect"] for p in rejects)


def test_genealogy_has_every_completed_part_with_its_station_visit(faulty_run):
    done = [p for p in faulty_run.genealogy if p["completed"] is not None]
    assert len(done) == faulty_run.parts_completed > 0
    for p in done:
        visit = p["visits"][0]
        assert visit["station"] == "mill" and visit["processed"]
        assert p["spawned"] < visit["entered"] < visit["left"] <= p["completed"]


def test_scripted_estop_stops_the_line_and_it_recovers(faulty_run):
    kinds = [(f["kind"], round(f["time"], 2)) for f in faulty_run.faults]
    assert ("estop", 100.0) in kinds and ("estop_reset", 105.0) in kinds
    done_after = [p for p in faulty_run.genealogy if p["completed"] and p["completed"] > 110]
    assert done_after, "the line produced again after the e-stop was reset"


def test_parts_are_conserved_through_breakdowns_rejects_and_estops(faulty_run):
    counts = summary_counts(faulty_run)
    assert_parts_conserved(counts)
    assert_parts_conserved(faulty_run.kpis)  # the KPIs, from events alone, agree
    assert faulty_run.kpis["wip"] == counts["wip"]
    assert faulty_run.kpis["parts_lost"] == counts["parts_lost"]


def test_same_seed_same_faults_same_kpis(faulty_run):
    again = run_line(loads(with_faults(DEFAULT), "faulty.toml"), 180.0, progress=False)
    assert again.kpis == faulty_run.kpis
    assert again.genealogy == faulty_run.genealogy


STATION_ONLY = """
name = "breakdown_test"
[physics]
timestep = 0.05
substeps = 1
seed = {seed}
[[part_types]]
name = "box"
size = [0.05, 0.05, 0.05]
mass = 0.1
[[devices]]
kind = "station"
id = "press"
position = [0.0, 0.0, 0.0]
mtbf = 60.0
mttr = 20.0
"""


def test_random_breakdowns_converge_to_mtbf_over_mtbf_plus_mttr():
    expected = 60.0 / (60.0 + 20.0)
    with build_line(loads(STATION_ONLY.format(seed=3), "station.toml")) as line:
        monitor = ProductionMonitor(line)
        for _ in range(40):
            line.step(1000)  # 40 000 s simulated, ~500 breakdowns
            monitor.consume(line.drain_events())
        uptime = monitor.kpis.snapshot(line.sim_time)["stations"]["press"]["uptime"]
    # the standard error of the estimate is ~0.012 here; allow 4 of them
    assert uptime == pytest.approx(expected, abs=0.05)


def test_sensor_faults_override_the_beam():
    text = DEFAULT.replace(
        "offset = -0.55\n",
        'offset = -0.55\nfaults = [{ kind = "stuck_on", start = 0.1, end = 0.3 }, '
        '{ kind = "noise", start = 2.0, end = 3.0, rate = 50.0 }]\n',
    )
    with build_line(load_text(text)) as line:
        line.step(round(0.2 / line.dt))  # 0.2 s: stuck on, no part near
        assert line.signals()["infeed_entry_eye"]["blocked"] is True
        line.step(round(0.2 / line.dt))  # 0.4 s: the window is over
        assert line.signals()["infeed_entry_eye"]["blocked"] is False
        line.step(round(1.7 / line.dt))
        readings = []
        for _ in range(round(0.5 / line.dt)):  # 2.1 s .. 2.6 s: noise flips about half
            line.step()
            readings.append(line.signals()["infeed_entry_eye"]["blocked"])
        assert 0.2 < sum(readings) / len(readings) < 0.8
        faults = [e for e in line.drain_events() if e.kind == "fault"]
        assert [(e.data["fault"], e.data["active"]) for e in faults] == [
            ("stuck_on", True),
            ("stuck_on", False),
            ("noise", True),
        ]
        assert_parts_conserved(line.counts())


def load_text(text: str):
    return loads(text, "faults.toml")


def test_station_refuses_start_while_broken_down():
    from twin.devices.base import CommandError

    text = DEFAULT.replace(
        "cycle_time = 8.0              # s per part",
        "cycle_time = 8.0\nbreakdowns = [{ at = 0.5, duration = 5.0 }]",
    )
    with Line(load_text(text)) as line:
        line.apply("mill", "reset")
        line.step(round(1.0 / line.dt))  # 1 s: Idle, and broken down since 0.5 s
        assert line.signals()["mill"]["fault"] == "breakdown"
        with pytest.raises(CommandError) as err:
            line.apply("mill", "start")
        assert err.value.code == "fault_active"
        line.step(round(5 / line.dt))
        assert line.signals()["mill"]["fault"] is None
        line.apply("mill", "start")
        assert_parts_conserved(line.counts())


def test_default_config_runs_clean():
    cfg = load(ROOT / "configs" / "default_line.toml")
    assert not cfg.estops


def test_the_line_is_a_packml_unit():
    from twin.devices.base import CommandError

    with build_line(load(ROOT / "configs" / "default_line.toml")) as line:
        line.step(10)
        assert line.signals()["line"]["state"] == "Execute"
        with pytest.raises(CommandError) as err:
            line.apply("line", "start")
        assert err.value.code == "illegal_state" and "Execute" in err.value.message
        line.step(round(3 / line.dt))  # the first part is on its way
        line.apply("line", "hold")
        line.step(5)
        s = line.signals()
        assert s["line"]["state"] == "Held"
        assert not s["infeed"]["running"] and not s["outfeed"]["running"]
        line.apply("line", "unhold")
        line.step(5)
        assert line.signals()["line"]["state"] == "Execute"
        assert line.signals()["infeed"]["running"]  # the controller drives again
        line.estop("test")
        line.step(round(0.5 / line.dt))
        s = line.signals()
        assert s["line"]["state"] == "Aborted"
        assert s["mill"]["state"] == "Aborted"  # every unit, not Held
        line.estop_reset()
        line.step(round(1.5 / line.dt))  # the sequencer clears, resets and starts the mill
        assert line.signals()["line"]["state"] == "Execute"
        assert line.signals()["mill"]["state"] in ("Execute", "Suspended")
        events = line.drain_events()
        mill = [e.data["new"] for e in events if e.kind == "station_state"]
        assert mill[mill.index("Aborting") :][:7] == [
            "Aborting",
            "Aborted",
            "Clearing",
            "Stopped",
            "Resetting",
            "Idle",
            "Starting",
        ]
        states = [e.data["new"] for e in events if e.kind == "line_state"]
        assert states[:4] == ["Resetting", "Idle", "Starting", "Execute"]
        assert states[-8:] == [
            "Aborting",
            "Aborted",
            "Clearing",
            "Stopped",
            "Resetting",
            "Idle",
            "Starting",
            "Execute",
        ]


def test_littles_law_holds_on_a_steady_run_of_the_real_line():
    """WIP = throughput x lead time. The edge effects (parts still in the
    line at the end, the empty line at the start) stay within 15 % over 5 minutes."""
    summary = run_line(load(ROOT / "configs" / "default_line.toml"), 300.0, progress=False)
    k = summary.kpis
    rate_per_s = k["parts_completed"] / k["time_s"]
    assert k["parts_completed"] >= 12
    assert k["wip_mean"] == pytest.approx(rate_per_s * k["lead_time_s"]["mean"], rel=0.15)


# a breakdown in every state a station can be in ---------------------------------------
BREAKDOWN_STATION = """
name = "breakdown_station"
[physics]
timestep = 0.01
[[part_types]]
name = "box"
size = [0.08, 0.08, 0.05]
mass = 0.35
[[devices]]
kind = "station"
id = "mill"
position = [0.0, 0.0, 0.0]
size = [0.36, 0.36, 0.75]
cycle_time = 4.0
transition_time = 1.0
batch_size = {batch}
breakdowns = {breakdowns}
"""

_IDLE = [("cmd", "reset"), ("until", "Idle")]
_EXECUTE = [*_IDLE, ("part",), ("cmd", "start"), ("processing",)]
_SUSPENDED = [*_IDLE, ("cmd", "start"), ("until", "Suspended")]
_HELD = [*_EXECUTE, ("cmd", "hold"), ("until", "Held")]
_ABORTED = [*_EXECUTE, ("cmd", "abort"), ("until", "Aborted")]
# how to bring a station into each state, by commands and parts only
PATHS = {
    "Stopped": [],
    "Resetting": [("cmd", "reset")],
    "Idle": _IDLE,
    "Starting": [*_IDLE, ("cmd", "start")],
    "Execute": _EXECUTE,
    "Suspending": [*_IDLE, ("cmd", "start"), ("until", "Suspending")],
    "Suspended": _SUSPENDED,
    "Unsuspending": [*_SUSPENDED, ("part",), ("until", "Unsuspending")],
    "Holding": [*_EXECUTE, ("cmd", "hold")],
    "Held": _HELD,
    "Unholding": [*_HELD, ("cmd", "unhold")],
    "Stopping": [*_EXECUTE, ("cmd", "stop")],
    "Aborting": [*_EXECUTE, ("cmd", "abort")],
    "Aborted": _ABORTED,
    "Clearing": [*_ABORTED, ("cmd", "clear")],
    "Completing": [*_EXECUTE, ("until", "Completing")],
    "Complete": [*_EXECUTE, ("until", "Complete")],
}
# states that are (or are about to be) producing: a breakdown holds them
HELD_BY_BREAKDOWN = {"Starting", "Execute", "Suspending", "Suspended", "Unsuspending", "Unholding"}


def _drive(line, path) -> None:
    st = line.devices["mill"]
    for step in path:
        if step[0] == "cmd":
            line.apply("mill", step[1])
        elif step[0] == "part":
            line.pool.spawn("box", st.point(0, 0, 0.027), 0.0, line.sim_time)
        else:
            for _ in range(round(10 / line.dt)):
                line.step()
                s = st.signals()
                if (step[0] == "processing" and s["progress"] > 0) or s["state"] == step[-1]:
                    break
            else:
                raise AssertionError(f"station never reached {step}")


def _station_line(breakdowns: str, batch: int) -> Line:
    text = BREAKDOWN_STATION.format(breakdowns=breakdowns, batch=batch)
    return Line(loads(text, "station.toml"))


@pytest.mark.parametrize("state", list(PATHS))
def test_a_breakdown_in_every_station_state_stops_what_it_says(state):
    from twin.devices.base import CommandError

    batch = 1 if state in ("Completing", "Complete") else 0
    with _station_line("[]", batch) as line:  # where the state is reached, without faults
        _drive(line, PATHS[state])
        reached = line.sim_time
        assert line.signals()["mill"]["state"] == state
    at, repaired = reached + 0.05, reached + 3.05
    with _station_line(f"[{{ at = {at:.2f}, duration = 3.0 }}]", batch) as line:
        _drive(line, PATHS[state])
        st = line.devices["mill"]
        assert line.sim_time == pytest.approx(reached) and st.signals()["state"] == state
        line.step(round(0.1 / line.dt))
        progress = st.signals()["progress"]
        line.step(round((repaired - 0.15 - line.sim_time) / line.dt))  # just before repair
        s = st.signals()
        assert s["fault"] == "breakdown" and s["activity"] == "down"
        assert s["progress"] == progress, "no processing while broken down"
        assert not s["load_ok"] and not s["unload_ok"], "neither loadable nor unloadable"
        if state in HELD_BY_BREAKDOWN:
            assert s["state"] == "Held"
        assert s["state"] not in ("Execute", "Starting", "Unholding", "Unsuspending")
        for command in ("start", "unhold", "unsuspend"):
            with pytest.raises(CommandError) as err:
                line.apply("mill", command)
            assert err.value.code == "fault_active"
        line.step(round(0.2 / line.dt))  # repaired
        assert st.signals()["fault"] is None
        events = line.drain_events()
        finished = [e for e in events if e.kind == "process_finished"]
        if state in HELD_BY_BREAKDOWN or state == "Execute":
            assert finished == []
        if state in ("Execute", "Unsuspending", "Unholding"):
            # it carries on with its part and gives it the whole cycle time
            line.step(round(8 / line.dt))
            (done,) = [e for e in line.drain_events() if e.kind == "process_finished"]
            assert done.cycle_time == pytest.approx(4.0, abs=0.02)
            assert done.time > repaired
        if state in ("Holding", "Held"):  # held by an operator: stays held after the repair
            line.step(round(2 / line.dt))
            assert st.signals()["state"] == "Held"


def test_a_broken_down_station_is_neither_loaded_nor_unloaded(faulty_run):
    # the mill is down from 40 s to 60 s: no part arrives on it meanwhile, and none leaves
    # but one whose pick was already under way when it broke down
    for p in faulty_run.genealogy:
        for visit in p["visits"]:
            assert not 40.0 < visit["entered"] < 60.0, (p["id"], visit)
            assert visit["left"] is None or not 41.0 < visit["left"] < 60.0, (p["id"], visit)


def test_station_execute_time_is_its_processing_time(faulty_run):
    mill = faulty_run.kpis["stations"]["mill"]
    execute = mill["time_s"]["execute"]
    # every processed part took its 8 s cycle in execute, plus the one in process at the end
    assert 8.0 * mill["processed"] - 0.05 <= execute <= 8.0 * (mill["processed"] + 1)
    assert mill["availability"] == pytest.approx(execute / 180.0)
    assert mill["performance"] == pytest.approx(8.0 * mill["processed"] / execute)


# the sequencer's retry policy, scan by scan against a scripted plant -------------------
class _Port:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict | None]] = []
        self.refuse: set[str] = set()  # commands the arm refuses (sent, then refused)

    def send(self, device: str, command: str, args: dict | None = None) -> None:
        self.sent.append((device, command, args))
        if command in self.refuse:
            raise CommandError("out_of_reach", f"arm '{device}': {command} target is too far")


def _plant() -> dict[str, dict]:
    """Signals of the default line with the mill producing and empty, a part at the pick eye."""
    return {
        "line": {"state": "Execute", "estopped": False},
        "infeed_pick_eye": {"blocked": True, "part": 5, "count": 1},
        "outfeed_entry_eye": {"blocked": False, "part": None, "count": 0},
        "mill": {
            "state": "Suspended",
            "part_present": False,
            "part": None,
            "seated": None,
            "part_done": False,
            "load_ok": True,
            "unload_ok": False,
            "fault": None,
        },
        "robot": {"busy": False, "jobs_done": 0, "result": "none", "holding": None},
    }


def _sequencer():
    from twin.control.sequencer import Sequencer

    cfg = load(ROOT / "configs" / "default_line.toml")
    port, alarms = _Port(), []
    seq = Sequencer(cfg, port, 0.01, on_alarm=lambda device, **d: alarms.append((device, d)))
    return seq, port, alarms


def _robot_jobs(port: _Port) -> list[str]:
    return [c for d, c, _ in port.sent if d == "robot"]


def test_a_pick_that_keeps_failing_raises_one_alarm_and_stops_trying():
    seq, port, alarms = _sequencer()
    s = _plant()
    seq.tick(s)
    assert _robot_jobs(port) == ["pick"]
    for failed in range(1, 4):
        s["robot"] = {"busy": False, "jobs_done": failed, "result": "pick_failed", "holding": None}
        seq.tick(s)
        assert len(_robot_jobs(port)) == failed, "not at once: after retry_delay"
        for _ in range(round(1.2 / 0.01)):
            seq.tick(s)
        # 1 try + max_retries (2), then an alarm instead of a fourth pick
        assert _robot_jobs(port) == ["pick"] * min(failed + 1, 3)
    assert [(d, a["alarm"], a["active"], a["tries"]) for d, a in alarms] == [
        ("infeed_pick_eye", "pick_failed", True, 3)
    ]
    for _ in range(1000):  # 10 s more: no endless loop
        seq.tick(s)
    assert _robot_jobs(port) == ["pick"] * 3
    # an operator takes the part away and another arrives: the alarm clears, picking resumes
    s["infeed_pick_eye"] = {"blocked": True, "part": 6, "count": 2}
    seq.tick(s)
    assert alarms[-1] == ("infeed_pick_eye", {"alarm": "pick_failed", "active": False})
    assert _robot_jobs(port) == ["pick"] * 4


def test_a_part_that_is_not_seated_is_placed_again_then_alarmed():
    seq, port, alarms = _sequencer()
    s = _plant()
    s["infeed_pick_eye"] = {"blocked": False, "part": None, "count": 1}
    s["mill"].update(
        part_present=True, part=7, seated=False, load_ok=False, unload_ok=True, state="Suspended"
    )
    jobs = 0
    for _ in range(round(10 / 0.01)):  # the station keeps reporting the part not seated
        seq.tick(s)
        last = port.sent[-1][:2] if port.sent else None
        if last == ("robot", "pick") and s["robot"]["jobs_done"] == jobs:
            assert port.sent[-1][2]["position"] == [0.55, 0.0, 0.75]  # at the fixture
            jobs += 1
            s["robot"] = {"busy": False, "jobs_done": jobs, "result": "ok", "holding": 7}
        elif last == ("robot", "place") and s["robot"]["jobs_done"] == jobs:
            jobs += 1
            s["robot"] = {"busy": False, "jobs_done": jobs, "result": "ok", "holding": None}
    # the place was the first try: max_retries (2) re-seats, then an alarm, and no more
    assert _robot_jobs(port) == ["pick", "place"] * 2
    assert [(d, a["alarm"], a["active"]) for d, a in alarms] == [("mill", "part_not_seated", True)]


def test_a_place_that_does_not_arrive_is_retried_a_bounded_number_of_times():
    seq, port, alarms = _sequencer()
    s = _plant()
    seq.tick(s)  # pick from the infeed for the mill
    s["robot"] = {"busy": False, "jobs_done": 1, "result": "ok", "holding": 5}
    seq.tick(s)
    assert _robot_jobs(port) == ["pick", "place"]
    # a safe stop halts the place: placed again, not counted as a failure
    s["robot"] = {"busy": False, "jobs_done": 2, "result": "halted", "holding": 5}
    seq.tick(s)
    assert _robot_jobs(port) == ["pick", "place", "place"] and alarms == []
    done = 2
    for result in ("not_reached", "collision", "not_reached"):
        done += 1
        s["robot"] = {"busy": False, "jobs_done": done, "result": result, "holding": 5}
        for _ in range(50):
            seq.tick(s)
    # the place, its halted repeat, two retries after not_reached and collision, then an alarm
    assert _robot_jobs(port) == ["pick"] + ["place"] * 4
    assert [(d, a["alarm"], a["tries"]) for d, a in alarms] == [("robot", "place_failed", 3)]


@pytest.mark.parametrize("refused", ["pick", "place"])
def test_a_refused_pick_or_place_is_retried_then_alarmed_not_waited_on(refused):
    """A command the arm refuses is a failed try like a job that ends badly: retried after
    retry_delay, then one alarm naming the refusal. Before, a refused place left the arm
    holding its part with the line stalled and no alarm."""
    seq, port, alarms = _sequencer()
    port.refuse.add(refused)
    s = _plant()
    seq.tick(s)  # pick from the infeed for the mill
    if refused == "place":
        s["robot"] = {"busy": False, "jobs_done": 1, "result": "ok", "holding": 5}
    for _ in range(round(10 / 0.01)):
        seq.tick(s)
    # the first try, two retries a retry_delay apart, then an alarm and no more
    assert _robot_jobs(port).count(refused) == 3
    ((device, alarm),) = [(d, a) for d, a in alarms]
    assert alarm["alarm"] == f"{refused}_failed" and alarm["tries"] == 3
    assert f"robot: {refused} refused: arm 'robot': {refused} target is too far" in alarm["message"]
    assert device == ("infeed_pick_eye" if refused == "pick" else "robot")


def test_a_part_too_heavy_for_the_cup_ends_in_one_alarm_on_the_real_line():
    from twin.automation import build_line

    text = DEFAULT.replace("mass = 0.35", "mass = 5.0")  # beyond the arm's 3 kg payload
    text = text.replace('weight = 0.7 }, { type = "cover", weight = 0.3 }', "weight = 1.0 }")
    with build_line(loads(text, "heavy.toml")) as line:
        monitor = ProductionMonitor(line.line)
        jobs = []
        for _ in range(round(45 / 0.5)):
            line.step(round(0.5 / line.dt))
            events = line.drain_events()
            monitor.consume(events)
            jobs += [e for e in events if e.kind == "arm_job_done"]
        k = monitor.kpis.snapshot(line.sim_time)
        # the arm's own attempts end in pick_failed; the sequencer retries twice, then alarms
        assert [j.data["result"] for j in jobs] == ["pick_failed"] * 3
        assert k["pick_failures"] == 3 and k["alarms"]["pick_failed"] == 1
        assert jobs[-1].time < 35.0, "and then leaves the part alone"
        assert_parts_conserved(line.counts())


def test_a_sink_where_the_robot_places_takes_each_part_once_it_is_let_go():
    """The sink moved to the outfeed's start, under the robot's place point. It used to take
    the part off the cup as the robot lowered it: a KeyError in the arm, or pybullet crashing
    the process on the part's dangling grip. A part on a gripper is not on the line."""
    text = DEFAULT.replace("offset = 0.7\n", "offset = -0.7\n", 1)  # the sink's
    assert "offset = -0.7\n\n[controller]" in text
    with build_line(loads(text, "sink_at_place.toml")) as line:
        completed = []
        for _ in range(round(150 / 0.5)):
            line.step(round(0.5 / line.dt))
            completed += [e.data["part"] for e in line.drain_events() if e.kind == "part_completed"]
        assert len(completed) >= 3 and len(set(completed)) == len(completed)
        assert line.line.pool.held <= set(line.line.pool.active)  # held parts stay on the line
        assert_parts_conserved(line.counts())
