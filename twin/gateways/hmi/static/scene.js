// The 3D view: the line built from describe's geometry, moved by the state telemetry.
// World frame as the twin's: metres, z up. Parts glide between two telemetry frames.
import * as THREE from "three";
import { OrbitControls } from "./vendor/three/OrbitControls.js";
import { stateColor } from "./colors.js";

const FRAME_S = 0.1;  // nominal telemetry interval used to glide parts between frames

// WebGL drawn by the CPU (SwiftShader, llvmpipe: headless browsers, VMs without a GPU):
// no antialiasing and fewer frames, so the page keeps up with the telemetry.
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

export function createScene(container, welcome) {
  software = softwareRendering();
  const minFrameS = software ? 1 / 10 : 1 / 31;  // 30 frames/s are smooth enough
  const renderer = new THREE.WebGLRenderer({ antialias: !software });
  renderer.setPixelRatio(window.devicePixelRatio);
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
  const grid = new THREE.GridHelper(8, 32, "#3a4654", "#28313b");
  grid.rotation.x = Math.PI / 2;
  scene.add(grid);

  const view = { belts: [], stations: {}, eyes: {}, arms: {}, parts: new Map(), partTypes: {} };
  for (const t of welcome.part_types) view.partTypes[t.name] = t.size;
  const bounds = new THREE.Box3();
  for (const dev of welcome.devices) {
    const g = dev.geometry;
    if (!g) continue;
    const obj = build(dev, g, view);
    if (obj) { scene.add(obj); bounds.expandByObject(obj); }
  }
  // look at the whole line from the front, a little above
  const center = bounds.isEmpty() ? new THREE.Vector3(0, 0, 0.7) : bounds.getCenter(new THREE.Vector3());
  const size = bounds.isEmpty() ? 3 : bounds.getSize(new THREE.Vector3()).length();
  controls.target.copy(center);
  camera.position.set(center.x + 0.1 * size, center.y - 0.7 * size, center.z + 0.5 * size);
  controls.update();

  const partGroup = new THREE.Group();
  scene.add(partGroup);
  let received = performance.now();

  function resize() {
    const w = container.clientWidth, h = container.clientHeight;
    renderer.setSize(w, h, false);
    renderer.domElement.style.width = "100%";
    renderer.domElement.style.height = "100%";
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
  }
  new ResizeObserver(resize).observe(container);
  resize();

  let last = performance.now();
  function frame() {
    const now = performance.now(), dt = (now - last) / 1000;
    if (dt < 0.8 * minFrameS) return;  // (timers fire a little early or late)
    last = now;
    const a = Math.min(1, (now - received) / 1000 / FRAME_S);
    for (const p of view.parts.values()) {
      p.mesh.position.lerpVectors(p.from, p.to, a);
      p.mesh.quaternion.slerpQuaternions(p.qFrom, p.qTo, a);
    }
    for (const belt of view.belts) belt.texture.offset.x -= (belt.speed * dt) / belt.stripe;
    controls.update();
    renderer.render(scene, camera);
  }
  // on the CPU a timer, not a frame loop: a frame loop keeps the whole page compositing
  if (software) setInterval(frame, 1000 * minFrameS);
  else renderer.setAnimationLoop(frame);

  function update(state) {
    received = performance.now();
    for (const belt of view.belts) belt.speed = state.signals[belt.id]?.surface_speed ?? 0;
    for (const [id, mesh] of Object.entries(view.stations)) {
      const s = state.signals[id]?.state;
      if (s) mesh.material.color.set(stateColor(s));
    }
    for (const [id, line] of Object.entries(view.eyes)) {
      line.material.color.set(state.signals[id]?.blocked ? "#ff4040" : "#40ff80");
    }
    for (const [id, arm] of Object.entries(view.arms)) poseArm(arm, state.signals[id]);
    updateParts(state.parts);
  }

  function updateParts(parts) {
    const seen = new Set();
    for (const p of parts) {
      seen.add(p.id);
      let entry = view.parts.get(p.id);
      const to = new THREE.Vector3(...p.position), qTo = new THREE.Quaternion(...p.orientation);
      if (!entry) {
        const [sx, sy, sz] = view.partTypes[p.type] || [0.06, 0.06, 0.04];
        const mesh = new THREE.Mesh(new THREE.BoxGeometry(sx, sy, sz), material({ color: p.type === "cover" ? "#d9c27a" : "#c8ccd2", metalness: 0.3, roughness: 0.5 }));
        partGroup.add(mesh);
        entry = { mesh, from: to.clone(), to, qFrom: qTo.clone(), qTo };
        view.parts.set(p.id, entry);
      }
      entry.from.copy(entry.mesh.position.lengthSq() ? entry.mesh.position : to);
      entry.qFrom.copy(entry.mesh.quaternion);
      entry.to = to;
      entry.qTo = qTo;
    }
    for (const [id, entry] of view.parts) {
      if (!seen.has(id)) { partGroup.remove(entry.mesh); entry.mesh.geometry.dispose(); view.parts.delete(id); }
    }
  }

  return { update, renderer, camera };
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
      const z = g.zone, size = [0, 1, 2].map((i) => z.max[i] - z.min[i]);
      const zone = box(size, dev.kind === "source" ? "#5b8fd6" : "#2e9d49", { transparent: true, opacity: 0.18 });
      zone.position.set(...[0, 1, 2].map((i) => (z.max[i] + z.min[i]) / 2));
      return zone;
    }
    default: {
      if (!g.position) return null;  // a kind this page does not know: a marker where it is
      const marker = box([0.1, 0.1, 0.1], "#888888");
      marker.position.set(g.position[0], g.position[1], (g.position[2] || 0) + 0.05);
      return marker;
    }
  }
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
