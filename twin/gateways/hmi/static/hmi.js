// The HMI page: one WebSocket to the HMI gateway, panels updated from its messages.
// Messages in: welcome, state, kpis, alarm, acked, control, reply, camera. Out: see messages.py.
//
// Cheap to watch: telemetry messages only keep the newest value and ask for a frame; one
// frame (requestAnimationFrame) paints whatever changed since the last, at most PAINT_HZ
// times a second, touching only the nodes whose content changed. A still line paints nothing.
import { stateColor, ACTIVITY_COLORS } from "./colors.js";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, text = "") => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
};

const hmi = {
  socket: null, role: "observer", welcome: null, state: null, refs: 0,
  since: {},            // device -> {state, time}: when its PackML state last changed (sim s)
  trends: {},           // KPI name -> recent values
  tiles: [],            // the station and device tiles, with their nodes that change
  displayLog: [],       // [{device, state, step, received, t}]: wall-clock ms a change arrived, was painted
  cameraImages: {},     // camera -> its newest image message, not yet shown
  scene: null,
  send(op) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return null;
    op.ref = ++this.refs;
    this.socket.send(JSON.stringify(op));
    return op.ref;
  },
};
window.hmi = hmi;  // for tests and the curious

function connect() {
  const token = new URLSearchParams(location.search).get("token");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  const socket = new WebSocket(`${scheme}://${location.host}/ws${query}`);
  hmi.socket = socket;
  socket.onopen = () => setConnection("live", "ok");
  socket.onclose = () => { setConnection("disconnected", "bad"); setTimeout(connect, 2000); };
  socket.onmessage = (e) => handle(JSON.parse(e.data));
}

function setConnection(text, cls) {
  const badge = $("#connection");
  setText(badge, text);
  setClass(badge, `badge ${cls}`);
}

function handle(msg) {
  switch (msg.type) {
    case "welcome": return onWelcome(msg);
    case "state": return onState(msg);
    case "kpis": return onKpis(msg.kpis);
    case "alarm": return addAlarm(msg.entry, true);
    case "acked": return markAcked(msg.id);
    case "control": return onControl(msg);
    case "reply": return onReply(msg);
    case "camera": return onCamera(msg);
  }
}

// -- structure from describe ----------------------------------------------------------------
function onWelcome(msg) {
  hmi.welcome = msg;
  hmi.role = msg.role;
  $("#line-name").textContent = msg.line;
  $("#mode").textContent = `${msg.mode}${msg.builtin_controller ? " · sequencer" : ""}`;
  const role = $("#role");
  role.textContent = msg.role;
  role.title = msg.why;
  role.className = `badge ${msg.role === "controller" ? "ok" : ""}`;
  buildTiles(msg);
  buildCameras(msg);
  $("#alarms").replaceChildren();
  for (const entry of [...msg.alarms].reverse()) addAlarm(entry, true);
  setControlsEnabled();
  if (!hmi.scene) import("./scene.js").then((m) => { hmi.scene = m.createScene($("#view"), msg, requestPaint); requestPaint(); })
    .catch((err) => { $("#view").textContent = `3D view unavailable: ${err.message}`; });
}

function buildTiles(msg) {
  const stations = $("#stations"), devices = $("#devices");
  stations.replaceChildren();
  devices.replaceChildren();
  for (const dev of msg.devices) {
    const packml = dev.kind === "station" || dev.kind === "line";
    if (!packml && !["conveyor", "arm", "source", "amr"].includes(dev.kind)) continue;
    const tile = el("div", { class: "tile", "data-device": dev.id, "data-kind": dev.kind });
    const head = el("div", { class: "head" });
    head.append(el("span", {}, dev.id), el("span", { class: "state" }, "-"));
    tile.append(head, el("div", { class: "row detail" }));
    if (dev.kind === "station") tile.append(el("div", { class: "progress" }), el("div", { class: "shares" }));
    tile.querySelector(".progress")?.append(el("div"));
    tile.append(el("div", { class: "buttons" }));
    tile.classList.add(packml ? "station-tile" : "device-tile");
    (packml ? stations : devices).append(tile);
    if (!packml) addDeviceButtons(tile, dev);
  }
  // the line first
  const line = stations.querySelector('[data-device="line"]');
  if (line) stations.prepend(line);
  hmi.tiles = [...document.querySelectorAll(".tile")].map((node) => ({
    node, id: node.dataset.device, kind: node.dataset.kind, station: node.classList.contains("station-tile"),
    head: node.querySelector(".state"), detail: node.querySelector(".detail"), bar: node.querySelector(".progress > div"),
  }));
  hmi.since = {};
}

