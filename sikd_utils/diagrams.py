"""Explanatory drawings for the book, made by code so they stay true to the package: the SIKD pipeline
and the U-Net with and without skip connections. ``python book/figures.py`` writes them to
``book/figures/``; notebooks may call the functions directly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pipeline_figure", "unet_figure"]

_RAW, _MEAN, _TEACHER, _STUDENT, _LOSS = "#dfe9f5", "#f3e6c8", "#f6d3cf", "#d4ecd9", "#ece3f3"


def _box(ax, x, y, w, h, text, color, fontsize=8.5, **kw):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.06",
                                facecolor=color, edgecolor="0.3", lw=0.9, **kw))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, start, end, text=None, style="-|>", color="0.25", ls="-", offset=(0, 0.1), **kw):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle=style, color=color, lw=1.1, ls=ls,
                                                          shrinkA=2, shrinkB=2, **kw))
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text, ha="center",
                va="bottom", fontsize=7.5, color=color)


def _example_slice(task: str = "cardiac", image_size: int = 64):
    """A synthetic source slice, its label and its class-wise mean image (thumbnails for the pipeline)."""
    import torch

    from .averaging import class_wise_mean
    from .data.synthetic import make_cases
    from .data.tasks import get_task
    from .viz import display_image, middle_slice

    image, label = middle_slice(make_cases(task, "source", 1, image_size, seed=0)[0])
    mean = class_wise_mean(torch.from_numpy(image)[None], torch.from_numpy(label.astype(np.int64))[None],
                           get_task(task).num_classes)[0].numpy()
    return display_image(image), label, display_image(mean)


def _thumb(fig, ax, picture, x, y, size, cmap="gray", vmin=0, vmax=1):
    """Draw ``picture`` centred at data point (x, y) of ``ax``, ``size`` data units wide."""
    inset = ax.inset_axes([x - size / 2, y - size / 2, size, size], transform=ax.transData)
    inset.imshow(picture, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    inset.set_xticks([])
    inset.set_yticks([])


def pipeline_figure(task: str = "cardiac"):
    """SIKD in one picture: stage 1 trains the skip-free teacher on class-wise mean images; stage 2
    trains the student on raw images with CE + λ·MSE to the frozen teacher's last decoder features."""
    import matplotlib.pyplot as plt

    image, label, mean = _example_slice(task)
    fig, ax = plt.subplots(figsize=(10, 4.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.6)
    ax.axis("off")

    # stage 1 (top band)
    ax.text(0.05, 4.45, "Stage 1 · train the teacher", fontsize=10, fontweight="bold", va="top")
    _thumb(fig, ax, image, 0.75, 3.45, 0.9)
    ax.text(0.75, 2.85, "image x", ha="center", fontsize=8)
    _thumb(fig, ax, label, 1.95, 3.45, 0.9, cmap="viridis", vmin=0, vmax=label.max() or 1)
    ax.text(1.95, 2.85, "label y", ha="center", fontsize=8)
    _box(ax, 3.55, 3.45, 1.5, 0.75, "class-wise mean\n(per class, per image)", _MEAN)
    _arrow(ax, (1.2, 3.45), (2.8, 3.45))
    _thumb(fig, ax, mean, 5.05, 3.45, 0.9)
    ax.text(5.05, 2.85, "mean image x̄", ha="center", fontsize=8)
    _arrow(ax, (4.3, 3.45), (4.6, 3.45))
    _box(ax, 6.75, 3.45, 1.7, 0.75, "teacher T\nU-Net without skips", _TEACHER)
    _arrow(ax, (5.5, 3.45), (5.9, 3.45))
    _box(ax, 8.85, 3.45, 1.6, 0.75, "CE(T(x̄), y)\nkeep best on val.", _LOSS)
    _arrow(ax, (7.6, 3.45), (8.05, 3.45))

    ax.plot([0.05, 9.95], [2.6, 2.6], color="0.7", lw=0.8, ls=":")

    # stage 2 (bottom band)
    ax.text(0.05, 2.5, "Stage 2 · distil into the student (teacher frozen)", fontsize=10, fontweight="bold", va="top")
    _thumb(fig, ax, image, 0.75, 1.0, 0.9)
    ax.text(0.75, 0.4, "same augmented x", ha="center", fontsize=8)
    _box(ax, 3.0, 1.85, 1.6, 0.6, "class-wise mean x̄\n(of x, with label y)", _MEAN, fontsize=8)
    _box(ax, 5.1, 1.85, 1.7, 0.6, "teacher T (frozen,\neval, no grad)", _TEACHER, fontsize=8)
    _box(ax, 3.9, 0.7, 2.2, 0.7, "student S\nordinary U-Net", _STUDENT)
    _arrow(ax, (1.2, 1.25), (2.2, 1.85))
    _arrow(ax, (1.2, 0.8), (2.8, 0.7))
    _arrow(ax, (3.8, 1.85), (4.25, 1.85))
    _box(ax, 7.1, 1.85, 1.3, 0.5, "features f_t", _TEACHER, fontsize=8)
    _box(ax, 7.1, 1.05, 1.3, 0.5, "features f_s", _STUDENT, fontsize=8)
    _box(ax, 7.1, 0.3, 1.3, 0.45, "logits p_s", _STUDENT, fontsize=8)
    _arrow(ax, (5.95, 1.85), (6.45, 1.85))
    _arrow(ax, (5.0, 0.8), (6.45, 1.05))
    _arrow(ax, (5.0, 0.55), (6.45, 0.3))
    _box(ax, 9.0, 1.45, 1.6, 0.6, "λ · MSE(f_s, f_t)", _LOSS)
    _box(ax, 9.0, 0.3, 1.6, 0.45, "CE(p_s, y)", _LOSS)
    _arrow(ax, (7.75, 1.85), (8.2, 1.55))
    _arrow(ax, (7.75, 1.05), (8.2, 1.35))
    _arrow(ax, (7.75, 0.3), (8.2, 0.3))
    ax.text(9.0, 0.85, "L = CE + λ·MSE, λ = 2", ha="center", fontsize=8.5, fontweight="bold")
    ax.text(3.9, 0.1, "at test time: the student alone", ha="center", fontsize=7.5, style="italic", color="0.3")
    fig.tight_layout()
    return fig


def unet_figure(base_channels: int = 64, depth: int = 4):
    """The paper's U-Net (student, left) and the teacher (right): the same blocks, the teacher without
    the encoder→decoder skip connections, so everything passes the bottleneck."""
    import matplotlib.pyplot as plt

    widths = [base_channels * 2**i for i in range(depth + 1)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9), sharey=True)
    for ax, skips in zip(axes, (True, False)):
        ax.set_xlim(-0.5, 2 * depth + 1.5)
        ax.set_ylim(-1.2, depth + 1.1)
        ax.axis("off")
        color = _STUDENT if skips else _TEACHER
        levels = range(depth + 1)
        enc = {i: (i, depth - i) for i in levels}  # (x, y) of encoder block at level i
        dec = {i: (2 * depth - i, depth - i) for i in range(depth)}
        for i, (x, y) in enc.items():
            h = 0.75 - 0.08 * i
            _box(ax, x + 0.5, y, 0.8, h, f"{widths[i]}", color, fontsize=7.5)
            if i < depth:
                _arrow(ax, (x + 0.5, y - h / 2), (x + 1.5, y - 1 + (0.75 - 0.08 * (i + 1)) / 2),
                       text=None, color="0.45")
        for i, (x, y) in dec.items():
            h = 0.75 - 0.08 * i
            _box(ax, x + 0.5, y, 0.8, h, f"{widths[i]}", color, fontsize=7.5)
            below = enc[depth] if i == depth - 1 else dec[i + 1]
            _arrow(ax, (below[0] + 0.9, below[1] + 0.2), (x + 0.3, y - h / 2), color="0.45")
            if skips:
                _arrow(ax, (enc[i][0] + 0.9, y), (x + 0.1, y), color="tab:blue", style="-|>")
        top = dec[0]
        ax.add_patch(plt.Rectangle((top[0] + 0.05, top[1] - 0.42), 0.9, 0.84, fill=False, ec="tab:red", lw=1.6,
                                   ls="--"))
        ax.text(top[0] + 0.5, top[1] + 0.55, "last decoder block:\nfeatures f (distilled)", ha="center",
                fontsize=7.5, color="tab:red")
        ax.text(depth + 0.5, -0.65, "bottleneck (1/16 resolution)", ha="center", fontsize=7.5, color="0.3")
        if skips:
            title = "student / baseline: U-Net with skip connections"
            note = "blue: skips copy encoder features to the decoder (concatenation)"
        else:
            title = "teacher: the same U-Net without skips"
            note = "no shortcut: the decoder must rebuild shapes from the bottleneck"
        ax.set_title(title, fontsize=10)
        ax.text(depth + 0.5, -1.1, note, ha="center", fontsize=7.5, style="italic")
    fig.text(0.5, 0.01, f"numbers: channels per block at base width {base_channels} (the paper's network)",
             ha="center", fontsize=7.5, color="0.35")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
