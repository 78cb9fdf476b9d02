"""The Modbus TCP gateway: a pymodbus server whose registers mirror a running twin.

Like the OPC UA gateway it is a client of the twin's ZeroMQ protocol: the register map comes
from `describe` (register_map.py), telemetry keeps the input image current, and writes
become `command` requests under the twin's control lease. Modbus has no users: every client
of the gateway is a controller, so it listens on loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.server import ModbusTcpServer

from twin.gateways.lease import Lease, LeaseRefused
from twin.gateways.link import LinkError, TwinLink, cancel_and_wait
from twin.gateways.modbus.register_map import (
    COIL,
    DISCRETE,
    HOLDING,
    INPUT,
    NOT_GIVEN,
    Entry,
    RegisterMap,
    encode_number,
    from_words,
    to_words,
)
from twin.gateways.model import LINE_KPIS, PACKML_STATES, LineModel, line_model
from twin.protocol import messages as m

DEFAULT_ADDRESS = "127.0.0.1:5020"
_TABLE_OF = {
    1: COIL,
    5: COIL,
    15: COIL,
    2: DISCRETE,
    4: INPUT,
    3: HOLDING,
    6: HOLDING,
    16: HOLDING,
    22: HOLDING,
    23: HOLDING,
}
# the twin's refusal codes as Modbus exceptions, and as numbers in twin.last_refusal
_VALUE_ERRORS = {
    "out_of_range",
    "out_of_reach",
    "bad_type",
    "bad_value",
    "not_finite",
    "missing_arg",
    "unknown_arg",
}
REFUSAL_CODES = {
    "out_of_range": 1,
    "out_of_reach": 2,
    "bad_type": 3,
    "bad_value": 4,
    "not_finite": 5,
    "missing_arg": 6,
    "unknown_arg": 7,
    "illegal_state": 10,
    "busy": 11,
    "holding": 12,
    "not_holding": 13,
    "fault_active": 14,
    "estopped": 15,
    "control_held": 20,
    "not_controller": 21,
    "timeout": 30,
}


@dataclass
class ModbusOptions:
    address: str = DEFAULT_ADDRESS  # host:port to listen on
    control: str = "tcp://127.0.0.1:5555"
    telemetry: str = "tcp://127.0.0.1:5556"
    allow_remote: bool = False
    curve: tuple[str, str] | None = None
    watchdog: float = 2.0
    idle_timeout: float = 5.0
    connect_timeout: float = 30.0


class _Refusal(Exception):
    def __init__(self, exc: ExcCodes, code: str, message: str) -> None:
        super().__init__(message)
        self.exc = exc
        self.code = code
        self.message = message


class ModbusGateway:
    OWNER = "Modbus clients"

    def __init__(self, opts: ModbusOptions) -> None:
        self.opts = opts
        self.host, self.port = _host_port(opts.address)
        if not opts.allow_remote and not _is_loopback(self.host):
            raise ValueError(
                f"refusing to listen on {opts.address}: Modbus has no authentication, so anyone "
                "who reaches it drives the line; use a loopback address or --allow-remote"
            )
        self.link = TwinLink(opts.control, opts.telemetry, curve=opts.curve)
        self.lease = Lease(self.link, opts.watchdog, opts.idle_timeout)
        self.model: LineModel | None = None
        self.map: RegisterMap | None = None
        self.image: dict[str, list[int]] = {}
        self.server: ModbusTcpServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one write at a time, in arrival order

    async def link_only(self) -> m.State:
        """Connect to the twin and build the map, without serving Modbus (for --map)."""
        self.link.start()
        describe, state = await self._first_contact()
        self.model = line_model(describe)
        lengths = {
            f"{d}.{s}": len(v)
            for d, sigs in state.signals.items()
            for s, v in sigs.items()
            if isinstance(v, list)
        }
        self.map = RegisterMap(self.model, lengths)
        return state

    async def start(self) -> None:
        state = await self.link_only()
        assert self.map is not None and self.model is not None
        for table in (COIL, DISCRETE, INPUT, HOLDING):
            size = max(
                (e.address + e.words for e in self.map.entries if e.table == table), default=0
            )
            self.image[table] = [0] * size
        points = {tp.name: tp.point for tp in self.model.teach_points}
        for e in self.map.entries:
            if e.kind == "teach" and e.index is not None:
                self._set(e, points[e.field][e.index])
        self._on_state(state)
        self.link.on_state = self._on_state
        self.link.on_kpis = self._on_kpis
        self.link.on_connection = self._on_connection
        self.server = ModbusTcpServer(_Context(self), address=(self.host, self.port))
        self._task = asyncio.create_task(self.server.serve_forever())
        await asyncio.sleep(0)  # let it bind

    async def _first_contact(self) -> tuple[Any, m.State]:
        deadline = time.monotonic() + self.opts.connect_timeout
        while True:
            try:
                return (
                    await self.link.request(m.Describe(), timeout=2.0),
                    await self.link.request(m.GetState(), timeout=2.0),
                )
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no answer from the twin at {self.opts.control}") from None

    # telemetry -> image -------------------------------------------------------------------
    def _set(self, e: Entry, value: Any) -> None:
        img = self.image[e.table]
        if e.words == 1:
            img[e.address] = 1 if value else 0
            return
        if e.kind == "packml_state":
            raw = PACKML_STATES.get(str(value), 0)
        elif e.choices:
            raw = e.choices.index(value) + 1 if value in e.choices else 0
        elif value is None:
            raw = 0
        else:
            raw = encode_number(float(value), e.scale)
        img[e.address], img[e.address + 1] = to_words(raw)

    def _on_state(self, state: m.State) -> None:
        assert self.map is not None
        twin = {
            "connected": self.link.connected,
            "estopped": state.estopped,
            "controlled": state.controlled,
            "lease": self.lease.held,
            "time": state.time,
            "step": state.step,
        }
        for e in self.map.entries:
            if e.kind == "twin" and e.field in twin:
                self._set(e, twin[e.field])
            elif e.kind == "command" or (e.kind == "twin" and e.table == COIL):
                self.image[COIL][e.address] = 0
            elif e.kind in ("signal", "packml_state", "choice", "setpoint", "present"):
                value = state.signals.get(e.device, {}).get(e.field)
                if e.index is not None:
                    value = (
                        value[e.index] if isinstance(value, list) and len(value) > e.index else 0
                    )
                self._set(e, value)

    def _on_connection(self, up: bool) -> None:
        assert self.map is not None
        for e in self.map.entries:
            if e.kind == "twin" and e.field == "connected":
                self._set(e, up)

    def _on_kpis(self, msg: m.Kpis) -> None:
        assert self.map is not None
        paths = {name: path for name, path, _u, _d in LINE_KPIS}
        for e in self.map.entries:
            if e.kind == "kpi":
                v: Any = msg.kpis
                for p in paths[e.field]:
                    v = v.get(p) if isinstance(v, dict) else None
                self._set(e, v if isinstance(v, (int, float)) else 0)

    # requests ------------------------------------------------------------------------------
    def read(self, fc: int, address: int, count: int) -> list[int] | list[bool] | ExcCodes:
        self.lease.touch(self.OWNER)
        table = _TABLE_OF.get(fc)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        img = self.image[table]
        if address < 0 or count < 1 or address + count > len(img):
            return ExcCodes.ILLEGAL_ADDRESS
        values = img[address : address + count]
        return [bool(v) for v in values] if table in (COIL, DISCRETE) else values

    async def write(
        self, fc: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        self.lease.touch(self.OWNER)
        assert self.map is not None
        table = _TABLE_OF.get(fc)
        if table not in (COIL, HOLDING):
            return ExcCodes.ILLEGAL_FUNCTION
        entries = self._entries(table, address, len(values))
        if entries is None:
            return ExcCodes.ILLEGAL_ADDRESS
        async with self._lock:
            for e in entries:
                offset = e.address - address
                raw = (
                    int(values[offset])
                    if e.words == 1
                    else from_words(int(values[offset]), int(values[offset + 1]))
                )
                try:
                    await self._apply(e, raw)
                except _Refusal as r:
                    self._refused(r.code)
                    return r.exc
            self._refused(None)
        return None

    def _entries(self, table: str, address: int, count: int) -> list[Entry] | None:
        """The entries a write covers: only whole, mapped entries (else None)."""
        assert self.map is not None
        found: list[Entry] = []
        a = address
        while a < address + count:
            e = self.map.by_address.get((table, a))
            if e is None or e.address != a or a + e.words > address + count:
                return None
            found.append(e)
            a += e.words
        return found

    def _refused(self, code: str | None) -> None:
        e = next(x for x in self.map.entries if x.name == "twin.last_refusal")  # type: ignore[union-attr]
        self._set(e, REFUSAL_CODES.get(code, 99) if code else 0)

    async def _apply(self, e: Entry, raw: int) -> None:
        if e.kind == "arg":  # a parameter of a command: kept until its coil is written
            self.image[e.table][e.address : e.address + 2] = to_words(raw)
            return
        if e.kind == "setpoint":
            dev = self.model.device(e.device)  # type: ignore[union-attr]
            cmd = next(c for c in dev.commands if c.name == e.command)
            arg = cmd.args[0]
            value: Any = (
                bool(raw) if arg.type == "bool" else (raw if arg.type == "int" else raw / e.scale)
            )
            await self._command(e.device, e.command, {arg.name: value})
            self._set(e, value)
            return
        if e.kind == "command":
            if raw:
                await self._command(e.device, e.command, self._args(e))
                self.image[COIL][e.address] = 1  # echoed to the writer; 0 again at the next state
            return
        if e.kind == "twin" and raw:
            try:
                if e.field == "estop":
                    await self.link.request(m.Estop(reason="Modbus client"))
                elif e.field == "estop_reset":
                    await self.lease.acquire(self.OWNER, self.OWNER)
                    await self.link.request(m.EstopReset())
            except (LinkError, LeaseRefused) as err:
                raise _Refusal(ExcCodes.DEVICE_FAILURE, err.code, err.message) from None

    def _args(self, coil: Entry) -> dict[str, Any]:
        """A command's arguments from its holding registers."""
        assert self.map is not None and self.model is not None
        cmd = next(c for c in self.model.device(coil.device).commands if c.name == coil.command)
        args: dict[str, Any] = {}
        for a in cmd.args:
            regs = [
                e
                for e in self.map.entries
                if e.kind == "arg"
                and e.device == coil.device
                and e.command == coil.command
                and e.field == a.name
            ]
            raws = [from_words(*self.image[HOLDING][e.address : e.address + 2]) for e in regs]
            if a.optional and a.type != "str" and NOT_GIVEN in raws:
                continue
            if a.type in ("vec3", "floats"):
                args[a.name] = [r / regs[0].scale for r in raws]
            elif a.type == "bool":
                args[a.name] = bool(raws[0])
            elif a.type == "int":
                args[a.name] = raws[0]
            elif a.type == "str":
                if raws[0] == 0 and a.optional:
                    continue
                choices = a.choices or []
                if not 1 <= raws[0] <= len(choices):
                    raise _Refusal(
                        ExcCodes.ILLEGAL_VALUE, "bad_value", f"{a.name}: no choice {raws[0]}"
                    )
                args[a.name] = choices[raws[0] - 1]
            else:
                args[a.name] = raws[0] / regs[0].scale
        return args

    async def _command(self, device: str, command: str, args: dict[str, Any]) -> None:
        try:
            await self.lease.command(self.OWNER, self.OWNER, device, command, args)
        except LeaseRefused as e:
            raise _Refusal(ExcCodes.DEVICE_BUSY, e.code, e.message) from None
        except LinkError as e:
            exc = ExcCodes.ILLEGAL_VALUE if e.code in _VALUE_ERRORS else ExcCodes.DEVICE_FAILURE
            raise _Refusal(exc, e.code, e.message) from None
        except TimeoutError as e:
            raise _Refusal(ExcCodes.GATEWAY_NO_RESPONSE, "timeout", str(e)) from None

    async def stop(self) -> None:
        await self.lease.release()
        if self.server is not None:
            await self.server.shutdown()
        await cancel_and_wait([self._task])
        await self.link.close()


class _Context(ModbusServerContext):
    """pymodbus's datastore interface, answered from the gateway's image and commands."""

    def __init__(self, gateway: ModbusGateway) -> None:  # no super(): no pymodbus datastore
        self.gateway = gateway
        self.old_simulator = True  # pymodbus then calls async_getValues/async_setValues
        self.simdevices: list[Any] = []
        self._devices: dict[int, Any] = {}

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> Any:
        return self.gateway.read(func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Any
    ) -> Any:
        return await self.gateway.write(func_code, address, values)

    def device_ids(self) -> list[int]:
        return [0]


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
