"""Procedural identities: body, gait, clothing, face and accessories, drawn from one seed.

An identity is a frozen :class:`Person`. Its fields fall in two groups on purpose:

* cues that survive event anonymization because they live in *shape and motion*: height, build
  (shoulder / hip width, limb lengths, chest depth), gait (cadence, step length, arm swing, knee lift,
  vertical bob, torso lean) and walking speed;
* *appearance* cues that an image-reconstruction attack can recover: upper / lower clothing reflectance
  and texture (solid, stripes, checks, prints; orientation and frequency), hair, skin tone, a procedural
  face (eyes, brows, mouth, glasses or beard), bag or backpack, and a face mask for about a quarter of
  the people.

Attributes are drawn with spreads chosen so that neighbours overlap (two people may share a shirt
colour or a cadence) and no single cue identifies everyone; identity is in the combination.
Texture tiles (``T x T`` reflectance maps in [0, 1]) are built here once per person and sampled by the
renderer in body-local metric coordinates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

TILE = 32  # texture tile size in texels
PATTERNS = ("solid", "stripes", "checks", "print")


@dataclass(frozen=True)
class Clothing:
    """A garment: base and accent reflectance, pattern, pattern period (m) and orientation (rad)."""

    base: float
    accent: float
    pattern: str
    period_m: float
    orientation: float

    def tile(self, rng_seed: int) -> np.ndarray:
        """A ``TILE x TILE`` reflectance tile covering one pattern period in each direction."""
        n = TILE
        u, v = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")  # rows: u along the part
        c, s = np.cos(self.orientation), np.sin(self.orientation)
        a = u * c + v * s
        if self.pattern == "solid":
            mask = np.zeros((n, n), bool)
        elif self.pattern == "stripes":
            mask = (np.floor(a * 2) % 2) == 1
        elif self.pattern == "checks":
            mask = ((np.floor(u * 2) + np.floor(v * 2)) % 2) == 1
        else:  # print: a few random blobs per tile
            rng = np.random.default_rng(rng_seed)
            mask = np.zeros((n, n), bool)
            for _ in range(int(rng.integers(2, 5))):
                cu, cv, r = rng.random(), rng.random(), 0.08 + 0.1 * rng.random()
                du = np.minimum(np.abs(u - cu), 1 - np.abs(u - cu))
                dv = np.minimum(np.abs(v - cv), 1 - np.abs(v - cv))
                mask |= du**2 + dv**2 < r**2
        return np.where(mask, self.accent, self.base).astype(np.float32)


@dataclass(frozen=True)
class Face:
    """Procedural face: skin reflectance, features and what covers them."""

    skin: float
    eye_spacing: float  # fraction of the head half-width
    eye_size: float
    brow_weight: float  # 0 = faint, 1 = heavy
    mouth_width: float
    glasses: bool
    beard: bool
    mask: bool
    mask_tone: float


@dataclass(frozen=True)
class Person:
    """One identity. Lengths in metres, angles in radians, cadence in steps / minute."""

    identity: str
    index: int
    split: str
    height: float
    shoulder_width: float
    hip_width: float
    chest_depth: float
    leg_ratio: float  # leg length / height
    arm_ratio: float  # arm length / height
    head_ratio: float  # head height / height
    limb_girth: float  # multiplier on limb radii (build)
    cadence: float
    step_length: float
    arm_swing: float
    knee_lift: float
    bob: float
    lean: float
    speed: float
    upper: Clothing
    lower: Clothing
    shoes: float
    hair_tone: float
    hair_length: float  # 0 = short, 1 = shoulder length
    face: Face
    bag: str  # "none" | "backpack" | "shoulder"
    bag_tone: float
    long_sleeves: bool
    texture_seed: int = field(default=0)

    @property
    def leg_length(self) -> float:
        return self.height * self.leg_ratio

    @property
    def stride_hz(self) -> float:
        """Full gait cycles per second (two steps per cycle)."""
        return self.cadence / 120.0

    def to_json(self) -> dict[str, Any]:
        """All attributes as plain JSON values (world.json)."""
        return asdict(self)

    @classmethod
    def from_json(cls, attrs: dict[str, Any]) -> Person:
        """The person :meth:`to_json` wrote (a world.json ``identities`` entry)."""
        nested = {"upper": Clothing, "lower": Clothing, "face": Face}
        return cls(**{k: nested[k](**v) if k in nested else v for k, v in attrs.items()})

    def on_another_day(self, day: int) -> Person:
        """The same person on another day: a new outfit, the same body, gait, hair and face.

        Day 0 is the person as the cameras film them. Day ``d`` >= 1 redraws what a person changes
        from day to day (upper and lower garments, shoes, bag, sleeves, texture) from a seed of their
        own and ``d``, and takes off the face mask (an identity photo shows the face). What stays is
        what identifies a person across days: body, gait, hair and face. An enrollment photo of another
        day is what a biometric identification attack must match; one of the same day also carries the
        clothing, which is exactly what cross-camera ReId uses.
        """
        if day < 0:
            raise ValueError(f"day must be >= 0, got {day}")
        if day == 0:
            return self
        rng = np.random.default_rng(np.random.SeedSequence([self.texture_seed, 0xDA7, day]))
        return replace(
            self,
            upper=_clothing(rng, 0.0),
            lower=_clothing(rng, 0.12),
            shoes=float(rng.uniform(0.03, 0.6)),
            bag=str(rng.choice(["none", "backpack", "shoulder"], p=[0.5, 0.3, 0.2])),
            bag_tone=float(rng.uniform(0.03, 0.7)),
            long_sleeves=bool(rng.random() < 0.6),
            texture_seed=int(rng.integers(0, 2**31 - 1)),
            face=replace(self.face, mask=False),
        )


def _clothing(rng: np.random.Generator, dark_bias: float) -> Clothing:
    base = float(np.clip(rng.beta(1.6, 1.6) * 0.85 + 0.04 - dark_bias, 0.03, 0.9))
    pattern = str(rng.choice(PATTERNS, p=[0.4, 0.25, 0.15, 0.2]))
    accent = float(np.clip(base + rng.choice([-1, 1]) * rng.uniform(0.2, 0.5), 0.03, 0.92))
    return Clothing(
        base=base,
        accent=accent,
        pattern=pattern,
        period_m=float(rng.uniform(0.06, 0.25)),
        orientation=float(rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4], p=[0.45, 0.35, 0.1, 0.1])),
    )


def generate_person(index: int, seed: int, split: str) -> Person:
    """Identity ``index`` of the world with ``seed``; independent of how many identities there are."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9E0_91E, index]))
    height = float(np.clip(rng.normal(1.72, 0.09), 1.5, 1.98))
    build = float(rng.normal(0.0, 1.0))  # shared factor of width measures
    leg_ratio = float(np.clip(rng.normal(0.49, 0.018), 0.45, 0.54))
    leg = height * leg_ratio
    cadence = float(np.clip(rng.normal(108, 8), 88, 130))
    step = float(np.clip(height * rng.normal(0.42, 0.035), 0.55, 0.95))
    masked = bool(rng.random() < 0.25)
    bearded = bool(rng.random() < 0.25)
    face = Face(
        skin=float(rng.uniform(0.12, 0.7)),
        eye_spacing=float(rng.uniform(0.3, 0.45)),
        eye_size=float(rng.uniform(0.09, 0.16)),
        brow_weight=float(rng.uniform(0.0, 1.0)),
        mouth_width=float(rng.uniform(0.25, 0.5)),
        glasses=bool(rng.random() < 0.3),
        beard=bearded and not masked,
        mask=masked,
        mask_tone=float(rng.choice([0.85, 0.6, 0.15])),
    )
    bag = str(rng.choice(["none", "backpack", "shoulder"], p=[0.5, 0.3, 0.2]))
    del leg
    return Person(
        identity=f"{index + 1:03d}",
        index=index,
        split=split,
        height=height,
        shoulder_width=float(np.clip(height * (0.245 + 0.012 * build) + rng.normal(0, 0.01), 0.33, 0.52)),
        hip_width=float(np.clip(height * (0.19 + 0.01 * build) + rng.normal(0, 0.012), 0.26, 0.42)),
        chest_depth=float(np.clip(height * (0.13 + 0.012 * build), 0.17, 0.32)),
        leg_ratio=leg_ratio,
        arm_ratio=float(np.clip(rng.normal(0.44, 0.015), 0.4, 0.48)),
        head_ratio=float(np.clip(rng.normal(0.13, 0.006), 0.115, 0.145)),
        limb_girth=float(np.clip(1.0 + 0.12 * build + rng.normal(0, 0.05), 0.75, 1.35)),
        cadence=cadence,
        step_length=step,
        arm_swing=float(np.clip(rng.normal(0.42, 0.12), 0.12, 0.75)),
        knee_lift=float(np.clip(rng.normal(1.0, 0.18), 0.6, 1.5)),
        bob=float(np.clip(rng.normal(1.0, 0.25), 0.4, 1.7)),
        lean=float(np.clip(rng.normal(0.05, 0.04), -0.05, 0.16)),
        speed=step * cadence / 60.0,
        upper=_clothing(rng, 0.0),
        lower=_clothing(rng, 0.12),
        shoes=float(rng.uniform(0.03, 0.6)),
        hair_tone=float(rng.choice([rng.uniform(0.02, 0.12), rng.uniform(0.15, 0.5), rng.uniform(0.5, 0.8)],
                                   p=[0.55, 0.3, 0.15])),
        hair_length=float(rng.choice([rng.uniform(0.0, 0.25), rng.uniform(0.4, 1.0)], p=[0.6, 0.4])),
        face=face,
        bag=bag,
        bag_tone=float(rng.uniform(0.03, 0.7)),
        long_sleeves=bool(rng.random() < 0.6),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def generate_people(count: int, train_count: int, seed: int, first: int = 1) -> list[Person]:
    """``count`` identities from number ``first`` ("001".."NNN" by default); the first ``train_count``
    are the train split, the rest test.

    The split is fixed by index (as in Event-ReId), and identity ``i`` does not depend on ``count``,
    so a larger world extends a smaller one, and a world from ``first`` = N + 1 holds only people that
    the same seed's N-identity world does not.
    """
    if not 0 < train_count < count:
        raise ValueError(f"train identities must be between 1 and identities - 1, got {train_count} of {count}")
    if first < 1:
        raise ValueError(f"the first identity is numbered from 1, got {first}")
    return [generate_person(first - 1 + i, seed, "train" if i < train_count else "test") for i in range(count)]
