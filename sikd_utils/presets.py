"""Named scales for experiments: one place that says what "cpu", "class" and "gpu" mean.

Scale decides whether SIKD can work at all (the book's results page shows why): below some number of
optimiser steps the skip-free teacher has not learnt and the student, pulled toward poor features,
falls behind the baseline. So every notebook and the command line pick their settings from here by
name, and the book says which preset produced each number.

* ``cpu``   — the mechanics on a 2-core laptop in minutes; too small for SIKD to help (labelled so).
* ``class`` — a 90-minute class on a laptop: the mechanics plus the teacher gate on screen.
* ``gpu``   — the evidence scale (≥ 128 px, base ≥ 32, ≥ 900 optimiser steps per role).
"""

from __future__ import annotations

__all__ = ["PRESETS", "preset_settings"]

PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=64, base_channels=8, epochs=20, teacher_epochs=None, batch_size=8,
                n_images=(32, 8, 12, 12), n_volumes=(6, 3, 6, 6)),
    "class": dict(image_size=64, base_channels=8, epochs=20, teacher_epochs=40, batch_size=4,
                  n_images=(32, 8, 12, 12), n_volumes=(6, 3, 6, 6)),
    "gpu": dict(image_size=128, base_channels=32, epochs=20, teacher_epochs=40, batch_size=32,
                n_images=(1500, 100, 40, 40), n_volumes=(200, 15, 10, 10)),
}


def preset_settings(name: str) -> dict:
    """A copy of preset ``name``'s settings (image size, width, epochs, batch, case counts)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return dict(PRESETS[name])