function addDeviceButtons(tile, dev) {
  const wanted = { conveyor: ["run", "stop"], arm: ["home", "halt"], source: ["enable", "disable"], amr: ["stop"] };
  const box = tile.querySelector(".buttons");
  for (const name of wanted[dev.kind] || []) {
    if (!dev.commands.some((c) => c.name === name)) continue;
    box.append(commandButton(dev.id, name));
  }
}

function commandButton(device, command) {
  const button = el("button", { class: "cmd", "data-command": command }, command);
  button.addEventListener("click", () => hmi.send({ op: "command", device, command, args: {} }));
  button.disabled = hmi.role !== "controller";
  return button;
}

// The line's cameras (rgb), newest image each, a few times a second.
function buildCameras(msg) {
  const cameras = msg.devices.filter((d) => d.kind === "camera");
  $("#cameras-panel").hidden = cameras.length === 0;
  $("#cameras").replaceChildren(...cameras.map((cam) => {
    const figure = el("figure", { "data-camera": cam.id });
    figure.append(el("img", { alt: `camera ${cam.id}` }), el("figcaption", {}, cam.id));
    return figure;
  }));
}

function onCamera(msg) {
  hmi.cameraImages[msg.camera] = msg;
  requestPaint();
}

function paintCameras() {
  for (const [camera, msg] of Object.entries(hmi.cameraImages)) {
    const figure = document.querySelector(`#cameras figure[data-camera="${camera}"]`);
    if (!figure) continue;
    figure.querySelector("img").src = msg.url;
    setText(figure.querySelector("figcaption"), `${camera} · ${msg.width}×${msg.height} · t ${msg.time.toFixed(1)} s`);
  }
  hmi.cameraImages = {};
}

// -- painting -------------------------------------------------------------------------------
// A frame at most every PAINT_MS: 20 a second is more than anyone reads, and keeps a PackML
// change on screen within a frame or two of its arrival. Numbers that change all the time
// (step, time, timers) are redrawn 5 times a second, the KPI cards twice. The 3D view draws in
// the same frames, when it has something new (scene.js); numbers and cards half due are
// drawn along with it, so that the page changes in as few frames as it can.
const PAINT_MS = 50;
const TEXT_EVERY_MS = 200;
const KPI_EVERY_MS = 500;
const paint = { queued: false, timer: null, due: 0, at: -1e9, textAt: -1e9, kpiAt: -1e9 };

// Asks for a frame in `delay` ms or as soon as PAINT_MS have passed since the last.
function requestPaint(delay = 0) {
  if (paint.queued) return;
  const now = performance.now(), due = now + Math.max(delay, paint.at + PAINT_MS - now);
  if (paint.timer !== null) {
    if (paint.due <= due) return;
    clearTimeout(paint.timer);
    paint.timer = null;
  }
  if (due > now) {
    paint.due = due;
    paint.timer = setTimeout(() => { paint.timer = null; requestPaint(); }, due - now);
    return;
  }
  paint.queued = true;
  requestAnimationFrame(paintFrame);
}

function paintFrame() {
  paint.queued = false;
  const now = performance.now();
  paint.at = now;
  let next = null;  // ms until something not painted yet is due
  const later = (ms) => { next = next === null ? ms : Math.min(next, ms); };
  const scene = hmi.scene?.draw(now);
  if (scene != null) later(scene);
  // While the 3D view draws (a running line), numbers and cards change in its frames, once at
  // least half their interval has passed; otherwise on their own.
  const drawn = hmi.scene ? hmi.scene.drawnAt() : -1e9, live = now - drawn < 1.5 * TEXT_EVERY_MS;
  const due = (at, every) => (drawn === now ? now - at >= every / 2 : !live && now - at >= every);
  const dueIn = (at, every) => Math.max(at + every - now, live ? drawn + 1.5 * TEXT_EVERY_MS - now : 0);
  if (hmi.newState || hmi.textPending) {
    const text = due(paint.textAt, TEXT_EVERY_MS);
    if (text) paint.textAt = now;
    if (hmi.newState) paintState(hmi.state, text);
    else if (text) paintState(hmi.state, true);
    hmi.newState = false;
    hmi.textPending = !text;
    if (!text) later(dueIn(paint.textAt, TEXT_EVERY_MS));
  }
  if (hmi.newKpis) {
    if (due(paint.kpiAt, KPI_EVERY_MS)) { paint.kpiAt = now; hmi.newKpis = false; drawKpis(hmi.kpis); }
    else later(dueIn(paint.kpiAt, KPI_EVERY_MS));
  }
  paintCameras();
  if (next !== null) requestPaint(next);
}

