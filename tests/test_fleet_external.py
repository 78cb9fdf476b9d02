"""An external fleet manager (examples/fleet_manager.py, a client of the protocol only, in its
own process) moves parts between the cells of a factory served with --no-builtin-fleet:
the twin's cells and order book keep running, the AMRs do what the client says."""

from __future__ import annotations

from pathlib import Path

from processes import run_example

from tests.factory_mini import mini_factory_toml
from twin.client import Client


def test_an_external_fleet_manager_moves_parts_between_cells(serve, tmp_path: Path) -> None:
    config = tmp_path / "mini.toml"
    config.write_text(mini_factory_toml(amrs=2, mills=1, cycle_time=5.0))
    server = serve(str(config), "--mode", "lockstep", "--no-builtin-fleet")
    with Client(server.control, timeout=20) as client:
        hello = client.hello("test")
        assert hello.builtin_controller and not hello.builtin_fleet
        before = client.get_state()
        client.take_control()
        client.step(200)  # the cells start; nothing drives the AMRs
        idle = client.get_state()
        client.release_control()
        assert all(
            idle.signals[a]["moves_done"] == before.signals[a]["moves_done"] == 0
            for a in ("amr1", "amr2")
        )
    result = run_example(
        "fleet_manager.py",
        str(config),
        "--control",
        server.control,
        "--steps",
        "13000",
        timeout=80,
    )
    assert result["transports"] >= 2, result  # receiving -> mill, mill -> shipping
    assert result["parts_completed"] >= 1, result
    with Client(server.control, timeout=20) as client:
        parts = client.genealogy()
        orders = client.orders()
    milled = [p for p in parts if any(v["station"] == "mill1_station" for v in p["visits"])]
    assert any(p["completed"] is not None for p in milled), parts
    assert all(p["order"] == "o1" for p in parts)  # released by the twin's order book
    assert orders[0]["id"] == "o1" and orders[0]["shipped"] >= 1
