"""Pictures and tables of the synthetic suite's difficulty levels (notebook 01 and the data page).

Kept apart from :mod:`sikd_utils.viz` (already long); it uses viz's image helpers and only reads the
data layer, so data flows one way.
"""

from __future__ import annotations

import textwrap
from typing import Sequence

from .data.synthetic import DIFFICULTY_LEVELS, difficulty_rows, make_cases
from .data.tasks import TASKS, get_task
from .viz import _axes_grid, busiest_slice, display_image, middle_slice

__all__ = ["difficulty_gallery", "difficulty_table"]


def difficulty_gallery(tasks: Sequence[str] | None = None, levels: Sequence[int] = DIFFICULTY_LEVELS,
                       image_size: int = 96, case_index: int = 0, seed: int = 0):
    """One source case per task (rows) at every difficulty level (columns), its label outlined.

    The same patient in every column (the levels add to it), so what each level adds is what changes
    along a row; a 3D task shows the slice that holds most foreground at level 0.
    """
    names = [get_task(t).key for t in (tasks if tasks is not None else TASKS)]
    fig, axes = _axes_grid(len(names), len(levels), size=1.7)
    for row, task in zip(axes, names):
        cases = [make_cases(task, "source", case_index + 1, image_size, seed=seed, difficulty=level)[case_index]
                 for level in levels]
        index = None if cases[0].spatial_dims == 2 else busiest_slice(cases[0])
        for ax, case in zip(row, cases):
            image, label = middle_slice(case, index)
            ax.imshow(display_image(image), cmap="gray", vmin=0, vmax=1)
            if label.any():
                ax.contour(label, levels=[k + 0.5 for k in range(int(label.max()))], colors=["#ffcc00"],
                           linewidths=0.5)
        row[0].set_ylabel(textwrap.fill(TASKS[task].title, 18), fontsize=7)
    for ax, level in zip(axes[0], levels):
        ax.set_title(f"level {level}" + (" (original)" if level == 0 else ""), fontsize=8)
    fig.suptitle("The synthetic suite by difficulty (source domain, label outlined)", fontsize=9)
    fig.tight_layout()
    return fig


def difficulty_table(tasks: Sequence[str] | None = None):
    """Every task's hardenings: what the top level shows and the clinical or physical reason (a DataFrame)."""
    import pandas as pd

    names = [get_task(t).key for t in (tasks if tasks is not None else TASKS)]
    return pd.DataFrame([row for task in names for row in difficulty_rows(task)])
