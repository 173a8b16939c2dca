"""Articulated people rendered in torch: gait cycle -> 3D joints -> projected capsules -> pixels.

A person is 17-20 *parts*, each a tapered capsule between two 3D points (torso, neck, head, upper and
lower arms, hands, thighs, shins, feet, pelvis, optional long hair, backpack or shoulder bag). The
joints follow a sinusoidal gait model: hip flexion ``A sin(phi)`` with ``A`` set by the step length
and leg length, knee flexion peaking in early swing, arms swinging against the legs, vertical bob at
twice the stride frequency and a forward lean. Points are projected with the camera's pinhole and the
capsules rasterised as signed distance fields, anti-aliased over one pixel, vectorised over a batch
of frames and all parts at once, each part in its own small box (the union of its extent over the
batch), then composited far-to-near.

Each part samples a texture tile of its person (clothing patterns in metric body-local coordinates;
the head's tile is a procedural face drawn for the walk's viewing angle) and is shaded as a cylinder.
Rendering is restricted to regions around the people; the background is the camera's cached map.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from anonreid.events.world.cameras import Camera
from anonreid.events.world.people import TILE, Person
from anonreid.events.world.schedule import Walk

# part name, texture slot, shade (far-side limbs are drawn darker by the renderer)
PART_NAMES = (
    "torso", "pelvis", "neck", "head",
    "l_thigh", "l_shin", "l_foot", "r_thigh", "r_shin", "r_foot",
    "l_upper", "l_fore", "l_hand", "r_upper", "r_fore", "r_hand",
    "hair", "bag",
)
_SLOT = {"torso": "upper", "pelvis": "lower", "neck": "skin", "head": "face", "l_thigh": "lower",
         "l_shin": "lower", "l_foot": "shoes", "r_thigh": "lower", "r_shin": "lower", "r_foot": "shoes",
         "l_upper": "upper", "l_fore": "fore", "l_hand": "skin", "r_upper": "upper", "r_fore": "fore",
         "r_hand": "skin", "hair": "hair", "bag": "bag"}


@dataclass
class Geometry:
    """Projected parts for a batch of frames: endpoints (F,P,2) px, radii (F,P) px, depth, px/m."""

    a: np.ndarray
    b: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    depth: np.ndarray
    scale: np.ndarray
    visible: np.ndarray  # (P,) parts this person has

    def boxes(self) -> np.ndarray:
        """(F, 4) x1, y1, x2, y2 of the person per frame (pixels, unclipped)."""
        r = np.maximum(self.ra, self.rb)[..., None]
        lo = np.minimum(self.a, self.b) - r
        hi = np.maximum(self.a, self.b) + r
        lo = np.where(self.visible[None, :, None], lo, np.inf).min(axis=1)
        hi = np.where(self.visible[None, :, None], hi, -np.inf).max(axis=1)
        return np.concatenate([lo, hi], axis=1)


@functools.lru_cache(maxsize=4096)
def _basis(direction: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward, up and left unit vectors of a walk direction (cached: every frame of a walk asks)."""
    d = np.asarray(direction, np.float64)
    f = d / max(float(np.linalg.norm(d)), 1e-9)
    up = np.array([0.0, 1.0, 0.0])
    left = np.cross(up, f)
    for v in (f, up, left):
        v.setflags(write=False)
    return f, up, left


