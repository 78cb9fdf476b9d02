// The 3D view: the line built from describe's geometry, moved by the state telemetry.
// World frame as the twin's: metres, z up. Parts glide between two telemetry frames.
import * as THREE from "three";
import { OrbitControls } from "./vendor/three/OrbitControls.js";
import { stateColor } from "./colors.js";

const FRAME_S = 0.1;  // nominal telemetry interval used to glide parts between frames

// WebGL drawn by the CPU (SwiftShader, llvmpipe: headless browsers, VMs without a GPU): each
// frame costs the CPU in proportion to its pixels (drawn, then copied to the page), so fewer,
// smaller frames without antialiasing, and the page and the twin beside it keep their CPU.
function softwareRendering() {
  const gl = document.createElement("canvas").getContext("webgl2");
  const info = gl?.getExtension("WEBGL_debug_renderer_info");
  const name = info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : "";
  return /swiftshader|llvmpipe|software/i.test(name);
}

// Physically based shading on a GPU; per-vertex (Lambert) shading when the CPU draws.
let software = false;
function material({ metalness = 0, roughness = 1, ...params }) {
  return software ? new THREE.MeshLambertMaterial(params) : new THREE.MeshStandardMaterial({ metalness, roughness, ...params });
}

// The view draws a frame only when something in it changed (a state arrived, the user moved
// the camera, the view was resized), from the page's frame (hmi.js), never in a loop of its
// own: a still line costs nothing, a running one at most one frame per telemetry frame.
export function createScene(container, welcome, requestFrame) {
  software = softwareRendering();
  // On a GPU, parts glide between two states at up to 30 frames/s. Drawn by the CPU, the
  // newest state is drawn as it is (no frames in between), at most 5 times a second, with
  // 3/4 of the pixels across (upscaled by the page): a quarter of the CPU of 10 full frames.
  const minFrameMs = software ? 200 : 1000 / 31;
  const renderer = new THREE.WebGLRenderer({ antialias: !software });
  renderer.setPixelRatio(window.devicePixelRatio * (software ? 0.75 : 1));
  container.append(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color("#1b2128");
  THREE.Object3D.DEFAULT_UP.set(0, 0, 1);
  const camera = new THREE.PerspectiveCamera(45, 1, 0.05, 100);
  camera.up.set(0, 0, 1);
  const controls = new OrbitControls(camera, renderer.domElement);
  scene.add(new THREE.HemisphereLight("#ffffff", "#444444", 2.2));
  const sun = new THREE.DirectionalLight("#ffffff", 1.6);
  sun.position.set(2, -3, 5);
  scene.add(sun);

  const view = { belts: [], stations: {}, eyes: {}, arms: {}, amrs: {}, parts: new Map(), partLooks: {} };
  for (const t of welcome.part_types) {
    // one geometry and one material per part type, shared by all its parts
    view.partLooks[t.name] = {
      geometry: new THREE.BoxGeometry(...t.size),
      material: material({ color: t.name === "cover" ? "#d9c27a" : "#c8ccd2", metalness: 0.3, roughness: 0.5 }),
    };
  }
  const bounds = new THREE.Box3();
  for (const dev of welcome.devices) {
    const g = dev.geometry;
    if (!g) continue;
    const obj = build(dev, g, view);
    if (obj) { scene.add(obj); bounds.expandByObject(obj); }
  }
  if (welcome.network) {
    const net = network(welcome.network);
    scene.add(net);
    bounds.expandByObject(net);
  }
  // a floor grid of 25 cm squares under the whole line (a factory floor is larger than a cell)
  const extent = bounds.isEmpty() ? 0 : Math.max(...[bounds.min.x, bounds.min.y, bounds.max.x, bounds.max.y].map(Math.abs));
  const half = Math.max(4, Math.ceil(extent + 1));
  const grid = new THREE.GridHelper(2 * half, 8 * half, "#3a4654", "#28313b");
  grid.rotation.x = Math.PI / 2;
  scene.add(grid);
  // look at the whole line from the front, a little above
  const center = bounds.isEmpty() ? new THREE.Vector3(0, 0, 0.7) : bounds.getCenter(new THREE.Vector3());
  const size = bounds.isEmpty() ? 3 : bounds.getSize(new THREE.Vector3()).length();
  controls.target.copy(center);
  camera.position.set(center.x + 0.1 * size, center.y - 0.7 * size, center.z + 0.5 * size);
  controls.update();

  const partGroup = new THREE.Group();
  scene.add(partGroup);
  let received = performance.now(), drawnAt = -1e9, dirty = true, beltsMoving = false, gliding = false;
  const changed = () => { dirty = true; requestFrame(); };
  controls.addEventListener("change", changed);

  function resize() {
    const w = container.clientWidth, h = container.clientHeight;
    renderer.setSize(w, h, false);
    renderer.domElement.style.width = "100%";
    renderer.domElement.style.height = "100%";
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
    changed();
  }
  new ResizeObserver(resize).observe(container);
  resize();
  // scrolled out of sight (a small panel): nothing drawn until it is back
  let visible = true;
  new IntersectionObserver(([entry]) => { visible = entry.isIntersecting; if (visible) changed(); }).observe(container);

  // Draws a frame if one is due; returns in how many ms the view wants the next (null: none).
  function draw(now) {
    const moving = !software && (gliding || beltsMoving);
    if (!visible || (!dirty && !pending && !moving)) return null;
    const wait = drawnAt + minFrameMs - now;
    if (wait > 2) return wait;  // (frames come a little early or late)
    if (pending) {
      // a state that changes nothing in the view (a stopped line) draws no frame; running
      // belts always change it (their surface moves)
      const look = looks(pending), belts = view.belts.some((b) => pending.signals[b.id]?.surface_speed);
      if (look !== shownLook || belts) {
        shownLook = look;
        apply(pending);
        dirty = true;
      }
      pending = null;
      if (!dirty && !moving) return null;
    }
    const dt = Math.min(now - drawnAt, 1000) / 1000;
    drawnAt = now;
    dirty = false;
    const a = software ? 1 : Math.min(1, (now - received) / 1000 / FRAME_S);
    gliding = a < 1;
    for (const p of view.parts.values()) {
      p.mesh.position.lerpVectors(p.from, p.to, a);
      p.mesh.quaternion.slerpQuaternions(p.qFrom, p.qTo, a);
    }
    for (const r of Object.values(view.amrs)) {
      // glides as the parts on its deck do; the heading the short way round
      r.group.position.set(r.from[0] + (r.to[0] - r.from[0]) * a, r.from[1] + (r.to[1] - r.from[1]) * a, 0);
      const turn = Math.atan2(Math.sin(r.to[2] - r.from[2]), Math.cos(r.to[2] - r.from[2]));
      r.group.rotation.z = r.from[2] + turn * a;
    }
    for (const belt of view.belts) belt.texture.offset.x -= (belt.speed * dt) / belt.stripe;
    renderer.render(scene, camera);
    return gliding || (!software && beltsMoving) ? minFrameMs : null;
  }

  // A new state is kept and applied when the next frame is drawn (the newest wins).
  let pending = null, shownLook = "";
  function update(state) {
    pending = state;
  }

  function apply(state) {
    received = performance.now();
    beltsMoving = false;
    for (const belt of view.belts) {
      belt.speed = state.signals[belt.id]?.surface_speed ?? 0;
      beltsMoving ||= belt.speed !== 0;
    }
    for (const [id, mesh] of Object.entries(view.stations)) {
      const s = state.signals[id]?.state;
      if (s) mesh.material.color.set(stateColor(s));
    }
    for (const [id, line] of Object.entries(view.eyes)) {
      line.material.color.set(state.signals[id]?.blocked ? "#ff4040" : "#40ff80");
    }
    for (const [id, arm] of Object.entries(view.arms)) poseArm(arm, state.signals[id]);
    for (const [id, r] of Object.entries(view.amrs)) {
      const sig = state.signals[id];
      if (!sig) continue;
      r.from = [r.group.position.x, r.group.position.y, r.group.rotation.z];
      r.to = [sig.x, sig.y, sig.yaw];
      r.body.material.color.set(AMR_COLORS[sig.state] || "#e0b020");
    }
    updateParts(state.parts);
  }

  const seen = new Set();
  function updateParts(parts) {
    seen.clear();
    for (const p of parts) {
      seen.add(p.id);
      let entry = view.parts.get(p.id);
      if (!entry) {
        const look = view.partLooks[p.type] || (view.partLooks[p.type] = { geometry: new THREE.BoxGeometry(0.06, 0.06, 0.04), material: material({ color: "#c8ccd2" }) });
        const mesh = new THREE.Mesh(look.geometry, look.material);
        mesh.position.set(...p.position);
        mesh.quaternion.set(...p.orientation);
        partGroup.add(mesh);
        entry = { mesh, from: new THREE.Vector3(), to: new THREE.Vector3(), qFrom: new THREE.Quaternion(), qTo: new THREE.Quaternion() };
        view.parts.set(p.id, entry);
      }
      entry.from.copy(entry.mesh.position);
      entry.qFrom.copy(entry.mesh.quaternion);
      entry.to.set(...p.position);
      entry.qTo.set(...p.orientation);
    }
    for (const [id, entry] of view.parts) {
      if (!seen.has(id)) { partGroup.remove(entry.mesh); view.parts.delete(id); }
    }
  }

  // in how many ms the view may draw its next frame
  const wait = (now) => Math.max(0, drawnAt + minFrameMs - now);
  return { update, draw, wait, drawnAt: () => drawnAt, renderer, camera };
}

// What of a state the view shows, to the mm and mrad: equal for two states, no new frame.
const SHOWN = ["surface_speed", "state", "blocked", "tool_position", "holding", "vacuum", "x", "y", "yaw"];
const rounded = (v) => (typeof v === "number" ? Math.round(1000 * v) : Array.isArray(v) ? v.map(rounded).join(" ") : String(v));
function looks(state) {
  const out = [];
  for (const p of state.parts) out.push(p.id, rounded(p.position), rounded(p.orientation));
  for (const id in state.signals) {
    const sig = state.signals[id];
    for (const key of SHOWN) if (key in sig) out.push(rounded(sig[key]));
  }
  return out.join(",");
}

function box(size, color, opts = {}) {
  return new THREE.Mesh(new THREE.BoxGeometry(...size), material({ color, roughness: 0.8, ...opts }));
}

function build(dev, g, view) {
  switch (dev.kind) {
    case "conveyor": return conveyor(dev, g, view);
    case "station": {
      const group = new THREE.Group();
      const table = box(g.size, "#6b7480");
      table.position.set(0, 0, g.size[2] / 2);
      group.add(table);
      group.position.set(g.position[0], g.position[1], 0);
      group.rotation.z = g.yaw;
      view.stations[dev.id] = table;
      return group;
    }
    case "photoeye": {
      const geom = new THREE.BufferGeometry().setFromPoints(g.beam.map((p) => new THREE.Vector3(...p)));
      const line = new THREE.Line(geom, new THREE.LineBasicMaterial({ color: "#40ff80" }));
      view.eyes[dev.id] = line;
      return line;
    }
    case "arm": return arm(dev, g, view);
    case "source": case "sink": {
      const color = dev.kind === "source" ? "#5b8fd6" : "#2e9d49";
      if (!g.zone) {  // at a dock: a patch on the floor beside the dock's deck point
        const patch = box([0.25, 0.25, 0.01], color, { transparent: true, opacity: 0.6 });
        patch.position.set(g.deck_point[0], g.deck_point[1], 0.006);
        return patch;
      }
      const z = g.zone, size = [0, 1, 2].map((i) => z.max[i] - z.min[i]);
      const zone = box(size, color, { transparent: true, opacity: 0.18 });
      zone.position.set(...[0, 1, 2].map((i) => (z.max[i] + z.min[i]) / 2));
      return zone;
    }
    case "dock": {
      const mark = box([0.9, 0.66, 0.004], "#3d7a4f", { transparent: true, opacity: 0.55 });
      mark.position.set(g.position[0], g.position[1], 0.002);
      mark.rotation.z = g.yaw;
      return mark;
    }
    case "amr": return amr(dev, g, view);
    default: {
      if (!g.position) return null;  // a kind this page does not know: a marker where it is
      const marker = box([0.1, 0.1, 0.1], "#888888");
      marker.position.set(g.position[0], g.position[1], (g.position[2] || 0) + 0.05);
      return marker;
    }
  }
}

// what an AMR's chassis looks like in each state (others: its idle yellow)
const AMR_COLORS = { blocked: "#d04040", stopped: "#d07030", battery_empty: "#707070", charging: "#4a90d9" };

// An AMR: its chassis up to the deck, a darker bumper at the front (its +x); placed where the
// state says it is.
function amr(dev, g, view) {
  const group = new THREE.Group();
  const [length, width, deck] = g.size;
  const body = box([length, width, deck - 0.01], "#e0b020");
  body.position.z = 0.01 + (deck - 0.01) / 2;
  const bumper = box([0.04, width, 0.12], "#30343a");
  bumper.position.set(length / 2 + 0.02, 0, 0.08);
  group.add(body, bumper);
  view.amrs[dev.id] = { group, body, from: [0, 0, 0], to: [0, 0, 0] };
  return group;
}

// The route network on the floor: lanes as lines (one-way lanes darker), nodes as dots.
function network(net) {
  const group = new THREE.Group();
  const where = Object.fromEntries(net.nodes.map((n) => [n.id, n.position]));
  for (const lane of net.lanes) {
    const a = where[lane.from], b = where[lane.to];
    const geom = new THREE.BufferGeometry().setFromPoints([new THREE.Vector3(a[0], a[1], 0.003), new THREE.Vector3(b[0], b[1], 0.003)]);
    group.add(new THREE.Line(geom, new THREE.LineBasicMaterial({ color: lane.two_way ? "#8a96a3" : "#5d6873" })));
  }
  const dot = new THREE.CircleGeometry(0.05, 16);
  const charger = new Set(net.chargers.map((c) => c.node));
  for (const n of net.nodes) {
    const mesh = new THREE.Mesh(dot, material({ color: charger.has(n.id) ? "#4a90d9" : "#8a96a3" }));
    mesh.position.set(n.position[0], n.position[1], 0.004);
    group.add(mesh);
  }
  return group;
}

function conveyor(dev, g, view) {
  const group = new THREE.Group();
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 8;
  const c = canvas.getContext("2d");
  c.fillStyle = "#2a2f35"; c.fillRect(0, 0, 64, 8);
  c.fillStyle = "#4a525c"; c.fillRect(0, 0, 8, 8);
  const texture = new THREE.CanvasTexture(canvas);
  texture.wrapS = THREE.RepeatWrapping;
  const stripe = 0.1;  // m between two stripes on the belt
  texture.repeat.set(g.length / stripe, 1);
  const belt = new THREE.Mesh(new THREE.BoxGeometry(g.length, g.width, 0.03), material({ map: texture }));
  belt.position.z = g.surface_height - 0.015;
  group.add(belt);
  const legHeight = g.surface_height - 0.03;
  for (const x of [-0.45, 0, 0.45]) for (const y of [-0.4, 0.4]) {
    const leg = box([0.04, 0.04, legHeight], "#3a4450");
    leg.position.set(x * g.length, y * g.width, legHeight / 2);
    group.add(leg);
  }
  group.position.set(g.surface_center[0], g.surface_center[1], 0);
  group.rotation.z = g.yaw;
  view.belts.push({ id: dev.id, texture, stripe, speed: 0 });
  return group;
}

// An arm drawn as a pedestal and a two-link chain from the shoulder to the tool point the
// twin reports (the elbow placed by planar two-link inverse kinematics): the pose an operator
// needs to see where the robot is and what it holds.
function arm(dev, g, view) {
  const group = new THREE.Group();
  const pedestal = new THREE.Mesh(new THREE.CylinderGeometry(0.1, 0.12, g.pedestal_height, 24), material({ color: "#4a525c" }));
  pedestal.rotation.x = Math.PI / 2;
  pedestal.position.set(g.base[0], g.base[1], g.pedestal_height / 2);
  const linkMaterial = material({ color: "#e8e8ea", roughness: 0.4 });
  const link = () => new THREE.Mesh(new THREE.CylinderGeometry(0.035, 0.035, 1, 16), linkMaterial);
  const upper = link(), fore = link();
  const tool = new THREE.Mesh(new THREE.SphereGeometry(0.03, 16, 12), material({ color: "#999" }));
  group.add(pedestal, upper, fore, tool);
  const shoulder = new THREE.Vector3(g.base[0], g.base[1], g.base[2] + 0.33);
  view.arms[dev.id] = { shoulder, upper, fore, tool, length: Math.max(0.2, g.reach / 2) };
  return group;
}

function poseArm(arm, sig) {
  if (!sig?.tool_position) return;
  const target = new THREE.Vector3(...sig.tool_position);
  const toTarget = target.clone().sub(arm.shoulder);
  const d = Math.min(toTarget.length(), 2 * arm.length * 0.999);
  // elbow: above the midpoint, lifted so both links have the arm's link length
  const mid = arm.shoulder.clone().addScaledVector(toTarget.clone().normalize(), d / 2);
  const up = new THREE.Vector3(0, 0, 1).addScaledVector(toTarget.clone().normalize(), -toTarget.clone().normalize().z).normalize();
  const elbow = mid.addScaledVector(up, Math.sqrt(Math.max(0, arm.length ** 2 - (d / 2) ** 2)));
  place(arm.upper, arm.shoulder, elbow);
  place(arm.fore, elbow, target);
  arm.tool.position.copy(target);
  arm.tool.material.color.set(sig.holding != null ? "#ffb000" : sig.vacuum ? "#7fc8ff" : "#999999");
}

function place(mesh, a, b) {
  const dir = b.clone().sub(a);
  mesh.position.copy(a).addScaledVector(dir, 0.5);
  mesh.scale.set(1, Math.max(dir.length(), 1e-3), 1);
  mesh.quaternion.setFromUnitVectors(new THREE.Vector3(0, 1, 0), dir.normalize());
}
