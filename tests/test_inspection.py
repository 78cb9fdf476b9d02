"""Visual defects and the inspection station: defective parts look defective, the built-in
colour test and a Python inspector reject them and pass good parts, a failing inspector
gets the configured verdict with an event, and the sink's counts and OEE quality follow."""

from __future__ import annotations

import pytest

from twin.analytics.monitor import ProductionMonitor
from twin.config import ConfigError, loads
from twin.geometry import eye_point
from twin.line import Line
from twin.serve_process import ROOT

pytestmark = pytest.mark.timeout(120)

LINE = (
    (ROOT / "configs" / "camera_line.toml")
    .read_text()
    .replace("width = 320\nheight = 240", "width = 64\nheight = 48")
)
INSPECTION = "devices[11] (device 'vision_check')"


def with_inspector(inspector: str, on_error: str = "reject") -> str:
    return LINE.replace('inspector = "color"', f'inspector = "{inspector}"').replace(
        'on_error = "reject"', f'on_error = "{on_error}"'
    )


def run_parts(text: str, defects: list[bool]) -> tuple[Line, list, ProductionMonitor]:
    """Put each part at the pick eye in turn (defective or not) and let the station look."""
    cfg = loads(text, "inspect.toml")
    line = Line(cfg)
    monitor = ProductionMonitor(line)
    spot = eye_point(cfg, cfg.device("infeed_pick_eye"))
    events = []
    for i, defect in enumerate(defects):
        part = line.pool.spawn(
            "housing" if i % 2 else "cover",
            [spot[0], spot[1], spot[2] + 0.03],
            0.3 * i,
            line.sim_time,
            defect="defective material" if defect else None,
        )
        line.step(30)
        line.pool.release(part.id, "completed")  # taken away: the next one comes
        line.step(2)
        batch = line.drain_events()
        monitor.consume(batch)
        events += batch
    return line, events, monitor


def verdicts(events: list) -> list[str]:
    return [e.data["verdict"] for e in events if e.kind == "part_inspected"]


def test_the_colour_test_rejects_defective_parts_and_passes_good_ones():
    line, events, _ = run_parts(LINE, [False, True, True, False, False, True])
    try:
        assert verdicts(events) == ["pass", "reject", "reject", "pass", "pass", "reject"]
        signals = line.devices["vision_check"].signals()
        assert (signals["inspected"], signals["passed"], signals["rejected"]) == (6, 3, 3)
        reasons = [e.data["reason"] for e in events if e.kind == "part_inspected"]
        assert "nearer the defect colour" in reasons[1]
        # the defective part is dark in the picture: the defect is visible
        assert all(e.kind != "inspection_failed" for e in events)
    finally:
        line.close()


def test_a_python_inspector_judges_parts_and_its_rejects_count_as_rejects():
    line, events, monitor = run_parts(with_inspector("inspectors:dark_is_bad"), [True, False])
    try:
        assert verdicts(events) == ["reject", "pass"]
        inspected = [e for e in events if e.kind == "part_inspected"]
        assert inspected[0].data["inspector"] == "inspectors:dark_is_bad"
        kpis = monitor.kpis.snapshot(line.sim_time)
        assert kpis["inspections"] == {"vision_check": {"passed": 1, "rejected": 1, "failed": 0}}
    finally:
        line.close()


def test_a_good_part_an_inspector_failed_on_is_a_reject():
    # an inspector that sees every part as bad: the good part's quality follows its verdict
    text = with_inspector("inspectors:crashes", on_error="reject")
    cfg = loads(text, "inspect.toml")
    line = Line(cfg)
    try:
        monitor = ProductionMonitor(line)
        spot = eye_point(cfg, cfg.device("infeed_pick_eye"))
        part = line.pool.spawn("housing", [spot[0], spot[1], spot[2] + 0.03], 0.0, 0.0)
        line.step(30)
        assert part.quality == "reject" and "inspection vision_check" in part.defect
        events = line.drain_events()
        monitor.consume(events)
        failed = [e for e in events if e.kind == "inspection_failed"]
        assert failed and "RuntimeError: model weights not found" in failed[0].data["reason"]
        assert failed[0].data["verdict"] == "reject"
        kpis = monitor.kpis.snapshot(line.sim_time)
        assert kpis["inspections"] == {"vision_check": {"passed": 0, "rejected": 1, "failed": 1}}
    finally:
        line.close()


@pytest.mark.parametrize(
    ("inspector", "on_error", "reason"),
    [
        ("inspectors:crashes", "pass", "inspector raised RuntimeError: model weights not found"),
        ("inspectors:mumbles", "reject", "inspector answered 'maybe'"),
    ],
)
def test_a_failing_inspector_gets_the_configured_verdict_and_an_event(inspector, on_error, reason):
    line, events, _ = run_parts(with_inspector(inspector, on_error), [False, True])
    try:
        assert verdicts(events) == [on_error, on_error]
        failed = [e for e in events if e.kind == "inspection_failed"]
        assert len(failed) == 2 and all(reason in e.data["reason"] for e in failed)
    finally:
        line.close()