def body_points(person: Person, walk: Walk, t_us: np.ndarray) -> dict[str, np.ndarray]:
    """3D points (F, 3) of the skeleton at times ``t_us`` (world metres)."""
    t_us = np.asarray(t_us, dtype=np.float64)
    f, up, left = _basis(tuple(walk.direction))
    amp = 0.0 if walk.still else 1.0
    phi = walk.phase0 + 2 * np.pi * person.stride_hz * walk.speed_scale * (t_us - walk.t_start_us) * 1e-6
    phi = phi[:, None]
    h = person.height
    leg = person.leg_length
    thigh, shin = 0.52 * leg, 0.44 * leg
    head_h = h * person.head_ratio
    neck_len = 0.045 * h
    torso_len = h - leg - head_h - neck_len
    arm = person.arm_ratio * h
    a_hip = amp * math.asin(min(person.step_length / (2 * leg), 0.7))
    root = walk.position(t_us)
    hip_ang = {"l": a_hip * np.sin(phi), "r": a_hip * np.sin(phi + np.pi)}
    bob = person.bob * amp * leg * (1 - np.cos(a_hip * np.sin(phi))) * 1.5
    pelvis = root + up * (0.96 * leg) - up * bob
    lean = person.lean * (0.3 + 0.7 * amp)
    spine = up * math.cos(lean) + f * math.sin(lean)
    neck = pelvis + spine * torso_len
    pts: dict[str, np.ndarray] = {"pelvis": pelvis, "neck": neck}
    for side, sgn, off in (("l", 1.0, 0.0), ("r", -1.0, np.pi)):
        a = hip_ang[side]
        k = amp * person.knee_lift * (0.08 + 1.0 * np.maximum(0.0, np.cos(phi + off + 0.7)) ** 2) + 0.02
        hip = pelvis + left * sgn * person.hip_width * 0.33
        knee = hip + thigh * (f * np.sin(a) - up * np.cos(a))
        ankle = knee + shin * (f * np.sin(a - k) - up * np.cos(a - k))
        ang = np.clip(a - k, -0.6, 0.6)
        toe = ankle + 0.14 * h / 1.72 * (f * np.cos(ang) + up * np.sin(ang)) - up * 0.02
        sh = neck - up * 0.045 * h / 1.72 + left * sgn * person.shoulder_width * 0.42
        s = -amp * person.arm_swing * np.sin(phi + off) + 0.03
        e = 0.12 + amp * 0.6 * person.arm_swing * np.maximum(0.0, -np.sin(phi + off))
        elbow = sh + 0.45 * arm * (f * np.sin(s) - up * np.cos(s)) + left * sgn * 0.02
        wrist = elbow + 0.4 * arm * (f * np.sin(s + e) - up * np.cos(s + e))
        hand = wrist + 0.12 * arm * (f * np.sin(s + e) - up * np.cos(s + e))
        pts.update({f"{side}_hip": hip, f"{side}_knee": knee, f"{side}_ankle": ankle, f"{side}_toe": toe,
                    f"{side}_shoulder": sh, f"{side}_elbow": elbow, f"{side}_wrist": wrist,
                    f"{side}_hand": hand})
    head_base = neck + spine * neck_len + f * 0.015
    pts["head_base"] = head_base
    pts["head_top"] = head_base + up * head_h
    return pts


