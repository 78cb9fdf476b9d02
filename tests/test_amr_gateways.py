"""The gateways on a factory: the browser HMI draws the route network, docks and AMRs, an
AMR's tile following it as a client drives it over the protocol (real `twin serve --hmi`,
real headless Chromium; skipped where Chromium is not installed, as the other browser
tests); the Foxglove scene draws them too; the Modbus map holds a factory's many teach
points and its AMRs.
"""

from __future__ import annotations

import pytest
from hmi_helpers import CHROMIUM, CHROMIUM_ARGS, SKIP_REASON, hmi_urls
from processes import ROOT

from twin.client import Client
from twin.config import load
from twin.gateways.foxglove.scene import SceneBuilder
from twin.line import Line
from twin.protocol import messages as m

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - dev extra not installed
    sync_playwright = None

pytestmark = pytest.mark.timeout(120)
needs_browser = pytest.mark.skipif(CHROMIUM is None or sync_playwright is None, reason=SKIP_REASON)


def test_the_foxglove_scene_draws_the_network_docks_and_amrs_where_they_are() -> None:
    line = Line(load(ROOT / "configs" / "factory_small.toml"))
    with line:
        desc = line.describe()
        scene = SceneBuilder(desc["devices"], desc["part_types"], desc["network"])
        line.apply("amr1", "go_to", {"node": desc["network"]["lanes"][0]["to"]})
        line.step(150)
        state = m.State(signals=line.signals(), parts=line.part_poses())
        text = repr(scene.update(state, 1_000_000))
        amr1 = line.devices["amr1"]
        kinds = {d["id"]: (d["kind"], d.get("geometry", {})) for d in desc["devices"]}
        dock = next(i for i, (k, _) in kinds.items() if k == "dock")
        at_dock = next(i for i, (k, g) in kinds.items() if k == "source" and "deck_point" in g)
        for entity in ("network", "amr1", dock, at_dock):
            assert f'id: "{entity}"' in text, entity
        assert f"x: {amr1.x}, y: {amr1.y}" in text  # the chassis where the AMR is
        assert 'text: "amr1: driving"' in text


def test_the_modbus_map_of_a_factory_holds_its_teach_points_and_amrs() -> None:
    from twin.gateways.modbus.command import map_from_config
    from twin.gateways.modbus.register_map import BLOCK, RegisterMap

    regs = map_from_config(str(ROOT / "configs" / "factory_6cell.toml"))
    assert isinstance(regs, RegisterMap)
    by_name = {e.name: e for e in regs.entries}
    teach = [e for e in regs.entries if e.kind == "teach"]
    assert len(teach) > BLOCK // 2  # more than block 0 holds: the twin takes more blocks
    state = by_name["amr1.state"]
    assert state.choices is not None and "blocked" in state.choices
    assert state.address > max(e.address for e in teach)
    assert by_name["amr1.go_to.node"].choices  # a node picked by its index
    default = map_from_config(str(ROOT / "configs" / "default_line.toml"))
    assert isinstance(default, RegisterMap)
    # a line whose teach points fit keeps its addresses: its first device at block 1
    assert min(e.address for e in default.entries if e.kind == "signal") == BLOCK


@needs_browser
def test_the_page_draws_a_factory_and_follows_an_amr(serve) -> None:
    config = str(ROOT / "configs" / "factory_small.toml")
    args = (config, "--mode", "realtime", "--rtf", "5", "--no-builtin-controller")
    with (
        serve(*args, "--hmi=127.0.0.1:0") as server,
        Client(server.control, server.telemetry, timeout=10.0) as client,
        sync_playwright() as p,
    ):
        _, controller_url = hmi_urls(server)
        net = client.describe().network
        assert net is not None
        start = next(d for d in client.describe().devices if d["id"] == "amr1")["geometry"]
        lane = next(lane for lane in net["lanes"] if lane["from"] == start["start"])
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(controller_url)
            expect(page.locator("#connection")).to_have_text("live", timeout=20_000)
            tile = page.locator('.device-tile[data-device="amr1"]')
            expect(tile.locator(".state")).to_have_text("idle", timeout=10_000)
            expect(tile.locator(".detail")).to_contain_text(start["start"], timeout=10_000)
            client.take_control()
            client.command("amr1", "go_to", node=lane["to"])
            expect(tile.locator(".state")).to_have_text("driving", timeout=10_000)
            expect(tile.locator(".detail")).to_contain_text(lane["to"], timeout=30_000)
            expect(tile.locator(".state")).to_have_text("idle", timeout=30_000)
            assert page.locator("#view canvas").count() == 1
            assert errors == []  # the scene was built: docks, dock sources, AMRs, lanes
        finally:
            browser.close()
        client.release_control()
