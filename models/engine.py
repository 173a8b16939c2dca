"""The training engine: a short step, and hooks around it (after fast-reid ``engine/hooks.py``).

:class:`Trainer` owns the models, one optimizer and the step counter. ``step_fn(step) -> (loss,
logs)`` computes one batch's loss (it draws its own batch, deterministically from the step number,
so a resumed run continues with exactly the batches it would have seen). Everything else is a hook,
called in list order at each point:

  before_train   :class:`Resume` (restores models, optimizer, step, history, RNG) runs first so
                 later hooks see the resumed step (and the state of their ``Trainer.extras``);
  before_step    :class:`CosineLR` sets the learning rate for the coming step;
  after_step     :class:`Evaluate` (adds validation metrics to this step's log), then
                 :class:`Logger` (JSONL line, progress bar, history), then :class:`Checkpoint`
                 (saves the resumable state, which thus includes this step's log and metrics);
  after_train    :class:`LossPlot` (PNG of every logged curve), then the caller saves final weights.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

StepFn = Callable[[int], tuple[torch.Tensor, dict[str, float]]]
EvalFn = Callable[[], dict[str, float]]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, amp: bool) -> AbstractContextManager:
    """bfloat16 autocast on CUDA when ``amp`` (no loss scaling needed); a no-op on CPU."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


class Hook:
    def before_train(self, trainer: Trainer) -> None: ...
    def before_step(self, trainer: Trainer) -> None: ...
    def after_step(self, trainer: Trainer) -> None: ...
    def after_train(self, trainer: Trainer) -> None: ...


@dataclass
class Trainer:
    """Runs ``steps`` optimizer steps of one stage; ``models`` are saved/restored by the hooks."""

    name: str
    models: dict[str, nn.Module]
    optimizer: torch.optim.Optimizer
    step_fn: StepFn
    steps: int
    hooks: list[Hook] = field(default_factory=list)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: bool = False
    step: int = 0  # steps completed
    log: dict[str, float] = field(default_factory=dict)  # the current step's numbers
    history: list[dict[str, float]] = field(default_factory=list)
    samples: int = 0  # samples seen in this process (for samples/s)
    batch_size: int = 1
    wall_s: float = 0.0  # the whole run, hooks included
    step_s: float = 0.0  # inside run_step only (forward, backward, optimizer): for samples/s
    cpu_s: float = 0.0  # CPU seconds of this process (all threads) inside run_step: the work, whatever the load
    world: int = 1  # data-parallel processes (torch.distributed initialised by Ray Train)
    # more resumable state a hook owns (``state_dict`` / ``load_state_dict``), saved in the same
    # ``state.pt`` as the models so that the two can never disagree about the step
    extras: dict[str, Any] = field(default_factory=dict)
    resumed_extras: dict[str, Any] = field(default_factory=dict)  # what Resume read for them

    def run(self) -> Trainer:
        for hook in self.hooks:
            hook.before_train(self)
        start = time.perf_counter()
        while self.step < self.steps:
            for hook in self.hooks:
                hook.before_step(self)
            t, c = time.perf_counter(), time.process_time()
            self.log = self.run_step()
            self.step_s += time.perf_counter() - t
            self.cpu_s += time.process_time() - c
            self.step += 1
            self.samples += self.batch_size
            for hook in self.hooks:
                hook.after_step(self)
        self.wall_s = time.perf_counter() - start
        for hook in self.hooks:
            hook.after_train(self)
        return self

    def run_step(self) -> dict[str, float]:
        for m in self.models.values():
            if any(p.requires_grad for p in m.parameters()):
                m.train()
        with autocast(self.device, self.amp):
            loss, logs = self.step_fn(self.step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.name}: loss is {float(loss)} at step {self.step} ({logs})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.world > 1:
            average_gradients(self.optimizer)
        self.optimizer.step()
        return {"step": self.step, "loss": float(loss.detach()), **logs}


def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """All-reduce (mean) every gradient across the data-parallel processes.

    Used instead of DistributedDataParallel because the recurrent attackers run several forwards per
    backward; every rank runs the same graph on its shard of the same global batch.
    """
    import torch.distributed as dist

    world = dist.get_world_size()
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(world)


class CosineLR(Hook):
    """Linear warm-up to each group's ``initial_lr``, then cosine decay to 1% of it."""

    def before_train(self, trainer: Trainer) -> None:
        for g in trainer.optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])

    def before_step(self, trainer: Trainer) -> None:
        warmup = getattr(trainer, "warmup", 0)
        s, n = trainer.step, max(trainer.steps, 1)
        if s < warmup:
            factor = (s + 1) / warmup
        else:
            factor = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(n - warmup, 1)))
        for g in trainer.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * factor


