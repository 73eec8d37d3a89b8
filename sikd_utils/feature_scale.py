"""How large each backbone's last-decoder features can get, and how large its skip-free teacher's do get.

SIKD's term (:func:`sikd_utils.distill.feature_mse`) asks the student to reproduce its teacher's features,
magnitudes included, so it can reach zero only where the student's last decoder block can produce features as
large as the teacher's. Our U-Net ends both roles in BatchNorm (affine) + ReLU and MONAI's BasicUNet both in an
affine instance norm + LeakyReLU: the same form, free to scale alike. MONAI's SwinUNETR ends in a residual
block, ``LeakyReLU(norm2(conv2(·)) + residual)``, whose norms have no affine weights. The student's block
narrows (upsampled features concatenated with the skip), so its residual is a 1×1 convolution followed by such a
norm: both summands have, per image and channel, mean 0 and mean square 1, and the student's features a mean
square of at most :data:`SWIN_STUDENT_BOUND` (LeakyReLU only shrinks). The skip-free teacher's block keeps its
width, so MONAI adds no projection and its residual is the transposed convolution's output, unnormalised:
nothing bounds its scale (see :class:`sikd_utils.monai_backbones.SwinUNETR2D`).

:func:`probe` measures this while each backbone's teacher trains; ``scripts/feature_scale_probe.py`` writes the
committed probe that notebook 07 reads (:data:`PROBE_FILE`). :func:`student_losses` reads what the GPU runs'
students' training losses did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

__all__ = ["SWIN_STUDENT_BOUND", "PROBE_FILE", "PROBE_COLUMNS", "channel_mean_square", "probe", "write_probe",
           "read_probe", "probe_figure", "probe_sentences", "student_losses", "student_loss_sentences"]

#: the largest mean square, per image and channel, of a SwinUNETR student's last-decoder features:
#: ``(a + b)²`` averaged over pixels, ``a`` and ``b`` each standardised (mean 0, mean square 1), is ``2 + 2ρ ≤ 4``
SWIN_STUDENT_BOUND = 4.0
#: the committed probe, in ``book/results/ablations/`` (``#`` lines: its provenance)
PROBE_FILE = "feature_scale_probe.csv"
#: one row per (backbone, role, epoch measured); ``largest_channel`` is the largest (image, channel) mean square
PROBE_COLUMNS = ["backbone", "role", "epoch", "val_dice", "mean_square", "largest_channel"]


def channel_mean_square(features: torch.Tensor) -> torch.Tensor:
    """``(B, C)``: each image's and channel's mean over pixels of the squared features (``features``: ``(B, C, …)``)."""
    if features.ndim < 3:
        raise ValueError(f"features must be (batch, channels, *spatial), got shape {tuple(features.shape)}")
    return features.detach().float().pow(2).flatten(2).mean(-1)


def _measure(model, inputs: torch.Tensor) -> tuple[float, float]:
    """Mean and largest channel mean square of ``model``'s last-decoder features, in the model's current mode
    (an untrained network in train mode: eval-mode BatchNorm with untrained running statistics means nothing)."""
    with torch.no_grad():
        _, features = model(inputs)
    per = channel_mean_square(features)
    return float(per.mean()), float(per.max())


def _fixed_batch(splits, image_size: int, count: int = 16):
    """``count`` validation slices spread over the set, the same at every measurement."""
    from .data.slices import SliceDataset

    val = SliceDataset(splits.val, image_size, augment=False, foreground_only=True)
    picks = np.linspace(0, len(val) - 1, min(count, len(val))).round().astype(int)
    items = [val[int(i)] for i in picks]
    return torch.stack([i["image"] for i in items]), torch.stack([i["label"] for i in items])


def probe(task: str = "abdomen", backbones: Sequence[str] = ("unet", "basic_unet", "swin_unetr"), epochs: int = 60,
          every: int = 5, preset: str = "cpu", seed: int = 0, out_dir: str = "runs/feature-scale", device: str = "cpu",
          log=print) -> pd.DataFrame:
    """Train each backbone's skip-free teacher at ``preset`` for ``epochs`` and measure its last-decoder features
    on fixed validation slices at initialisation and every ``every`` epochs (read from the run's ``last.pt``):
    :data:`PROBE_COLUMNS`, ``role`` "teacher" (the column leaves room for other roles). SwinUNETR runs at the ablations' width and with its
    teacher's rate (:data:`~sikd_utils.ablations.SWIN_WIDTH`, ``SWIN_TEACHER_LR``), the others at the preset's."""
    from .ablations import SWIN_TEACHER_LR, SWIN_WIDTH
    from .averaging import class_wise_mean
    from .configuration import preset_config, synthetic_splits
    from .orchestration import train_roles
    from .train import LAST, load_model

    if epochs < 1 or every < 1:
        raise ValueError(f"epochs and every must be at least 1, got epochs={epochs}, every={every}")
    rows = []
    for backbone in backbones:
        swin = {"base_channels": SWIN_WIDTH, "teacher_lr": SWIN_TEACHER_LR} if backbone == "swin_unetr" else {}
        config = preset_config(preset, task, backbone=backbone, epochs=epochs, teacher_epochs=epochs, out_dir=out_dir,
                               device=device, **swin)
        splits = synthetic_splits(config)
        images, labels = _fixed_batch(splits, config.image_size)
        teacher = config.build_model("teacher", seed)
        teacher_input = class_wise_mean(images, labels, teacher.num_classes)
        rows.append({"backbone": backbone, "role": "teacher", "epoch": 0, "val_dice": np.nan,
                     **dict(zip(("mean_square", "largest_channel"), _measure(teacher.train(), teacher_input)))})
        folder = config.run_root(splits.tag) / f"seed{seed}" / "teacher"

        def measure(record, backbone=backbone, folder=folder, inputs=teacher_input):
            if record["epoch"] % every == 0 or record["epoch"] == epochs:
                mean, largest = _measure(load_model(folder / LAST).eval(), inputs)
                rows.append({"backbone": backbone, "role": "teacher", "epoch": record["epoch"],
                             "val_dice": record["val_dice"], "mean_square": mean, "largest_channel": largest})

        log(f"{backbone}: training its skip-free teacher for {epochs} epochs ({preset} preset, {task})")
        train_roles(config, splits, ["teacher"], seed, callbacks=(measure,))
        if not any(r["backbone"] == backbone and r["epoch"] > 0 for r in rows):
            raise RuntimeError(f"{backbone}: its teacher was reused from {folder}, so nothing was measured; "
                               "remove that folder or use another out_dir")
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


def write_probe(frame: pd.DataFrame, path, provenance: dict) -> Path:
    """The probe as CSV, its provenance as ``# key: value`` lines first."""
    from .reproduce import _write_atomic

    path = Path(path)
    head = "".join(f"# {k}: {v}\n" for k, v in provenance.items())
    _write_atomic(path, lambda tmp: Path(tmp).write_text(head + frame.to_csv(index=False)))
    return path


def read_probe(path) -> tuple[pd.DataFrame, dict]:
    """``(probe, provenance)`` from :func:`write_probe`'s file; a missing file gives an empty frame."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=PROBE_COLUMNS), {}
    lines = path.read_text().splitlines()
    prov = dict(line[2:].split(": ", 1) for line in lines if line.startswith("# "))
    frame = pd.read_csv(path, comment="#")
    if list(frame.columns) != PROBE_COLUMNS:
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected {PROBE_COLUMNS}")
    return frame, prov


def probe_figure(frame: pd.DataFrame):
    """One panel per backbone: the teacher's last-decoder mean square (all channels, and its largest channel)
    against epoch, and SwinUNETR's student bound."""
    import matplotlib.pyplot as plt

    backbones = list(dict.fromkeys(frame["backbone"]))
    # the book's column is 7 inches wide (viz.FIGURE_WIDTH): narrower panels, one legend under them all
    fig, axes = plt.subplots(1, len(backbones), figsize=(min(3.6 * len(backbones), 7.0), 3.3), squeeze=False)
    for ax, backbone in zip(axes[0], backbones):
        rows = frame[frame["backbone"] == backbone]
        teacher = rows[rows["role"] == "teacher"]
        ax.plot(teacher["epoch"], teacher["mean_square"], marker=".", label="teacher, mean over channels")
        ax.plot(teacher["epoch"], teacher["largest_channel"], marker=".", linestyle="--", label="teacher, largest channel")
        if backbone == "swin_unetr":
            ax.axhline(SWIN_STUDENT_BOUND, color="tab:red", linewidth=1, label="student's bound")
        ax.set_title(backbone, fontsize="medium")
        ax.set_xlabel("teacher epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("feature mean square")
    labels = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(label, handle)
    fig.legend(labels.values(), labels.keys(), loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def probe_sentences(frame: pd.DataFrame) -> list[str]:
    """Per backbone: how the teacher's feature scale went from initialisation to its last epoch (for SwinUNETR,
    against the bound no student can pass)."""
    lines = []
    for backbone, rows in frame.groupby("backbone", sort=False):
        teacher = rows[rows["role"] == "teacher"].sort_values("epoch")
        if teacher.empty:
            continue
        first, last = teacher.iloc[0], teacher.iloc[-1]
        line = (f"{backbone}: the teacher's last-decoder features had a mean square of {first['mean_square']:.2f} at "
                f"initialisation and {last['mean_square']:.2f} after {int(last['epoch'])} epochs (largest channel "
                f"{last['largest_channel']:.2f}, validation Dice {last['val_dice']:.2f})")
        if backbone == "swin_unetr":
            over = teacher.loc[teacher["largest_channel"] > SWIN_STUDENT_BOUND, "epoch"]
            line += (f"; no SwinUNETR student can exceed {SWIN_STUDENT_BOUND:g} in any channel, and the teacher's "
                     + (f"largest channel passed it at epoch {int(over.iloc[0])}" if len(over) else "never passed it"))
        lines.append(line + ".")
    return lines


def student_losses(histories: pd.DataFrame) -> pd.DataFrame:
    """Per (task, method) with students in ``histories`` (:func:`sikd_utils.why.read_histories`): the students'
    training loss at their first and last epoch over seeds, and the distillation share of the last where the
    files keep the loss's parts (``ce``, ``mse``)."""
    students = histories[histories["role"] == "student"].sort_values("epoch", kind="stable")
    rows = []
    for (task, method), h in students.groupby(["task", "method"], sort=False):
        parts = [c for c in ("loss", "ce", "mse") if c in h.columns]
        ends = h.groupby("seed")[parts].agg(["first", "last"])  # one row per seed: its first and last epoch
        first, last = ends["loss"]["first"], ends["loss"]["last"]
        share = np.nan
        if "ce" in parts and ends["ce"]["last"].notna().all():
            share = float(((last - ends["ce"]["last"]) / last).mean())
        rows.append({"task": task, "method": method, "seeds": len(ends),
                     "first loss (min)": first.min(), "first loss (max)": first.max(),
                     "last loss (min)": last.min(), "last loss (max)": last.max(),
                     "fall": float((1 - last / first).mean()), "distillation share": share})
    return pd.DataFrame(rows)


def student_loss_sentences(losses: pd.DataFrame) -> list[str]:
    """One sentence per row of :func:`student_losses`."""
    lines = []
    for r in losses.to_dict("records"):
        seeds = f"{r['seeds']} seed{'s' if r['seeds'] != 1 else ''}"
        line = (f"{r['task']}, `{r['method']}` students ({seeds}): training loss "
                f"{_span(r['first loss (min)'], r['first loss (max)'])} at their first epoch and "
                f"{_span(r['last loss (min)'], r['last loss (max)'])} at their last, {100 * r['fall']:.0f} % lower")
        if not np.isnan(r["distillation share"]):
            line += f"; λ·MSE was {100 * r['distillation share']:.0f} % of the last"
        lines.append(line + ".")
    return lines


def _span(low: float, high: float) -> str:
    return f"{low:.2f}" if np.isclose(low, high, rtol=0.005) else f"{low:.2f}–{high:.2f}"
