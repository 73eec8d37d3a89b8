"""Named scales for experiments: one place that says what "cpu", "class" and "gpu" mean.

Scale decides whether SIKD can work at all (the book's results page shows why): below some number of
optimiser steps the skip-free teacher has not learnt and the student, pulled toward poor features,
falls behind the baseline. So every notebook and the command line pick their settings from here by
name, and the book says which preset produced each number.

* ``cpu``   — the mechanics on a 2-core laptop in minutes; too small for SIKD to help (labelled so).
* ``class`` — a 90-minute class on a laptop: the mechanics plus the teacher gate on screen.
* ``gpu``   — the evidence scale (≥ 128 px, base ≥ 32, ≥ 900 optimiser steps per role): the settings of
  ``python -m sikd_utils reproduce --preset gpu``. 1,500 training images (200 volumes of 6–12 slices for
  the 3D tasks) in batches of 32 give ≥ 47 steps per epoch, so 20 epochs are ≥ 900 steps; the skip-free
  teachers (SIKD's and the control's) get four times as many epochs because they learn more slowly
  (``teacher_epochs`` is the lever of the teacher gate, see :mod:`sikd_utils.stats`). Why 80: with 80
  epochs the three 2D tasks' teachers pass the gate on every seed, with 40 they fall short (the results
  page's "how long must the teacher train?" table, ``scripts/teacher_scan.py``). The 3D tasks' teachers
  (``teacher_epochs_3d``) train 160: at 80 they missed the gate by a few tenths of a point, with their best
  epoch in the last few; at 160 SIKD's pass on every seed, though abdomen's raw-image teachers of the control
  still miss it (the numbers are in ``book/results/RUNLOG.md``).
* ``tiny``  — seconds per task: tests of the pipeline's plumbing only.

``n_images``/``n_volumes`` are (train, validation, clean test, shifted test) case counts for 2D/3D tasks;
``teacher_epochs_3d`` (None: ``teacher_epochs``) replaces ``teacher_epochs`` for the 3D tasks;
``seeds`` are the training seeds of an evidence run; ``severities`` those of the shift benchmark.
"""

from __future__ import annotations

__all__ = ["PRESETS", "preset_settings"]

PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=64, base_channels=8, epochs=20, teacher_epochs=None, batch_size=8,
                n_images=(32, 8, 12, 12), n_volumes=(6, 3, 6, 6), seeds=(0, 1, 2), severities=(1, 2, 3, 4, 5)),
    "class": dict(image_size=64, base_channels=8, epochs=20, teacher_epochs=40, batch_size=4,
                  n_images=(32, 8, 12, 12), n_volumes=(6, 3, 6, 6), seeds=(0, 1, 2), severities=(1, 2, 3, 4, 5)),
    "gpu": dict(image_size=128, base_channels=32, epochs=20, teacher_epochs=80, teacher_epochs_3d=160, batch_size=32,
                n_images=(1500, 100, 40, 40), n_volumes=(200, 15, 10, 10), seeds=(0, 1, 2, 3, 4),
                severities=(1, 2, 3, 4, 5)),
    "tiny": dict(image_size=32, base_channels=4, epochs=1, teacher_epochs=None, batch_size=4,
                 n_images=(6, 2, 2, 2), n_volumes=(2, 1, 1, 1), seeds=(0, 1), severities=(1, 5)),
}


def preset_settings(name: str) -> dict:
    """A copy of preset ``name``'s settings (image size, width, epochs, batch, case counts)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return dict(PRESETS[name])