// -- live state -----------------------------------------------------------------------------
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setClass(node, cls) {
  if (node.className !== cls) node.className = cls;
}

function onState(state) {
  hmi.state = state;
  hmi.stateAt = performance.now();
  hmi.received = performance.timeOrigin + hmi.stateAt;
  hmi.newState = true;
  hmi.scene?.update(state);
  const key = discrete(state), changed = key !== hmi.discrete;
  hmi.discrete = key;
  requestPaint(changed ? 0 : nextDue(hmi.stateAt));
}

// What of a state is painted as soon as it changes (the PackML states of the line and its
// stations, e-stop, pause, control); anything else waits for the frame in which the numbers or
// the 3D view are due.
function discrete(state) {
  let key = `${state.estopped} ${state.paused} ${state.controlled}`;
  for (const tile of hmi.tiles) if (tile.station) key += ` ${state.signals[tile.id]?.state}`;
  return key;
}

// In how many ms a frame would paint something of a new state or KPIs that changes nothing
// discrete: while the 3D view draws, its next frame (numbers and cards go with it), otherwise
// when the numbers, the cards or the view are next due.
function nextDue(now) {
  const scene = hmi.scene ? hmi.scene.wait(now) : null;
  if (scene !== null && now - hmi.scene.drawnAt() < 1.5 * TEXT_EVERY_MS) return scene;
  let due = paint.textAt + TEXT_EVERY_MS - now;
  if (hmi.newKpis) due = Math.min(due, paint.kpiAt + KPI_EVERY_MS - now);
  if (scene !== null) due = Math.min(due, scene);
  return Math.max(0, due);
}

function paintState(state, full) {
  if (full) {
    setText($("#step"), String(state.step));
    setText($("#time"), state.time.toFixed(1));
    setText($("#parts-completed"), String(state.counts.parts_completed ?? "-"));
    setText($("#wip"), String(state.counts.wip ?? "-"));
  }
  const line = state.signals.line || {};
  const lineState = $("#line-state");
  setText(lineState, state.estopped ? "E-STOP" : `line ${line.state || "-"}${state.paused ? " (paused)" : ""}`);
  setClass(lineState, `badge ${state.estopped ? "bad" : line.state === "Execute" ? "ok" : ""}`);
  const changed = [];
  for (const tile of hmi.tiles) {
    if (updateTile(tile, state, full)) changed.push({ device: tile.id, state: hmi.since[tile.id].state });
  }
  if (changed.length) {
    // stamp when the change is on screen: the next frame, once this one has been painted
    const received = hmi.received;
    requestAnimationFrame(() => {
      const t = performance.timeOrigin + performance.now();
      for (const c of changed) hmi.displayLog.push({ ...c, step: state.step, received, t });
      if (hmi.displayLog.length > 2000) hmi.displayLog.splice(0, 1000);
    });
  }
  if (state.controlled !== hmi.shownControlled) { hmi.shownControlled = state.controlled; showControl(); }
}

