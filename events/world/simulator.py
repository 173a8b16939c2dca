"""ESIM / v2e-style event simulator on log intensity.

Model (one DVS pixel, as in ESIM, Rebecq et al. CoRL 2018, and v2e, Hu et al. CVPRW 2021):

* The pixel sees ``L = log(I + eps)`` of the linear radiance ``I`` (``eps`` = :attr:`SensorParams.log_eps`,
  default 0.01, a lin-log floor so dark pixels are not dominated by quantisation).
* It memorises a reference level ``ref``. Whenever ``L`` rises to ``ref + theta_on`` it emits an ON
  event (+1) and ``ref`` moves up by ``theta_on``; falling to ``ref - theta_off`` emits OFF (-1).
  ``theta_on`` and ``theta_off`` are drawn per pixel from ``N(threshold, threshold_sigma)`` (mismatch;
  defaults 0.25 and 0.03, clipped at 0.05). ON/OFF asymmetry: with ``off_on_ratio`` r != 1 the means are
  ``2 threshold / (1 + r)`` (ON) and ``2 r threshold / (1 + r)`` (OFF): their average stays ``threshold``.
* Photoreceptor bandwidth (``cutoff_hz`` > 0; default 0 = unlimited): the comparator sees ``L`` through a
  first-order low-pass whose cutoff grows with intensity as in v2e, ``cutoff_hz * (255 I + 20) / 275``
  (at most ``cutoff_hz``), discretised exactly between frames (``1 - exp(-2 pi f dt)``). Pixels whose
  filtered level still lags their input keep being simulated after the scene around them stops moving.
* Between two rendered frames ``L`` is taken as linear in time, so each threshold crossing gets its own
  timestamp, interpolated between the two frame times (microseconds, rounded).
* Refractory period (default 500 us): a crossing less than ``refractory_us`` after the pixel's previous
  event is dropped (the reference still advances through it, so the pixel does not fire a burst later).
* Noise, all per pixel and independent of the signal:
  shot noise (default 0.1 Hz per pixel on average, random polarity, Poisson; the rate at a pixel
  scales inversely with the background radiance there, clipped to 0.25x..4x, so dark areas are
  noisier, normalised so the frame-wide mean stays ``shot_noise_hz``),
  leak events (default 0.05 Hz per pixel, ON, periodic with a per-pixel rate spread as
  ``threshold / theta_on`` and a random phase: the slow drift of the reference level of real pixels),
  hot pixels (default fraction 2e-4 of the pixels, each firing a fixed polarity as a Poisson process
  at 30 Hz).

A static scene therefore produces only noise events, at ``shot + leak`` per pixel plus the hot pixels
(:meth:`EventSimulator.expected_noise_rate`).

Adaptive frame rate: the renderer chooses how many frames to render in each time slot so that the
per-pixel log-intensity change between consecutive frames stays below ``max_log_step`` (default 0.5,
about two thresholds). A moving anti-aliased edge of log contrast ``C`` that moves ``d`` pixels changes
a pixel by at most ``C * min(d, 1)``, so the slot gets ``n = ceil(C * v_max * dt_slot / max_log_step)``
frames, where ``v_max`` is the fastest projected body point (joint positions and limb radii are
evaluated analytically at four times in the slot) and ``C`` the largest log contrast between the
people's texture atlases and the background; lamp flicker adds ``2 pi f a`` of log change per second.
``n`` is clipped to ``[min_fps, max_fps]`` frames per second (defaults 60 and 150). The realised
maximum step is measured on every slot (``CameraSimulation.stats``) so the bound can be checked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from anonreid.events.types import SensorSize, empty_events, make_events


@dataclass(frozen=True)
class SensorParams:
    """Event sensor parameters; the defaults are documented in the module docstring."""

    threshold: float = 0.25
    threshold_sigma: float = 0.03
    refractory_us: int = 500
    shot_noise_hz: float = 0.1
    leak_hz: float = 0.05
    hot_pixel_fraction: float = 2e-4
    hot_pixel_hz: float = 30.0
    off_on_ratio: float = 1.0
    cutoff_hz: float = 0.0
    log_eps: float = 0.01
    max_log_step: float = 0.5
    min_fps: float = 60.0
    max_fps: float = 150.0

    def __post_init__(self) -> None:
        if not 0.01 <= self.threshold <= 2.0:
            raise ValueError(f"sensor threshold must be within 0.01..2, got {self.threshold}")
        if self.threshold_sigma < 0 or self.refractory_us < 0 or self.shot_noise_hz < 0 or self.leak_hz < 0:
            raise ValueError("sensor threshold_sigma, refractory_us and noise rates must be >= 0")
        if not 0 <= self.hot_pixel_fraction < 0.1:
            raise ValueError(f"hot_pixel_fraction must be within 0..0.1, got {self.hot_pixel_fraction}")
        if not 0.25 <= self.off_on_ratio <= 4.0:
            raise ValueError(f"off_on_ratio must be within 0.25..4, got {self.off_on_ratio}")
        if self.cutoff_hz < 0:
            raise ValueError(f"cutoff_hz must be >= 0 (0 = unlimited bandwidth), got {self.cutoff_hz}")
        if not 0 < self.min_fps <= self.max_fps:
            raise ValueError(f"need 0 < min_fps <= max_fps, got {self.min_fps}, {self.max_fps}")

    def to_json(self) -> dict[str, Any]:
        """The fields, less those of the realism model at their neutral value (so the world.json of a
        world without it is what it was before they existed)."""
        return {k: v for k, v in asdict(self).items() if k not in _NEUTRAL or v != _NEUTRAL[k]}


_NEUTRAL = {"off_on_ratio": 1.0, "cutoff_hz": 0.0}  # fields that change nothing at these values
_SETTLED = 1e-3  # log units: a low-passed level this close to its input has settled


def log_intensity(radiance: np.ndarray, eps: float) -> np.ndarray:
    return np.log(radiance + np.float32(eps)).astype(np.float32)


class EventSimulator:
    """The per-pixel state of one sensor, advanced frame by frame over regions that change.

    ``advance`` receives the new log frames of the regions where something moves (pixels elsewhere are
    static, so skipping them is exact) plus the frame times, and returns the validated events of the
    elapsed interval: signal events from the regions merged with noise events over the whole sensor.
    """

    def __init__(self, sensor: SensorSize, params: SensorParams, initial_log: np.ndarray,
                 background: np.ndarray, seed: int | np.random.SeedSequence, t0_us: int = 0) -> None:
        h, w = sensor.height, sensor.width
        if initial_log.shape != (h, w) or background.shape != (h, w):
            raise ValueError(f"initial frames must be {h}x{w}, got {initial_log.shape} and {background.shape}")
        self.sensor, self.params = sensor, params
        self.rng = np.random.default_rng(seed)
        mm = np.random.default_rng(self.rng.integers(0, 2**63))
        th, sd, r = params.threshold, params.threshold_sigma, params.off_on_ratio
        th_on, th_off = (th, th) if r == 1.0 else (2 * th / (1 + r), 2 * r * th / (1 + r))
        self.theta_on = np.clip(mm.normal(th_on, sd, (h, w)), 0.05, None).astype(np.float32)
        self.theta_off = np.clip(mm.normal(th_off, sd, (h, w)), 0.05, None).astype(np.float32)
        self.level = initial_log.astype(np.float32).copy()  # log intensity (input) at the last frame time
        # what the comparator sees: the low-passed level with a finite bandwidth, else the level itself
        self._lp: np.ndarray | None = self.level.copy() if params.cutoff_hz > 0 else None
        self._seen = self.level if self._lp is None else self._lp
        self.ref = self.level.copy()
        self.last_t = np.full((h, w), -1e18)  # time of each pixel's last event (us)
        self.t_us = float(t0_us)
        # noise
        wgt = np.clip(float(background.mean()) / np.maximum(background, 1e-6), 0.25, 4.0).ravel()
        self._shot_cdf = np.cumsum(wgt / wgt.sum())
        self._shot_cdf[-1] = 1.0
        leak_rate = params.leak_hz * th / self.theta_on.ravel()
        self._leak_period = np.where(leak_rate > 0, 1e6 / np.maximum(leak_rate, 1e-12), np.inf)
        finite = np.isfinite(self._leak_period)
        self._leak_next = np.where(finite, t0_us + mm.random(h * w) * np.where(finite, self._leak_period, 0.0),
                                   np.inf)
        n_hot = round(params.hot_pixel_fraction * h * w)
        self._hot_idx = mm.choice(h * w, size=n_hot, replace=False) if n_hot else np.zeros(0, np.int64)
        self._hot_pol = np.where(mm.random(n_hot) < 0.5, 1, -1).astype(np.int8)

    def expected_noise_rate(self) -> float:
        """Mean noise events per second over the whole sensor for a static scene."""
        n = self.sensor.width * self.sensor.height
        leak = float(np.sum(1e6 / self._leak_period[np.isfinite(self._leak_period)]))
        return self.params.shot_noise_hz * n + leak + len(self._hot_idx) * self.params.hot_pixel_hz

    # ---- signal ---------------------------------------------------------------------------------
    def _region_events(self, ys: slice, xs: slice, frames: np.ndarray, times: np.ndarray,
                       t_prev: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Events of one region: (t float us, flat pixel index, polarity)."""
        ref = self.ref[ys, xs]
        th_on, th_off = self.theta_on[ys, xs], self.theta_off[ys, xs]
        prev = self._seen[ys, xs].copy()
        hi = np.maximum(frames.max(axis=0), prev)
        lo = np.minimum(frames.min(axis=0), prev)
        active = (hi - ref >= th_on) | (ref - lo >= th_off)
        rows, cols = np.nonzero(active)
        self._seen[ys, xs] = frames[-1]
        if len(rows) == 0:
            return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int8)
        flat = (rows + ys.start) * self.sensor.width + cols + xs.start
        r, ton, toff = ref[rows, cols].astype(np.float64), th_on[rows, cols], th_off[rows, cols]
        last = self.last_t.ravel()[flat]
        seq = frames[:, rows, cols].astype(np.float64)
        l0 = prev[rows, cols].astype(np.float64)
        refr = float(self.params.refractory_us)
        out_t, out_i, out_p = [], [], []
        t0 = t_prev
        for k in range(len(times)):
            t1 = float(times[k])
            l1 = seq[k]
            diff = l1 - r
            theta = np.where(diff > 0, ton, toff)
            n = np.floor(np.abs(diff) / theta).astype(np.int64)
            fire = np.flatnonzero(n > 0)
            if len(fire):
                sgn = np.sign(diff[fire])
                th = theta[fire]
                dl = l1[fire] - l0[fire]
                dt = t1 - t0
                slope = np.where(np.abs(dl) > 1e-9, dt / np.where(np.abs(dl) > 1e-9, dl, 1.0), 0.0)
                first = t0 + np.clip((r[fire] + sgn * th - l0[fire]) * slope, 0.0, dt)
                spacing = np.abs(th * slope)
                nf = n[fire]
                lastf = last[fire]
                safe = np.maximum(spacing, 1e-9)
                k_start = np.maximum(0, np.ceil((lastf + refr - first) / safe)).astype(np.int64)
                step = np.maximum(1, np.ceil(refr / safe)).astype(np.int64) if refr > 0 else np.ones_like(nf)
                m = np.maximum(0, -(-(nf - k_start) // step))
                if m.sum():
                    rep = np.repeat(np.arange(len(fire)), m)
                    offs = np.arange(int(m.sum())) - np.repeat(np.cumsum(m) - m, m)
                    j = k_start[rep] + offs * step[rep]
                    tt = np.minimum(first[rep] + j * spacing[rep], t1)
                    out_t.append(tt)
                    out_i.append(flat[fire[rep]])
                    out_p.append(sgn[rep].astype(np.int8))
                    has = m > 0
                    last_j = k_start + (m - 1) * step
                    last[fire[has]] = np.minimum(first[has] + last_j[has] * spacing[has], t1)
                r[fire] += sgn * nf * th
            l0 = l1
            t0 = t1
        ref[rows, cols] = r.astype(np.float32)
        self.ref[ys, xs] = ref
        lt = self.last_t.ravel()
        lt[flat] = last
        if not out_t:
            return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int8)
        return np.concatenate(out_t), np.concatenate(out_i), np.concatenate(out_p)

    # ---- photoreceptor bandwidth -----------------------------------------------------------------
    def _lowpass(self, ys: slice, xs: slice, frames: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The low-passed log frames of a region (its input level becomes the last frame)."""
        assert self._lp is not None
        lp = self._lp[ys, xs].copy()
        out = np.empty_like(frames)
        eps, two_pi_fc = np.float32(self.params.log_eps), 2 * np.pi * self.params.cutoff_hz
        t0 = self.t_us
        for k, t1 in enumerate(times):
            inten = np.minimum((255 * (np.exp(frames[k]) - eps) + 20) / 275, 1.0)  # v2e's intensity scaling
            lp += (1 - np.exp(-two_pi_fc * (t1 - t0) * 1e-6 * inten)) * (frames[k] - lp)
            out[k] = lp
            t0 = float(t1)
        self.level[ys, xs] = frames[-1]
        return out

    def _bandwidth_regions(self, times: np.ndarray,
                           regions: list[tuple[slice, slice, np.ndarray]]) -> list[tuple[slice, slice, np.ndarray]]:
        """``regions`` low-passed; pixels outside them whose filtered level still lags the input (a person
        just left) join them in one region over the bounding box, their input held at its level."""
        assert self._lp is not None
        lagging = np.abs(self._lp - self.level) > _SETTLED
        for ys, xs, _ in regions:
            lagging[ys, xs] = False
        if lagging.any():
            rows, cols = np.flatnonzero(lagging.any(axis=1)), np.flatnonzero(lagging.any(axis=0))
            y0 = min([int(rows[0])] + [ys.start for ys, _, _ in regions])
            y1 = max([int(rows[-1]) + 1] + [ys.stop for ys, _, _ in regions])
            x0 = min([int(cols[0])] + [xs.start for _, xs, _ in regions])
            x1 = max([int(cols[-1]) + 1] + [xs.stop for _, xs, _ in regions])
            merged = np.repeat(self.level[None, y0:y1, x0:x1], len(times), axis=0)
            for ys, xs, fr in regions:
                merged[:, ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = fr
            regions = [(slice(y0, y1), slice(x0, x1), merged)]
        return [(ys, xs, self._lowpass(ys, xs, fr, times)) for ys, xs, fr in regions]

    # ---- noise ----------------------------------------------------------------------------------
    def _noise(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dur = t1 - t0
        rng, p = self.rng, self.params
        npx = self.sensor.width * self.sensor.height
        n_shot = int(rng.poisson(p.shot_noise_hz * npx * dur * 1e-6))
        shot_i = np.searchsorted(self._shot_cdf, rng.random(n_shot), side="right").clip(0, npx - 1)
        shot_t = t0 + rng.random(n_shot) * dur
        shot_p = np.where(rng.random(n_shot) < 0.5, 1, -1).astype(np.int8)
        due = np.flatnonzero(self._leak_next < t1)
        leak_t = self._leak_next[due].copy()
        self._leak_next[due] += self._leak_period[due]
        n_hot = rng.poisson(p.hot_pixel_hz * dur * 1e-6, len(self._hot_idx))
        hot_sel = np.repeat(np.arange(len(self._hot_idx)), n_hot)
        hot_t = t0 + rng.random(len(hot_sel)) * dur
        return (np.concatenate([shot_t, leak_t, hot_t]),
                np.concatenate([shot_i, due, self._hot_idx[hot_sel]]),
                np.concatenate([shot_p, np.ones(len(due), np.int8), self._hot_pol[hot_sel]]))

    def advance(self, times_us: np.ndarray,
                regions: list[tuple[slice, slice, np.ndarray]]) -> np.ndarray:
        """Advance to ``times_us[-1]`` through frames at ``times_us`` (increasing, after the current time).

        ``regions`` are non-overlapping ``(rows, cols, log_frames (F, h, w))``; every pixel outside them
        keeps its level. Returns the events in ``(previous time, times_us[-1]]`` sorted by time.
        """
        times = np.asarray(times_us, dtype=np.float64)
        if len(times) == 0 or times[0] <= self.t_us or np.any(np.diff(times) <= 0):
            raise ValueError(f"frame times must increase after {self.t_us} us, got {times[:3]}...")
        if self._lp is not None:
            regions = self._bandwidth_regions(times, regions)
        parts = [self._region_events(ys, xs, fr, times, self.t_us) for ys, xs, fr in regions]
        parts.append(self._noise(self.t_us, float(times[-1])))
        self.t_us = float(times[-1])
        t = np.concatenate([q[0] for q in parts])
        if len(t) == 0:
            return empty_events()
        idx = np.concatenate([q[1] for q in parts])
        pol = np.concatenate([q[2] for q in parts])
        ti = np.floor(t).astype(np.int64)
        order = np.lexsort((idx, ti))
        ti, idx, pol = ti[order], idx[order], pol[order]
        w = self.sensor.width
        return make_events(ti, idx % w, idx // w, pol, sensor=self.sensor, source="world simulator")
