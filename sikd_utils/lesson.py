"""What notebooks 03–05 share: a named preset turned into one experiment, models trained or reloaded
with a printed line saying which, and sentences about a run computed from its numbers.

A notebook states what a run shows only through these functions, so no sentence can contradict the
output under it (a CPU run that has not learned says so instead of promising that it "should").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from .configuration import preset_config
from .experiment import ExperimentConfig, Splits, train_roles
from .stats import GATE_MARGIN

__all__ = ["GATE_MARGIN", "lesson_config", "train_or_reload", "teacher_gate", "demo_note", "scale_note", "compare_sentence",
           "learning_sentence"]


def lesson_config(preset: str, task: str = "cardiac", seed: int = 0, device: str = "auto",
                  output_dir: str | None = "runs", **overrides) -> ExperimentConfig:
    """The experiment of preset ``preset`` for one task and seed; ``overrides`` replace single settings.

    Case counts come from the preset (volumes for 3D tasks, images for 2D ones), so a notebook never
    needs placeholder values for test sets it does not use.
    """
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"overrides {unknown} are not experiment settings; expected some of {sorted(known)}")
    return preset_config(preset, task, seeds=(int(seed),), device=device, out_dir=output_dir, **overrides)


def _finished_epochs(folder: Path) -> int:
    import torch

    last = folder / "last.pt"
    if not last.exists():
        return 0
    return int(torch.load(last, map_location="cpu", weights_only=True)["epoch"])


def train_or_reload(config: ExperimentConfig, splits: Splits, roles: Sequence[str], seed: int) -> dict:
    """:func:`~sikd_utils.orchestration.train_roles`, printing for each role whether it was trained now,
    resumed, or reloaded from an earlier run (and from which folder)."""
    root = config.run_root(splits.tag)
    before = {}
    if root is not None:
        before = {role: _finished_epochs(root / f"seed{seed}" / role) for role in roles}
    results = train_roles(config, splits, roles, seed)
    for role in roles:
        wanted = config.train_config(role, seed).epochs
        done = before.get(role, 0)
        if root is None:
            print(f"{role}: trained now ({wanted} epochs, not saved)")
        elif done >= wanted:
            print(f"{role}: reloaded from {root / f'seed{seed}' / role} (trained earlier with these settings)")
        elif done:
            print(f"{role}: resumed at epoch {done + 1} of {wanted}; saved in {root / f'seed{seed}' / role}")
        else:
            print(f"{role}: trained now ({wanted} epochs); saved in {root / f'seed{seed}' / role}")
    return results


def teacher_gate(teacher_dice: float, baseline_dice: float, margin: float = GATE_MARGIN,
                 preset: str | None = None) -> tuple[bool, str]:
    """Whether the teacher has learned enough to be distilled from, and a sentence saying so.

    With ``preset`` given and not ``"gpu"``, a failure also says it is the expected outcome of a demo, so
    a reader of a CPU run does not take it for a bug.
    """
    passed = teacher_dice >= baseline_dice - margin
    verdict = "passes" if passed else "fails"
    text = (f"**Teacher gate {verdict}:** teacher validation Dice on mean images {teacher_dice:.3f} vs baseline "
            f"validation Dice on raw images {baseline_dice:.3f} (gate: at least the baseline − {margin:g}).")
    if not passed:
        text += (" The teacher has not learned its easy task as well as the baseline learned the hard one, so"
                 " the student is pulled towards poor features: expect it to fall behind the baseline here.")
        if preset is not None and preset != "gpu":
            text += " " + demo_note(preset)
    return passed, text


def demo_note(preset: str) -> str:
    """Why a failure of a demo run is expected: the sentence appended where a CPU run falls short."""
    return (f"*This is expected at preset `{preset}`, not an error:* a demo trains each network for a few epochs "
            "on small images, long enough to show the mechanics, too short for a skip-free teacher (which "
            "learns more slowly than a U-Net) or for small classes. The evidence run (preset `gpu`) checks its "
            "teachers by the same gate; notebook 06 shows how many pass.")


def scale_note(preset: str, steps: int) -> str:
    """A Markdown line saying what a run at this preset, ``steps`` optimiser steps per model, can show."""
    if preset == "gpu":
        return (f"**Evidence scale** (preset `gpu`, {steps} optimiser steps per model): the scale at which "
                "the book's results were measured.")
    return (f"**Mechanics demo** (preset `{preset}`, {steps} optimiser steps per model): enough to see every "
            "piece work, far too few for SIKD to help — the evidence needs ≥ 900 steps at ≥ 128 px on a GPU "
            "(results page).")


def compare_sentence(student: float, baseline: float, what: str, noise: float = 0.02) -> str:
    """“The student is 0.076 below the baseline …”, with the size judged by ``noise``, not by a word."""
    gap = student - baseline
    if abs(gap) < noise:
        size = f"within {noise:g} of it, which one seed cannot tell from noise"
    else:
        size = f"{abs(gap):.3f} {'above' if gap > 0 else 'below'} it"
    return f"The student's {what} is {student:.3f}, the baseline's {baseline:.3f}: {size}."


def learning_sentence(history: Sequence[dict], what: str, key: str = "val_dice", still_rising: float = 0.01) -> str:
    """Where a training curve went — first value, best value, and whether it was still rising at the end."""
    import math

    points = [(r["epoch"], r[key]) for r in history if key in r and not math.isnan(r[key])]
    if not points:
        return f"No {what} was recorded."
    (first_epoch, first), (best_epoch, best) = points[0], max(points, key=lambda p: p[1])
    text = f"The {what} went from {first:.2f} after epoch {first_epoch} to a best of {best:.2f} (epoch {best_epoch})"
    tail = [v for _, v in points[-4:]]
    if len(points) < 2:
        return text + "."
    if tail[-1] - tail[0] > still_rising:
        return (text + f", and was still rising at the end (+{tail[-1] - tail[0]:.2f} over the last "
                f"{len(tail) - 1} epochs): it had not finished learning.")
    return text + f", and had levelled off by the end (change over the last {len(tail) - 1} epochs: {tail[-1] - tail[0]:+.2f})."
