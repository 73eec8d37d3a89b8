"""Committed-results files in the evidence run's format, with made-up numbers (for page and notebook tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

ROLES = ("teacher", "baseline", "student", "raw_teacher", "control")


def write_fake_results(folder, tasks=("polyp", "cardiac"), seeds=(0, 1, 2), families=("gamma", "squash"),
                       severities=(1, 2, 3), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prov = {"tasks": {}}
    for t, task in enumerate(tasks):
        rows, training = [], []
        effect = {"baseline": 0.0, "sikd": 0.03 * (1 if t == 0 else -1), "control": 0.01}
        for s in seeds:
            keys = [("clean", 0)] + [(f, v) for f in ("target", *families) for v in severities]
            for method in ("baseline", "sikd", "control"):
                for family, severity in keys:
                    dice = 0.9 - 0.05 * severity + effect[method] + rng.normal(0, 0.01)
                    hd = float(rng.uniform(2, 9)) if family in ("clean", "target") else np.nan
                    rows.append({"task": task, "seed": s, "method": method, "family": family, "severity": severity,
                                 "dice": dice, "hd95_mm": hd, "teacher_gate": "n/a", "n_cases": 4})
            base = 0.9 + rng.normal(0, 0.005)
            vals = {"baseline": base, "teacher": base - (0.05 if (t == 1 and s == 0) else 0.0) + 0.01,
                    "student": base - 0.01, "raw_teacher": base - 0.03, "control": base - 0.005}
            for role in ROLES:
                training.append({"task": task, "seed": s, "role": role, "best_epoch": 3, "best_val_dice": vals[role],
                                 "validated_on": "mean images" if role == "teacher" else "raw images", "epochs": 4,
                                 "steps": 40, "train_seconds": 1.0, "job_seconds": 5.0})
        pd.DataFrame(rows).to_csv(folder / f"{task}.csv", index=False)
        pd.DataFrame(training).to_csv(folder / f"{task}_training.csv", index=False)
        prov["tasks"][task] = {"command": "fake", "commit": "abc", "device": "none", "torch": "0", "precision": "fp32",
                               "image_size": 32, "base_channels": 4, "seeds": list(seeds), "preset": "fake",
                               "steps_per_role": {r: 40 for r in ROLES}, "wall_seconds": 10.0, "date": "today"}
    (folder / "provenance.json").write_text(json.dumps(prov))
    return folder