def test_a_hung_python_inspector_gets_the_on_error_verdict_after_its_call_timeout():
    text = with_inspector("inspectors:hangs", on_error="pass").replace(
        "call_timeout = 2.0", "call_timeout = 0.2"
    )
    line, events, _ = run_parts(text, [True, False, True])
    try:
        assert verdicts(events) == ["pass", "pass", "pass"]  # the line goes on
        reasons = [e.data["reason"] for e in events if e.kind == "inspection_failed"]
        assert reasons[0] == "inspector gave no answer within 0.2 s"
        assert all("inspector still busy with part" in r for r in reasons[1:]), reasons
        assert len(reasons) == 3
    finally:
        line.close()


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (with_inspector("magic"), "inspector", "neither 'color', 'external' nor 'module:function'"),
        (with_inspector("inspectors:missing"), "inspector", "AttributeError"),
        (with_inspector("inspectors:NOT_CALLABLE"), "inspector", "is not callable"),
        (with_inspector("no_such_module:f"), "inspector", "ModuleNotFoundError"),
        (
            LINE.replace('camera = "overhead"', 'camera = "wrist"'),
            "camera",
            "camera 'wrist' needs the rgb and segmentation modalities",
        ),
        (
            LINE.replace('eye = "infeed_pick_eye"', 'eye = "mill"'),
            "eye",
            "'mill' is a station, expected a photoeye",
        ),
    ],
)
def test_bad_inspections_are_config_errors(text, field, problem):
    with pytest.raises(ConfigError) as err:
        loads(text, "inspect.toml")
    assert str(err.value).startswith(f"inspect.toml: {INSPECTION}.{field}: "), str(err.value)
    assert problem in str(err.value)


def test_a_silent_external_inspector_gets_the_on_error_verdict_after_its_timeout():
    line, events, _ = run_parts(with_inspector("external", on_error="pass"), [True])
    try:
        # run_parts waits 32 steps: not yet the 5 s timeout
        assert [e.kind for e in events if "inspect" in e.kind] == ["inspection_requested"]
        line.step(500)
        events = line.drain_events()
        failed = [e for e in events if e.kind == "inspection_failed"]
        assert "no verdict from the external inspector within 5.0 s" in failed[0].data["reason"]
        assert verdicts(events) == ["pass"]
        with pytest.raises(Exception, match="not waiting for a verdict on part 1"):
            line.apply("vision_check", "verdict", {"part": 1, "verdict": "reject"})
    finally:
        line.close()


def test_an_external_inspector_over_the_socket_rejects_defects_and_passes_good_parts(
    tmp_path, serve
):
    """A client judges parts from get_image pictures while the built-in controller runs
    the line in lockstep; its verdicts become part quality, counted by the KPIs."""
    from twin.client import Client
    from twin.protocol import messages as m
    from twin.vision.frames import decode_image

    path = tmp_path / "line.toml"
    path.write_text(
        with_inspector("external").replace("first_at = 0.5", "first_at = 0.5\ndefect_rate = 0.5")
    )
    with serve(str(path), "--mode", "lockstep") as server:
        with Client(server.control, server.telemetry, timeout=30.0) as c:
            c.subscribe(["event"])
            c.take_control()
            judged: dict[int, str] = {}
            truth: dict[int, str] = {}
            for _ in range(60):
                if len(set(truth.values())) == 2 and set(truth) <= set(judged):
                    break
                c.step(100)
                while True:
                    try:
                        _, ev = c.recv_telemetry(timeout=0.3)
                    except Exception:
                        break
                    if ev.kind == "part_spawned":
                        truth[ev.data["part"]] = ev.data["quality"]
                    if ev.kind != "inspection_requested":
                        continue
                    part = ev.data["part"]
                    get = m.GetImage(camera=ev.data["camera"], modality="segmentation")
                    mask = decode_image(c.request(get)) == part
                    rgb = decode_image(c.request(m.GetImage(camera="overhead", modality="rgb")))
                    verdict = "reject" if rgb[mask].mean() < 80 else "pass"
                    c.command("vision_check", "verdict", part=part, verdict=verdict)
                    judged[part] = verdict
            assert set(truth.values()) == {"good", "reject"}, truth
            for part, verdict in judged.items():
                assert verdict == ("reject" if truth[part] == "reject" else "pass")
            kpis = c.get_kpis()["inspections"]["vision_check"]
            assert kpis["rejected"] == list(judged.values()).count("reject") > 0
            assert kpis["passed"] == list(judged.values()).count("pass") > 0
            assert kpis["failed"] == 0