@dataclass
class PersonInstance:
    """A person on one walk seen by one camera: texture atlas and per-part mapping, cached per walk."""

    person: Person
    walk: Walk
    camera: Camera
    atlas: torch.Tensor  # (P, T, T) reflectance
    tex_scale: torch.Tensor  # (P, 2) texels per metre along u and v
    tex_offset: torch.Tensor  # (P, 2) texel offsets
    shade: np.ndarray  # (P,) part brightness factor
    present: np.ndarray  # (P,) bool
    max_speed_px: float = 0.0  # fastest projected part endpoint over the walk (px / s)
    atlas_range: tuple[float, float] = field(default=(0.0, 0.0), init=False)  # darkest, brightest texel

    def __post_init__(self) -> None:
        self.atlas_range = (float(self.atlas.min()), float(self.atlas.max()))
        if self.max_speed_px == 0.0 and not self.walk.still:
            # sample the walk densely enough to see every gait phase (period ~1 s): 1/50 s steps
            t0, t1 = self.walk.t_start_us, self.walk.t_end_us
            ts = np.arange(t0, t1 + 1, 20_000, dtype=np.float64)
            g = self.geometry(ts)
            move = np.maximum(np.abs(np.diff(g.a, axis=0)).max(axis=2), np.abs(np.diff(g.b, axis=0)).max(axis=2))
            move = move + np.abs(np.diff(np.maximum(g.ra, g.rb), axis=0))
            self.max_speed_px = float(move[:, g.visible].max()) / 0.02 if len(ts) > 1 else 0.0

    def log_contrast(self, background: tuple[float, float]) -> float:
        """Largest log contrast between this person's reflectances and the background range, capped
        at 2.5 (the lin-log floor of the sensor bounds darker contrasts anyway)."""
        lo = min(self.atlas_range[0], background[0])
        hi = max(self.atlas_range[1], background[1])
        return min(math.log((hi + 0.05) / (lo + 0.05)), 2.5)

    @classmethod
    def build(cls, person: Person, walk: Walk, camera: Camera) -> PersonInstance:
        mid = np.array([(walk.t_start_us + walk.t_end_us) / 2.0])
        pos = walk.position(mid)[0] + np.array([0.0, 1.5, 0.0])
        view = camera.view_direction(pos)
        vh = np.array([view[0], 0.0, view[2]])
        vh /= max(np.linalg.norm(vh), 1e-9)
        f, _, left = _basis(tuple(walk.direction))
        facing = float(-(f @ vh))
        # which image side the person faces: sign of the forward vector's image-x motion
        u0, _, _ = camera.project(pos[None])
        u1, _, _ = camera.project((pos + f * 0.2)[None])
        side = 1.0 if float(u1[0] - u0[0]) >= 0 else -1.0
        near_left = float(left @ vh) < 0  # the person's left side faces the camera
        tiles, scale, offset, shade = [], [], [], []
        rng = np.random.default_rng(person.texture_seed)
        up_tile, lo_tile = person.upper.tile(person.texture_seed), person.lower.tile(person.texture_seed + 1)
        skin = person.face.skin
        for name in PART_NAMES:
            slot = _SLOT[name]
            per = 1.0
            if slot == "upper" or (slot == "fore" and person.long_sleeves):
                tile, per = up_tile, person.upper.period_m
            elif slot == "lower":
                tile, per = lo_tile, person.lower.period_m
            elif slot == "face":
                tile = face_tile(person, facing, side)
            else:
                tone = {"skin": skin, "fore": skin, "shoes": person.shoes, "hair": person.hair_tone,
                        "bag": person.bag_tone}[slot]
                tile = np.full((TILE, TILE), tone, np.float32)
            tiles.append(tile)
            if slot == "face":
                r = _head_radius(person)
                length = person.height * person.head_ratio
                scale.append((TILE / length, TILE / (2 * r)))
                offset.append((TILE * r / length, TILE / 2))
            else:
                scale.append((TILE / per, TILE / per))
                offset.append((float(rng.uniform(0, TILE)), float(rng.uniform(0, TILE))))
            far = name[:2] in ("l_", "r_") and ((name[0] == "l") != near_left)
            shade.append(0.78 if far else 1.0)
        present = np.ones(len(PART_NAMES), bool)
        present[PART_NAMES.index("hair")] = person.hair_length > 0.3
        present[PART_NAMES.index("bag")] = person.bag != "none"
        return cls(person, walk, camera, torch.from_numpy(np.stack(tiles)), torch.tensor(scale),
                   torch.tensor(offset), np.asarray(shade), present)

    def geometry(self, t_us: np.ndarray) -> Geometry:
        p = self.person
        pts = body_points(p, self.walk, t_us)
        f, up, left = _basis(tuple(self.walk.direction))
        cam_pos = np.array([0.0, self.camera.mount_height, 0.0])
        vh = pts["pelvis"] - cam_pos
        vh[:, 1] = 0
        vh /= np.maximum(np.linalg.norm(vh, axis=1, keepdims=True), 1e-9)
        cf, cl = (vh @ f) ** 2, (vh @ left) ** 2

        def proj_width(width: float, depth: float) -> np.ndarray:
            return np.sqrt((width / 2) ** 2 * cf + (depth / 2) ** 2 * cl)

        g = p.limb_girth
        r_head = _head_radius(p)
        hip_r = proj_width(p.hip_width, p.chest_depth * 0.95)
        sh_r = proj_width(p.shoulder_width, p.chest_depth)
        torso_a = pts["pelvis"] + up * (0.6 * hip_r[:, None])
        torso_b = pts["neck"] - up * (0.75 * sh_r[:, None])
        ones = np.ones(len(t_us))
        seg: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {
            "torso": (torso_a, torso_b, hip_r, sh_r * 0.95),
            "pelvis": (pts["l_hip"], pts["r_hip"], ones * 0.1 * g, ones * 0.1 * g),
            "neck": (pts["neck"], pts["head_base"] + up * 0.02, ones * 0.05 * g, ones * 0.045 * g),
            "head": (pts["head_base"] + up * r_head, pts["head_top"] - up * r_head, ones * r_head,
                     ones * r_head),
            "hair": (pts["head_top"] - up * r_head - f * 0.03,
                     pts["head_base"] - f * 0.05 - up * (0.2 * p.hair_length), ones * r_head * 1.02,
                     ones * r_head * 0.8),
        }
        for s in ("l", "r"):
            seg[f"{s}_thigh"] = (pts[f"{s}_hip"], pts[f"{s}_knee"], ones * 0.085 * g, ones * 0.06 * g)
            seg[f"{s}_shin"] = (pts[f"{s}_knee"], pts[f"{s}_ankle"], ones * 0.055 * g, ones * 0.04 * g)
            seg[f"{s}_foot"] = (pts[f"{s}_ankle"], pts[f"{s}_toe"], ones * 0.04, ones * 0.035)
            seg[f"{s}_upper"] = (pts[f"{s}_shoulder"], pts[f"{s}_elbow"], ones * 0.05 * g, ones * 0.04 * g)
            seg[f"{s}_fore"] = (pts[f"{s}_elbow"], pts[f"{s}_wrist"], ones * 0.04 * g, ones * 0.03 * g)
            seg[f"{s}_hand"] = (pts[f"{s}_wrist"], pts[f"{s}_hand"], ones * 0.035, ones * 0.03)
        if p.bag == "backpack":
            back = -f * (p.chest_depth / 2 + 0.08)
            tl = np.linalg.norm(pts["neck"] - pts["pelvis"], axis=1)[:, None]
            seg["bag"] = (pts["pelvis"] + up * 0.45 * tl + back, pts["pelvis"] + up * 0.8 * tl + back,
                          ones * 0.14, ones * 0.13)
        else:
            side = left * (p.hip_width / 2 + 0.06)
            swing = f * 0.04 * np.sin(2 * np.pi * p.stride_hz * (np.asarray(t_us) * 1e-6))[:, None]
            seg["bag"] = (pts["pelvis"] + side + up * 0.02, pts["pelvis"] + side - up * 0.14 + swing,
                          ones * 0.1, ones * 0.1)
        a3 = np.stack([seg[n][0] for n in PART_NAMES], axis=1)
        b3 = np.stack([seg[n][1] for n in PART_NAMES], axis=1)
        ua, va, za = self.camera.project(a3)
        ub, vb, zb = self.camera.project(b3)
        fpx = self.camera.focal_px
        ra = np.stack([seg[n][2] for n in PART_NAMES], axis=1) * fpx / za
        rb = np.stack([seg[n][3] for n in PART_NAMES], axis=1) * fpx / zb
        return Geometry(np.stack([ua, va], -1), np.stack([ub, vb], -1), ra, rb, (za + zb) / 2,
                        2 * fpx / (za + zb), self.present)


