"""The browser HMI on a factory: the route network, docks and AMRs drawn, an AMR's tile
following it as a client drives it over the protocol (real `twin serve --hmi`, real
headless Chromium). Skipped where Chromium is not installed, as the other browser tests.
"""

from __future__ import annotations

import pytest
from hmi_helpers import CHROMIUM, CHROMIUM_ARGS, SKIP_REASON, hmi_urls
from processes import ROOT

from twin.client import Client

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - dev extra not installed
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or sync_playwright is None, reason=SKIP_REASON),
    pytest.mark.timeout(120),
]


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
