"""The browser HMI in a real headless Chromium (Playwright driving the system's Chromium).

One twin (`twin serve --hmi`, realtime x5 with the built-in controller) and one browser are
shared by the tests of this module; each test opens its own page. Skipped, with the reason,
where Chromium is not installed (`.ci/run` installs it, so CI always runs these).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hmi_helpers import CHROMIUM, CHROMIUM_ARGS, SKIP_REASON, hmi_urls
from processes import ServeProcess

from twin.client import Client

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - dev extra not installed
    sync_playwright = None

pytestmark = pytest.mark.skipif(CHROMIUM is None or sync_playwright is None, reason=SKIP_REASON)


@pytest.fixture(scope="module")
def twin(serve_module) -> Iterator[tuple[ServeProcess, str, str]]:
    with serve_module("--mode", "realtime", "--rtf", "5", "--hmi=127.0.0.1:0") as server:
        observer, controller = hmi_urls(server)
        yield server, observer, controller
        assert server.stop() == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def client(twin: tuple[ServeProcess, str, str]) -> Iterator[Client]:
    server = twin[0]
    with Client(server.control, server.telemetry, timeout=5.0) as c:
        yield c


def open_page(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def number(page: Page, selector: str) -> int:
    text = page.inner_text(selector)
    return int(text) if text.strip().lstrip("-").isdigit() else -1


def wait_until(check, timeout: float, what: str):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def latest_state(client: Client):  # noqa: ANN201
    """The newest state on the telemetry socket (older ones queued meanwhile are skipped)."""
    state = client.recv_telemetry(timeout=2.0)[1]
    while client._sub is not None and client._sub.poll(0):
        state = client.recv_telemetry(timeout=0.1)[1]
    return state


def test_page_shows_the_running_line(twin, browser) -> None:  # noqa: ANN001
    page = open_page(browser, twin[2])
    try:
        expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
        expect(page.locator("#role")).to_have_text("controller")
        expect(page.locator("#line-name")).to_have_text("default_line")
        step0 = wait_until(
            lambda: number(page, "#step") > 0 and number(page, "#step"), 10, "a step"
        )
        wait_until(lambda: number(page, "#step") > step0 + 50, 10, "the step counter to advance")
        done0 = number(page, "#parts-completed")
        wait_until(
            lambda: number(page, "#parts-completed") > done0, 40, "the parts count to advance"
        )
        # the 3D view is drawn, the panels are filled from describe and the KPIs
        assert page.locator("#view canvas").count() == 1
        assert page.locator('.station-tile[data-device="mill"]').count() == 1
        assert page.locator('.station-tile[data-device="line"]').count() == 1
        expect(page.locator('.kpi[data-kpi="throughput"] .value')).not_to_have_text("-")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        page.close()


def test_station_tile_changes_colour_with_its_packml_state(twin, browser) -> None:  # noqa: ANN001
    page = open_page(browser, twin[2])
    try:
        tile = page.locator('.station-tile[data-device="mill"]')
        seen: dict[str, str] = {}

        def two_states() -> bool:
            state, shown, colour = tile.evaluate(
                "e => [e.dataset.state, e.querySelector('.state').textContent,"
                " getComputedStyle(e).backgroundColor]"
            )
            if state:
                assert shown == state
                seen[state] = colour
            return len({s for s in seen if s in ("Execute", "Idle", "Complete", "Suspended")}) >= 2

        wait_until(two_states, 40, "the mill to change its PackML state")
        colours = {seen[s] for s in seen if s in ("Execute", "Idle", "Complete", "Suspended")}
        assert len(colours) >= 2, seen
    finally:
        page.close()


def test_observer_page_has_no_working_command_buttons(twin, browser, client) -> None:  # noqa: ANN001
    page = open_page(browser, twin[1])  # the URL without the controller token
    try:
        expect(page.locator("#role")).to_have_text("observer", timeout=10_000)
        expect(page.locator('.station-tile[data-device="mill"] .state')).not_to_have_text("-")
        buttons = page.locator("button.cmd")
        assert buttons.count() > 10
        for i in range(buttons.count()):
            assert buttons.nth(i).is_disabled(), buttons.nth(i).inner_text()
        page.locator("#estop").click(force=True)  # a disabled button does nothing
        # a page that sends the request anyway (from the console) is refused by the gateway
        page.evaluate("hmi.send({op: 'estop'})")
        expect(page.locator("#message")).to_contain_text("refused (forbidden)")
        time.sleep(0.5)
        assert client.get_state().estopped is False
    finally:
        page.close()


def test_estop_from_the_page_stops_the_line_and_reset_brings_it_back(twin, browser, client) -> None:  # noqa: ANN001
    client.subscribe(("state",))
    page = open_page(browser, twin[2])
    try:
        expect(page.locator("#role")).to_have_text("controller", timeout=10_000)
        expect(page.locator("#line-state")).to_have_text("line Execute", timeout=10_000)
        page.locator("#estop").click()

        def stopped() -> bool:
            s = latest_state(client)
            return (
                s.estopped
                and not s.signals["infeed"]["running"]
                and s.signals["line"]["state"] != "Execute"
            )

        wait_until(stopped, 10, "the e-stop in the telemetry")
        expect(page.locator("#line-state")).to_have_text("E-STOP")
        expect(page.locator("#alarms li[data-kind='estop']")).to_have_count(1)
        # a command the twin refuses while e-stopped shows the twin's own message
        page.locator('.device-tile[data-device="infeed"] button[data-command="run"]').click()
        expect(page.locator("#message")).to_contain_text("refused (estopped)")
        expect(page.locator("#alarms li[data-kind='refused']").first).to_contain_text("run")
        # acknowledge the e-stop alarm
        page.locator("#alarms li[data-kind='estop'] button.ack").click()
        expect(page.locator("#alarms li[data-kind='estop']")).to_have_class("alarm acked")

        page.locator("#estop-reset").click()

        def running() -> bool:
            s = latest_state(client)
            return (not s.estopped and s.signals["line"]["state"] == "Execute"
                    and s.signals["infeed"]["running"])  # fmt: skip

        wait_until(running, 15, "the line back in Execute with its belts running")
        expect(page.locator("#line-state")).to_have_text("line Execute")
        expect(page.locator("#control")).to_have_text("you hold control")
        page.locator("#release").click()
        expect(page.locator("#control")).to_have_text("")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        page.close()