def _head_radius(p: Person) -> float:
    return 0.075 * p.height / 1.72


def face_tile(person: Person, facing: float, side: float) -> np.ndarray:
    """Head texture (rows: chin -> crown, columns: v across the head) seen at ``facing`` (1 frontal,
    0 profile, -1 from behind); ``side`` is +1 when the person faces image-right."""
    n = TILE
    fc = person.face
    uu, vv = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n * 2 - 1, indexing="ij")
    x = -vv  # image-right coordinate across the head, -1..1
    tile = np.full((n, n), fc.skin, np.float32)
    prof = math.sqrt(max(0.0, 1 - facing**2))
    a0 = side * prof * 0.62
    wf = max(0.3, abs(facing))
    back = -x * side  # > 0 towards the back of the head in profile
    hairline = 0.8 - 0.08 * person.hair_length
    hair = uu > hairline
    if facing < 0.2:
        hair |= (uu > 0.25) & ((back * prof > 0.15 - 0.6 * min(0.0, facing)) | (facing < -0.5))
    tile[hair] = person.hair_tone
    if facing < -0.2:
        return tile
    dark = 0.05
    for ex in (a0 - fc.eye_spacing * wf, a0 + fc.eye_spacing * wf):
        if abs(ex) > 0.9:
            continue
        eye = ((x - ex) / (fc.eye_size * 1.3)) ** 2 + ((uu - 0.58) / fc.eye_size) ** 2 < 1
        tile[eye] = dark
        brow = (np.abs(x - ex) < 0.22 * wf) & (np.abs(uu - 0.69) < 0.02 + 0.03 * fc.brow_weight)
        tile[brow] = person.hair_tone * 0.8
        if fc.glasses:
            d = np.sqrt(((x - ex) / 1.2) ** 2 + (uu - 0.58) ** 2)
            tile[np.abs(d - 0.16) < 0.035] = 0.08
    nose = (np.abs(x - a0 - side * prof * 0.12) < 0.06 * wf + 0.04 * prof) & (uu > 0.4) & (uu < 0.56)
    tile[nose] = fc.skin * 0.8
    mouth = (np.abs(x - a0) < fc.mouth_width * wf / 2) & (np.abs(uu - 0.3) < 0.03)
    tile[mouth] = fc.skin * 0.45
    if fc.beard:
        tile[(uu < 0.42) & (np.abs(x - a0) < 0.75 * wf + 0.1)] = person.hair_tone * 0.9
    if fc.mask:
        m = (uu > 0.16) & (uu < 0.5) & (np.abs(x - a0) < 0.7 * wf + 0.15)
        tile[m] = fc.mask_tone
        tile[(np.abs(uu - 0.48) < 0.015) & (np.abs(x - a0) > 0.5 * wf)] = fc.mask_tone * 0.7
    return tile


