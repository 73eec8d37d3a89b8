"""The paper's published numbers, quoted so the book can set our results beside them.

Source: Dong, Du & Xu, Frontiers of Computer Science 19(9):199705 (2025), Fig. 1 — Dice (%) averaged
over five baselines (U-Net, TransUNet, Swin-Unet, MaxStyle, SAMed) with and without SIKD. The deltas
are printed on the figure; absolute values are read off the plot (about ±0.3).
"""

from __future__ import annotations

__all__ = ["FIG1", "fig1_table", "CITATION", "BIBTEX", "RECIPE", "differences"]

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


#: the paper's setting, from its text and the official ACDC code (what the book's runs are compared with)
RECIPE = {
    "data": "real datasets: ACDC, Synapse, REFUGE, Kvasir-SEG, BUSI (sources)",
    "cross_domain": "a second real dataset per task (e.g. M&Ms, CVC-ClinicDB, UDIAT)",
    "backbones": "five: U-Net, TransUNet, Swin-Unet, MaxStyle, SAMed (Fig. 1 averages them)",
    "image_size": 256,
    "base_channels": 64,
    "epochs": 200,
    "teacher_epochs": "not stated apart from the student's 200",
    "batch_size": 20,
    "schedule": "Adam 1e-3, x0.5 at epochs 60/100/150/180",
    "seeds": "one (seed 20)",
    "test_sets": "ACDC: 15 patients (30 volumes); Synapse: 12 volumes; Kvasir-SEG: 120 images; others not stated",
    "metrics": "Dice per 3D case and class; HD95 in voxels (official script)",
}


def differences(preset: str = "gpu") -> "pd.DataFrame":  # noqa: F821
    """Every difference between the paper's setting (:data:`RECIPE`) and this book's ``preset``, one row each,
    with the book's side read from :mod:`sikd_utils.presets` (so the table cannot drift from the code)."""
    import pandas as pd

    from .presets import preset_settings
    from .train_config import TrainConfig

    p = preset_settings(preset)
    images, volumes = p["n_images"], p["n_volumes"]
    teacher_3d = p.get("teacher_epochs_3d") or p["teacher_epochs"] or p["epochs"]
    milestones = TrainConfig(epochs=p["epochs"]).scaled_milestones()  # the schedule train() runs
    rows = [
        ("Data", RECIPE["data"], "synthetic phantoms of the same five tasks (sikd_utils.data.synthetic)"),
        ("Cross-domain test", RECIPE["cross_domain"],
         f"the synthetic realistic target at severities {', '.join(map(str, p['severities']))}, and every shift family"),
        ("Networks", RECIPE["backbones"], "U-Net only (BasicUNet and SwinUNETR in the ablations)"),
        ("Image size", f"{RECIPE['image_size']} px", f"{p['image_size']} px"),
        ("U-Net width (first layer)", f"{RECIPE['base_channels']} channels", f"{p['base_channels']} channels"),
        ("Epochs (student, baseline)", str(RECIPE["epochs"]), str(p["epochs"])),
        ("Epochs (teacher)", RECIPE["teacher_epochs"],
         f"{p['teacher_epochs'] or p['epochs']} (2D tasks), {teacher_3d} (3D tasks)"),
        ("Batch size", str(RECIPE["batch_size"]), str(p["batch_size"])),
        ("Learning-rate schedule", RECIPE["schedule"],
         f"Adam 1e-3, x0.5 at epochs {'/'.join(map(str, milestones))} (the same milestones scaled to "
         f"{p['epochs']} epochs)"),
        ("Training cases", "the datasets' training splits",
         f"{images[0]} images (2D tasks), {volumes[0]} volumes (3D tasks)"),
        ("Test set size", RECIPE["test_sets"],
         f"{images[2]} images (2D tasks), {volumes[2]} volumes (3D tasks), the same for every seed"),
        ("Seeds", RECIPE["seeds"], f"{len(p['seeds'])}, with 95 % confidence intervals of paired differences"),
        ("Metrics", RECIPE["metrics"], "Dice per case and class; HD95 in millimetres (and voxels)"),
    ]
    return pd.DataFrame(rows, columns=["What", "Paper", f"This book ({preset} preset)"])