// Updates a tile from the state; true if its PackML state changed. Only what differs from
// what the tile shows is written: an unchanged page has nothing to lay out or paint.
function updateTile(tile, state, full) {
  const { id, node, detail, head } = tile, sig = state.signals[id];
  if (!sig) return false;
  let changed = false;
  if (tile.station) {
    const since = hmi.since[id];
    if (!since || since.state !== sig.state) {
      hmi.since[id] = { state: sig.state, time: state.time };
      node.dataset.state = sig.state;
      head.textContent = sig.state;
      node.style.backgroundColor = stateColor(sig.state) + "55";
      node.style.borderLeftColor = stateColor(sig.state);
      updateStationButtons(node, sig.state);
      changed = true;
    }
    if (!full && !changed) return false;
    const held = (state.time - hmi.since[id].time).toFixed(1);
    const activity = sig.activity ? `${sig.activity}` : (sig.estopped ? "e-stopped" : "");
    const part = sig.part != null ? `, part ${sig.part}` : "";
    setText(detail, [activity + part, `${held} s in ${sig.state}`].filter(Boolean).join(" · "));
    if (sig.progress != null && sig.cycle_time && tile.bar) {
      const width = `${Math.min(100, 100 * sig.progress / sig.cycle_time).toFixed(0)}%`;
      if (tile.bar.style.width !== width) tile.bar.style.width = width;
    }
  } else if (tile.kind === "conveyor") {
    setText(head, sig.running ? "running" : "stopped");
    if (full) setText(detail, `${Math.abs(sig.surface_speed ?? 0).toFixed(2)} m/s`);
  } else if (tile.kind === "arm") {
    setText(head, sig.activity || sig.state);
    if (full) setText(detail, `${sig.result} · jobs ${sig.jobs_done}${sig.holding != null ? ` · holding ${sig.holding}` : ""}`);
  } else if (tile.kind === "source") {
    setText(head, sig.enabled ? "enabled" : "disabled");
    if (full) setText(detail, `spawned ${sig.spawned}`);
  } else if (tile.kind === "amr") {
    setText(head, sig.state);
    if (full) {
      const where = sig.dock || sig.node || (sig.goal ? `to ${sig.goal}` : "on a lane");
      const load = sig.load != null ? ` · part ${sig.load}` : "";
      setText(detail, `${where} · battery ${(100 * sig.battery).toFixed(0)}%${load}`);
    }
  }
  return changed;
}

function updateStationButtons(tile, state) {
  const legal = hmi.welcome.packml.legal_commands?.[state] || [];
  const box = tile.querySelector(".buttons");
  box.replaceChildren(...legal.map((command) => commandButton(tile.dataset.device, command)));
}

// -- KPIs with short trends ------------------------------------------------------------------
const KPI_VIEWS = [
  ["throughput", "throughput /h", (k) => k.throughput_per_hour, 0],
  ["wip", "WIP", (k) => k.wip, 0],
  ["oee", "OEE", (k) => k.oee?.oee, "%"],
  ["availability", "availability", (k) => k.oee?.availability, "%"],
  ["performance", "performance", (k) => k.oee?.performance, "%"],
  ["quality", "quality", (k) => k.oee?.quality, "%"],
  ["lead_time", "lead time p50 s", (k) => k.lead_time_s?.p50, 1],
];
const TREND_LENGTH = 120;

// KPIs arrive once a simulated second, and at most twice a wall second (the HMI sends the
// newest: in fast mode the trends sample the run); the cards are drawn at most twice a second.
function onKpis(k) {
  for (const [key, , pick] of KPI_VIEWS) {
    const value = pick(k), trend = (hmi.trends[key] ||= []);
    if (value != null) trend.push(value);
    if (trend.length > TREND_LENGTH) trend.shift();
  }
  hmi.kpis = k;
  hmi.newKpis = true;
  requestPaint(nextDue(performance.now()));
}

function drawKpis(k) {
  const box = $("#kpis");
  for (const [key, label, pick, fmt] of KPI_VIEWS) {
    const value = pick(k);
    let card = box.querySelector(`[data-kpi="${key}"]`);
    if (!card) {
      card = el("div", { class: "kpi", "data-kpi": key });
      card.append(el("div", { class: "name" }, label), el("div", { class: "value" }, "-"), el("canvas", { width: 160, height: 26 }));
      box.append(card);
    }
    setText(card.querySelector(".value"), value == null ? "-" : fmt === "%" ? `${(100 * value).toFixed(1)} %` : value.toFixed(fmt));
    sparkline(card.querySelector("canvas"), hmi.trends[key] || []);
  }
  const b = k.bottleneck;
  setText($("#bottleneck"), b?.station ? `bottleneck ${b.station}: ${b.reason}` : "");
  for (const [id, st] of Object.entries(k.stations || {})) shares(id, st.time_s || {});
}

