"""Draw a preview grid of the synthetic suite: source / target (sev 1) / target (sev 2) / shape_shift.

Usage: python benchmarks/synthetic_preview.py [out.png] [case_index] [image_size]
Writes artifacts/synthetic_preview.png by default (artifacts/ is git-ignored).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb

from sikd_utils.data.synthetic import make_cases
from sikd_utils.data.tasks import TASKS

COLUMNS = (("source", 1.0), ("target", 1.0), ("target", 2.0), ("shape_shift", 1.0))


def _rgb(case):
    img = case.image
    if case.spatial_dims == 3:
        img = img[..., img.shape[-1] // 2]
    return np.repeat(img, 3, 0).transpose(1, 2, 0) if img.shape[0] == 1 else img.transpose(1, 2, 0)


def _overlay(case, task):
    rgb = _rgb(case).copy()
    lab = case.label if case.spatial_dims == 2 else case.label[..., case.label.shape[-1] // 2]
    colors = TASKS[task].colors
    for k in range(1, TASKS[task].num_classes):
        m = lab == k
        rgb[m] = 0.45 * rgb[m] + 0.55 * np.array(to_rgb(colors[k]))
    return rgb


def main(out="artifacts/synthetic_preview.png", index=0, size=128):
    tasks = list(TASKS)
    fig, axes = plt.subplots(len(tasks), 2 * len(COLUMNS), figsize=(2.0 * 2 * len(COLUMNS), 2.1 * len(tasks)))
    for r, task in enumerate(tasks):
        for c, (domain, sev) in enumerate(COLUMNS):
            case = make_cases(task, domain, n_cases=index + 1, image_size=size, seed=0, severity=sev)[index]
            axes[r, 2 * c].imshow(_rgb(case), cmap="gray", vmin=0, vmax=1)
            axes[r, 2 * c + 1].imshow(_overlay(case, task))
            axes[r, 2 * c].set_title(f"{task}\n{domain} sev {sev:g}", fontsize=7)
            axes[r, 2 * c + 1].set_title("label overlay", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0] if a else "artifacts/synthetic_preview.png", int(a[1]) if len(a) > 1 else 0, int(a[2]) if len(a) > 2 else 128)
