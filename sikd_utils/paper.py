"""The paper's published numbers, quoted so the book can set our results beside them.

Source: Dong, Du & Xu, Frontiers of Computer Science 19(9):199705 (2025), Fig. 1 — Dice (%) averaged
over five baselines (U-Net, TransUNet, Swin-Unet, MaxStyle, SAMed) with and without SIKD. The deltas
are printed on the figure; absolute values are read off the plot (about ±0.3).
"""

from __future__ import annotations

__all__ = ["FIG1", "fig1_table", "CITATION", "BIBTEX"]

# task key -> (intra baseline, intra + SIKD, intra delta, cross baseline, cross + SIKD, cross delta)
FIG1 = {
    "cardiac": (88.3, 89.35, 1.02, 68.5, 78.4, 9.89),
    "abdomen": (77.15, 79.05, 1.91, 57.2, 62.2, 5.03),
    "fundus": (94.85, 95.9, 1.10, 62.7, 75.7, 13.10),
    "polyp": (88.7, 90.05, 1.36, 70.2, 73.7, 3.57),
    "breast_us": (65.9, 71.35, 5.50, 59.9, 68.5, 8.65),
}

CITATION = ("W. Dong, B. Du, Y. Xu. Shape-intensity knowledge distillation for robust medical image "
            "segmentation. Frontiers of Computer Science 19(9):199705, 2025. doi:10.1007/s11704-024-40462-2")

#: the paper's entry of ``book/references.bib``, which is the source; copied here so that a notebook on Colab,
#: without the book's folder, can print it. tests/test_book_config.py fails while the two differ.
BIBTEX = """@article{dong2025sikd,
  author  = {Dong, Wenhui and Du, Bo and Xu, Yongchao},
  title   = {Shape-intensity knowledge distillation for robust medical image segmentation},
  journal = {Frontiers of Computer Science},
  year    = {2025},
  volume  = {19},
  number  = {9},
  pages   = {199705},
  doi     = {10.1007/s11704-024-40462-2}
}"""


def fig1_table():
    """Fig. 1 as a DataFrame (Dice in %), one row per task."""
    import pandas as pd

    from .data.tasks import TASKS

    rows = []
    for key, (ib, isikd, idelta, cb, csikd, cdelta) in FIG1.items():
        rows.append({"task": key, "title": TASKS[key].title, "intra_baseline": ib, "intra_sikd": isikd,
                     "intra_delta": idelta, "cross_baseline": cb, "cross_sikd": csikd, "cross_delta": cdelta})
    return pd.DataFrame(rows)