class Evaluate(Hook):
    """Every ``every`` steps and at the last step, add ``val_*`` metrics to the step's log."""

    def __init__(self, fn: EvalFn, every: int) -> None:
        self.fn, self.every = fn, every
        self.last: dict[str, float] = {}

    def after_step(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0 or trainer.step == trainer.steps:
            trainer.log.update(self.evaluate(trainer))

    def after_train(self, trainer: Trainer) -> None:
        if not self.last:  # no step ran here (zero steps, or resumed at the end): still report numbers
            self.evaluate(trainer)

    def evaluate(self, trainer: Trainer) -> dict[str, float]:
        for m in trainer.models.values():
            m.eval()
        # forked RNG: evaluating (e.g. a stochastic anonymizer's noise) must not change the training's
        # random stream, or a resumed stage would not continue exactly as an uninterrupted one
        with torch.random.fork_rng(devices=[]), torch.no_grad(), autocast(trainer.device, trainer.amp):
            self.last = {f"val_{k}": float(v) for k, v in self.fn().items()}
        return self.last


class Logger(Hook):
    """Appends each step's log to ``log.jsonl`` and the history; shows a rich progress bar."""

    def __init__(self, stage_dir: Path, every: int, progress: bool = True) -> None:
        self.path, self.every, self.progress = stage_dir / "log.jsonl", every, progress
        self._bar: Any = None
        self._task: Any = None
        self._t0 = 0.0
        self._s0 = 0

    def before_train(self, trainer: Trainer) -> None:
        self._t0, self._s0 = time.perf_counter(), trainer.step
        # a resumed stage keeps exactly the restored history (steps logged after the last state are redone)
        self.path.write_text("".join(json.dumps(entry) + "\n" for entry in trainer.history))
        if self.progress and trainer.step < trainer.steps:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn(f"[bold]{trainer.name}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            )
            self._bar.start()
            self._task = self._bar.add_task(trainer.name, total=trainer.steps, completed=trainer.step, info="")

    def after_step(self, trainer: Trainer) -> None:
        entry = dict(trainer.log)
        entry["time_s"] = round(time.perf_counter() - self._t0, 3)
        trainer.history.append(entry)
        with self.path.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
        if self._bar is not None and (trainer.step % self.every == 0 or trainer.step == trainer.steps):
            info = " ".join(f"{k}={v:.4g}" for k, v in entry.items() if k not in ("step", "time_s"))
            self._bar.update(self._task, completed=trainer.step, info=info[:120])

    def after_train(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.stop()


class Checkpoint(Hook):
    """Resumable state (``state.pt``: models, optimizer, step, history, torch RNG) every N steps."""

    def __init__(self, stage_dir: Path, every: int) -> None:
        self.path, self.every = stage_dir / "state.pt", every

    def after_step(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0 or trainer.step == trainer.steps:
            state = {
                "step": trainer.step,
                "models": {k: m.state_dict() for k, m in trainer.models.items()},
                "optimizer": trainer.optimizer.state_dict(),
                "history": trainer.history,
                "torch_rng": torch.get_rng_state(),
                "extras": {k: e.state_dict() for k, e in trainer.extras.items()},
            }
            tmp = self.path.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(self.path)  # atomic: a crash mid-save keeps the previous state


class Resume(Hook):
    """Restores ``state.pt`` when it exists (the stage continues where it stopped)."""

    def __init__(self, stage_dir: Path, enabled: bool) -> None:
        self.path, self.enabled = stage_dir / "state.pt", enabled

    def before_train(self, trainer: Trainer) -> None:
        if not (self.enabled and self.path.exists()):
            return
        state = torch.load(self.path, map_location=trainer.device, weights_only=False)
        for k, m in trainer.models.items():
            m.load_state_dict(state["models"][k])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.step, trainer.history = state["step"], state["history"]
        torch.set_rng_state(state["torch_rng"].cpu())
        trainer.resumed_extras = state.get("extras", {})  # the hooks that own them restore them


class LossPlot(Hook):
    """``loss.png`` in the stage directory: one panel per logged quantity against the step."""

    def __init__(self, stage_dir: Path, title: str) -> None:
        self.path, self.title = stage_dir / "loss.png", title

    def after_train(self, trainer: Trainer) -> None:
        plot_history(trainer.history, self.path, self.title)


def plot_history(history: Iterable[dict[str, float]], path: Path, title: str) -> None:
    """One panel per logged quantity against the step, three panels a row.

    The margins are fixed in inches rather than found by ``tight_layout``, which draws every panel twice
    (a stage's plot took ~1 s of a tiny run's few-second stages; about a third of it was that second draw)."""
    from matplotlib.figure import Figure

    history = list(history)
    keys = [k for k in dict.fromkeys(k for h in history for k in h) if k not in ("step", "time_s")]
    if not keys:
        return
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    width, height = 4.0 * cols, 2.6 * rows + 0.4  # 0.4 in for the title
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        pts = [(h["step"] + 1, h[key]) for h in history if key in h]
        ax.plot(*zip(*pts, strict=True), marker="." if len(pts) < 50 else None)
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title, y=1 - 0.12 / height, va="top")
    # inches: 0.55 left of a panel (tick labels), 0.5 under a row (ticks, next title), 0.75 over the first
    fig.subplots_adjust(left=0.55 / width, right=1 - 0.15 / width, bottom=0.35 / height, top=1 - 0.75 / height,
                        wspace=0.75 / (width / cols - 0.75), hspace=0.6 / (2.6 - 0.6))
    fig.savefig(path, dpi=90)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")