// A trend's line, redrawn only when its values changed since it was last drawn.
function sparkline(canvas, values) {
  const key = `${values.length} ${values[0]} ${values[values.length - 1]}`;
  if (canvas.drawn === key) return;
  canvas.drawn = key;
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  if (values.length < 2) return;
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  g.strokeStyle = "#7fc8ff";
  g.beginPath();
  values.forEach((v, i) => {
    const x = (i / Math.max(values.length - 1, 30)) * w, y = h - 2 - ((v - lo) / span) * (h - 4);
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
}

// A station's bar of the time in each activity: one segment per activity, kept and resized.
function shares(id, timeS) {
  const bar = document.querySelector(`.station-tile[data-device="${id}"] .shares`);
  if (!bar) return;
  const total = Object.values(timeS).reduce((a, b) => a + b, 0) || 1;
  const parts = (bar.parts ||= {});
  for (const [activity, s] of Object.entries(timeS)) {
    let part = parts[activity];
    if (!part) {
      if (!(s > 0)) continue;
      part = parts[activity] = el("div");
      part.style.background = ACTIVITY_COLORS[activity] || "#555";
      bar.append(part);
    }
    const width = `${((100 * s) / total).toFixed(1)}%`;
    if (part.style.width !== width) part.style.width = width;
  }
  const title = Object.entries(timeS).map(([a, s]) => `${a} ${s.toFixed(0)} s`).join(", ");
  if (bar.title !== title) bar.title = title;
}

// -- alarms and events ------------------------------------------------------------------------
function addAlarm(entry) {
  const li = el("li", { class: entry.alarm ? "alarm" : "notice", "data-id": entry.id, "data-kind": entry.kind });
  if (entry.acked) li.classList.add("acked");
  li.append(el("span", { class: "when" }, `${entry.time.toFixed(1)} s`), el("span", { class: "what" }, `${entry.device} · ${entry.kind} · ${entry.text}`));
  if (entry.alarm && !entry.acked) {
    const ack = el("button", { class: "cmd ack" }, "Ack");
    ack.disabled = hmi.role !== "controller";
    ack.addEventListener("click", () => hmi.send({ op: "ack", id: entry.id }));
    li.append(ack);
  }
  const list = $("#alarms");
  list.prepend(li);
  while (list.children.length > 200) list.lastChild.remove();
}

function markAcked(id) {
  const li = document.querySelector(`#alarms li[data-id="${id}"]`);
  if (!li) return;
  li.classList.add("acked");
  li.querySelector("button.ack")?.remove();
}

// -- control and replies -----------------------------------------------------------------------
function onControl(msg) {
  hmi.control = msg;
  showControl();
}

function showControl() {
  const msg = hmi.control || {}, other = !msg.hmi && hmi.state?.controlled;
  const text = msg.you ? "you hold control" : msg.hmi ? `control: ${msg.holder}` : other ? "another client holds control" : "";
  $("#control").title = msg.you ? `the twin's control lease, held for this page; the line safe-stops after ${msg.watchdog} s without a sign of life from it` : "";
  $("#control").textContent = text;
  $("#release").hidden = !msg.you;
}

function onReply(msg) {
  const box = $("#message");
  box.hidden = false;
  box.className = `message ${msg.ok ? "ok" : ""}`;
  box.textContent = msg.ok ? `done: ${msg.detail}` : `refused (${msg.code}): ${msg.message}`;
  clearTimeout(onReply.timer);
  onReply.timer = setTimeout(() => { box.hidden = true; }, msg.ok ? 2500 : 8000);
}

function setControlsEnabled() {
  const operator = hmi.role === "controller";
  for (const button of document.querySelectorAll("button.cmd")) button.disabled = !operator;
}

function wireHeader() {
  $("#estop").addEventListener("click", () => hmi.send({ op: "estop" }));
  $("#estop-reset").addEventListener("click", () => hmi.send({ op: "estop_reset" }));
  $("#pause").addEventListener("click", () => hmi.send({ op: "pause" }));
  $("#resume").addEventListener("click", () => hmi.send({ op: "resume" }));
  $("#release").addEventListener("click", () => hmi.send({ op: "release" }));
  $("#release").hidden = true;
  setControlsEnabled();
  // a sign of life, so the control lease the HMI holds for this page stays alive
  setInterval(() => { if (hmi.role === "controller") hmi.send({ op: "ping" }); }, 1000);
  // the twin publishes no state while paused, in lockstep between steps, or when it is gone
  setInterval(() => {
    if (hmi.socket?.readyState !== WebSocket.OPEN) return;
    const quiet = hmi.stateAt ? (performance.now() - hmi.stateAt) / 1000 : 0;
    if (quiet > 3) setConnection(`no state for ${quiet.toFixed(0)} s`, "");
    else setConnection("live", "ok");
  }, 1000);
}

wireHeader();
connect();
