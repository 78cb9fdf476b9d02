"""World: owns one pybullet client and the fixed-step clock.

Never touches the module-global pybullet state, so several worlds can live in one process.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pybullet
from pybullet_utils.bullet_client import BulletClient

from twin.config import Physics
from twin.sim.assets import resolve_asset
from twin.sim.heap import release_freed_memory
from twin.sim.quiet import quiet_stdout


class RayBank:
    """All beam sensors of the line, cast in one rayTestBatch call per step.

    Devices register their rays at build time and read their slice of the results, so the
    per-step cost is one C call however many sensors there are. Rays that coincide (a
    photo-eye where a zoned belt has its last zone's eye) are cast once: each ray's result
    depends on that ray alone. A ray can be switched off while nobody needs it (a suction
    cup's beam matters only while it seeks a part): an inactive ray is not cast and reads as
    no hit.
    """

    def __init__(self) -> None:
        # plain lists: pybullet converts them faster than numpy arrays
        self._from: list[list[float]] = []
        self._to: list[list[float]] = []
        self._active: list[bool] = []
        self._planned = True  # the cast lists below match the rays (False: recompute)
        # the distinct active rays, as cast; each ray's slot among them; which slots more
        # than one ray shares
        self._cast_from: list[list[float]] = []
        self._cast_to: list[list[float]] = []
        self._slot: list[int] = []  # -1: inactive
        self._shared: set[int] = set()
        self._pairs: list[tuple[int, int]] = []  # (ray, slot) of the active rays
        self.hit_body: list[int] = []
        self.hit_fraction: list[float] = []

    def add(self, start: list[float], end: list[float], active: bool = True) -> int:
        """Register a ray; returns its index into hit_body / hit_fraction."""
        self._from.append([float(v) for v in start])
        self._to.append([float(v) for v in end])
        self._active.append(active)
        self._planned = False
        self.hit_body.append(-1)
        self.hit_fraction.append(1.0)
        return len(self._from) - 1

    def move(self, index: int, start: list[float], end: list[float]) -> None:
        """Move a ray that follows a moving device (e.g. a suction cup)."""
        self._from[index] = start
        self._to[index] = end
        if not (self._planned and self._active[index]):
            return
        k = self._slot[index]
        if k in self._shared:
            self._planned = False  # it leaves the rays it coincided with
        else:
            self._cast_from[k], self._cast_to[k] = start, end

    def set_active(self, index: int, active: bool) -> None:
        if self._active[index] != active:
            self._active[index] = active
            self._planned = False
            if not active:
                self.hit_body[index], self.hit_fraction[index] = -1, 1.0

    def _plan(self) -> None:
        slots: dict[tuple[float, ...], int] = {}
        self._cast_from, self._cast_to, self._slot = [], [], []
        shared: set[int] = set()
        for start, end, on in zip(self._from, self._to, self._active):
            if not on:
                self._slot.append(-1)
                continue
            key = (*start, *end)
            k = slots.get(key)
            if k is None:
                k = slots[key] = len(self._cast_from)
                self._cast_from.append(start)
                self._cast_to.append(end)
            else:
                shared.add(k)
            self._slot.append(k)
        self._shared = shared
        self._pairs = [(i, k) for i, k in enumerate(self._slot) if k >= 0]
        self._planned = True

    def cast(self, client_id: int) -> None:
        if not self._planned:
            self._plan()
        if not self._cast_from:
            return
        results = pybullet.rayTestBatch(self._cast_from, self._cast_to, physicsClientId=client_id)
        # a plain loop: faster than comprehensions for a handful of rays
        hit_body, hit_fraction = self.hit_body, self.hit_fraction
        for i, k in self._pairs:
            r = results[k]
            hit_body[i] = r[0]
            hit_fraction[i] = r[2]


class World:
    """One pybullet client, its fixed timestep and substeps, and the line's beam sensors."""

    def __init__(self, physics: Physics, gui: bool = False, visuals: bool = False) -> None:
        """`visuals`: load robot models with their visual meshes, for `render` (a GUI
        always has them). Headless without them a Panda costs 70 MB and 0.3 s less to load,
        and the physics is the same: only collision shapes take part in it."""
        self.physics = physics
        self.dt = physics.timestep
        self.step_index = 0
        self.visuals = gui or visuals
        # flags for loadURDF: what a model brings beyond its physics
        self.model_flags = 0 if self.visuals else pybullet.URDF_IGNORE_VISUAL_SHAPES
        with quiet_stdout():
            self.client = BulletClient(connection_mode=pybullet.GUI if gui else pybullet.DIRECT)
        c = self.client
        self._id = c._client
        # bind every pybullet function to this client once: BulletClient would wrap the
        # function on each attribute access, a measurable cost in the step loop
        for name in dir(pybullet):
            fn = getattr(pybullet, name)
            if inspect.isbuiltin(fn) and name != "disconnect":  # as BulletClient.__getattr__
                c.__dict__[name] = functools.partial(fn, physicsClientId=self._id)
        c.resetSimulation()
        c.setGravity(*physics.gravity)
        # fixedTimeStep is one twin step; bullet subdivides it into `substeps` internal steps.
        c.setPhysicsEngineParameter(
            fixedTimeStep=physics.timestep,
            numSubSteps=physics.substeps,
            numSolverIterations=physics.solver_iterations,
            deterministicOverlappingPairs=1,
        )
        if gui:
            c.configureDebugVisualizer(pybullet.COV_ENABLE_GUI, 0)
        self.rays = RayBank()
        self.floor = c.loadURDF(str(resolve_asset("plane.urdf")), useFixedBase=True)
        self._closed = False

    @property
    def sim_time(self) -> float:
        return self.step_index * self.dt

    def step(self) -> None:
        """Advance physics by one twin step and cast every beam sensor."""
        pybullet.stepSimulation(physicsClientId=self._id)  # the hottest call: skip the wrapper
        self.step_index += 1
        self.rays.cast(self._id)

    def box(
        self,
        half_extents: list[float],
        position: list[float],
        yaw: float = 0.0,
        color: list[float] | None = None,
        friction: float = 0.8,
    ) -> int:
        """A static box (frames, tables, stops)."""
        c = self.client
        col = c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half_extents)
        vis = c.createVisualShape(
            pybullet.GEOM_BOX, halfExtents=half_extents, rgbaColor=color or [0.6, 0.6, 0.6, 1]
        )
        body = c.createMultiBody(
            baseMass=0,
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            basePosition=position,
            baseOrientation=c.getQuaternionFromEuler([0, 0, yaw]),
        )
        c.changeDynamics(body, -1, lateralFriction=friction)
        return body

    def render(self, view, width: int | None = None, height: int | None = None) -> np.ndarray:
        """RGB image (H, W, 3) from the software renderer; works headless."""
        if not self.visuals:
            raise RuntimeError(
                "this world was built without visual meshes: build it with visuals=True to render"
            )
        c = self.client
        w, h = width or view.width, height or view.height
        vm = c.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=view.target,
            distance=view.distance,
            yaw=view.yaw,
            pitch=view.pitch,
            roll=0,
            upAxisIndex=2,
        )
        pm = c.computeProjectionMatrixFOV(fov=50, aspect=w / h, nearVal=0.05, farVal=20)
        _, _, rgba, _, _ = c.getCameraImage(
            w,
            h,
            viewMatrix=vm,
            projectionMatrix=pm,
            renderer=pybullet.ER_TINY_RENDERER,
            lightDirection=[1.5, -1.0, 3.0],
            shadow=1,
        )
        return np.reshape(np.asarray(rgba, dtype=np.uint8), (h, w, 4))[:, :, :3]

    def close(self) -> None:
        """Disconnect; safe to call more than once."""
        if not self._closed:
            self._closed = True
            try:
                self.client.disconnect()
            except pybullet.error:
                pass
            release_freed_memory()

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