def _raster_group(a: np.ndarray, b: np.ndarray, ra: np.ndarray, rb: np.ndarray, sc: np.ndarray,
                  ox: np.ndarray, oy: np.ndarray, bw: int, bh: int, tex: tuple[torch.Tensor, ...]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Coverage and colour (F, Q, bh, bw) of Q capsules, each frame's part in its own box at (ox, oy)."""
    scale, offset, atlas, shade = tex
    f32 = np.float32
    ab = b - a
    len2 = np.maximum((ab**2).sum(-1), 1e-6)
    length = np.sqrt(len2)
    t = torch.from_numpy
    ax = (a[..., 0] - ox)[..., None, None]  # (F,Q,1,1) endpoint A in box coordinates
    ay = (a[..., 1] - oy)[..., None, None]
    gx = t((np.arange(bw, dtype=f32) + 0.5)[None, None, None, :] - ax.astype(f32))  # (F,Q,1,bw)
    gy = t((np.arange(bh, dtype=f32) + 0.5)[None, None, :, None] - ay.astype(f32))  # (F,Q,bh,1)
    bx = t((ab[..., 0] / len2).astype(f32))[..., None, None]
    by = t((ab[..., 1] / len2).astype(f32))[..., None, None]
    proj = gx * bx + gy * by  # position along the axis, 0..1 between the endpoints
    hcl = proj.clamp(0, 1)
    abx = t(ab[..., 0].astype(f32))[..., None, None]
    aby = t(ab[..., 1].astype(f32))[..., None, None]
    dx = gx - abx * hcl
    dy = gy - aby * hcl
    rad = t(ra.astype(f32))[..., None, None] + t((rb - ra).astype(f32))[..., None, None] * hcl
    d2 = dx * dx + dy * dy
    cov = (rad + 0.5 - torch.sqrt(d2)).clamp_(0, 1)
    across = gx * t((ab[..., 1] / length).astype(f32))[..., None, None] - gy * t(
        (ab[..., 0] / length).astype(f32))[..., None, None]  # signed px across the axis
    ku = t((length / sc).astype(f32))[..., None, None] * scale[None, :, 0, None, None]
    kv = t((1 / sc).astype(f32))[..., None, None] * scale[None, :, 1, None, None]
    # texel indices, wrapped into the tile; kept in float32 (cheaper than int64) until the gather
    iu = torch.remainder(torch.floor_(proj * ku + offset[None, :, 0, None, None]), TILE)
    iv = torch.remainder(torch.floor_(across * kv + offset[None, :, 1, None, None]), TILE)
    base = (torch.arange(atlas.shape[0], dtype=torch.float32) * (TILE * TILE))[:, None, None]
    color = torch.take(atlas, iu.mul_(TILE).add_(iv).add_(base).long())
    ratio2 = d2 / (rad * rad).clamp_min(0.25)
    color = color * (1 - 0.3 * ratio2.clamp_(max=1.0)) * shade[:, None, None]
    return cov, color


def rasterize(instances: list[PersonInstance], geoms: list[Geometry], refl: torch.Tensor,
              y0: int, x0: int) -> torch.Tensor:
    """Composite people onto ``refl`` ((F, h, w) background reflectance of the region at ``(y0, x0)``).

    Every part is rasterised in its own small box per frame; parts are vectorised over frames and
    parts in up to three groups of similar box size (torso-sized, limb-sized, hand-sized), so small
    parts do not pay for large boxes, then pasted far-to-near with one gather / scatter per part.
    Returns the (F, h, w) reflectance.
    """
    nf, h, w = refl.shape
    out = refl.clone()
    if not geoms:
        return out
    # all parts of all people, far first (stable for equal depth)
    depth = np.concatenate([g.depth.mean(axis=0) for g in geoms])
    present = np.concatenate([g.visible for g in geoms])
    order = np.flatnonzero(present)
    order = order[np.argsort(-depth[order], kind="stable")]
    origin = np.array([x0, y0])
    a = np.concatenate([g.a for g in geoms], axis=1)[:, order] - origin  # (F,Q,2)
    b = np.concatenate([g.b for g in geoms], axis=1)[:, order] - origin
    ra = np.concatenate([g.ra for g in geoms], axis=1)[:, order]
    rb = np.concatenate([g.rb for g in geoms], axis=1)[:, order]
    sc = np.concatenate([g.scale for g in geoms], axis=1)[:, order]
    r = (np.maximum(ra, rb) + 1)[..., None]
    lo = np.clip(np.floor(np.minimum(a, b) - r), 0, [w, h]).astype(np.int64)  # (F,Q,2) per-frame boxes
    hi = np.clip(np.ceil(np.maximum(a, b) + r), 0, [w, h]).astype(np.int64)
    size = np.maximum(hi - lo, 0)
    keep = np.flatnonzero((size > 0).all(axis=2).any(axis=0))
    if len(keep) == 0:
        return out
    tex_all = (torch.cat([i.tex_scale for i in instances]), torch.cat([i.tex_offset for i in instances]),
               torch.cat([i.atlas for i in instances]),
               torch.from_numpy(np.concatenate([i.shade for i in instances]).astype(np.float32)))
    area = size[:, keep].prod(axis=2).max(axis=0)
    rank = keep[np.argsort(-area, kind="stable")]
    groups = [g for g in (rank[:4], rank[4:10], rank[10:]) if len(g)]
    flat = out.numpy().reshape(-1)  # pasting many small tiles is cheaper in numpy than in torch
    pasted: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    frame_base = (np.arange(nf) * (h * w))[:, None]
    for group in groups:
        bw = int(min(size[:, group, 0].max(), w))
        bh = int(min(size[:, group, 1].max(), h))
        ox = np.minimum(lo[:, group, 0], w - bw)  # (F,Qg)
        oy = np.minimum(lo[:, group, 1], h - bh)
        idx_t = torch.from_numpy(order[group])
        tex = tuple(t.index_select(0, idx_t) for t in tex_all)
        cov, color = _raster_group(a[:, group], b[:, group], ra[:, group], rb[:, group], sc[:, group], ox, oy,
                                   bw, bh, tex)
        start = (frame_base + oy * w + ox)[..., None, None]  # (F,Qg,1,1)
        pix = start + (np.arange(bh)[:, None] * w + np.arange(bw)[None, :])[None, None]  # (F,Qg,bh,bw)
        cov_np, col_np = cov.numpy(), color.numpy()
        for j, q in enumerate(group):
            pasted[int(q)] = (cov_np[:, j], col_np[:, j], pix[:, j])
    for q in keep:
        c, col, pix_q = pasted[int(q)]
        view = flat[pix_q]
        flat[pix_q] = view + c * (col - view)
    return out


ENROLLMENT_HW = (256, 128)


def render_enrollment(person: Person) -> np.ndarray:
    """Frontal, well-lit, standing photo of ``person``: (256, 128) uint8 (what an attacker would hold).

    A studio camera at chest height, 3 m away, plain light-grey wall, uniform light; the person faces
    the camera so the face (or the mask) is fully visible.
    """
    from anonreid.events.world.simulator import SensorParams

    h, w = ENROLLMENT_HW
    focal = 0.9 * h * 3.0 / 1.95
    studio = Camera(name="studio", width=w, height=h, hfov_deg=math.degrees(2 * math.atan(w / 2 / focal)),
                    mount_height=0.97, tilt_deg=0.0, lane_x=0.0, lane_z=3.0, heading_deg=-90.0, wall_z=6.0,
                    light_level=1.0, light_gradient=(0.0, 0.0), vignette=0.0, flicker_hz=0.0,
                    flicker_amp=0.0, wall_tone=0.75, floor_tone=0.6, scene_seed=0, sensor=SensorParams())
    walk = Walk(person, "studio", 0, 1, (0.0, 0.0, 3.0), (0.0, 0.0, -1.0), still=True)
    inst = PersonInstance.build(person, walk, studio)
    geom = inst.geometry(np.array([0.0]))
    bg = torch.full((1, h, w), 0.72)
    refl = rasterize([inst], [geom], bg, 0, 0)[0].numpy()
    return (np.clip(refl, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)
