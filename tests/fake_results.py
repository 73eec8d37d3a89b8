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
                                 "steps": 40, "train_seconds": 1.0, "job_seconds": 5.0,
                                 "gate": "pass" if role in ("teacher", "raw_teacher") else ""})
        pd.DataFrame(rows).to_csv(folder / f"{task}.csv", index=False)
        pd.DataFrame(training).to_csv(folder / f"{task}_training.csv", index=False)
        prov["tasks"][task] = {"command": "fake", "commit": "abc1234", "device": "none", "torch": "0", "precision": "fp32",
                               "run_key": "fake", "image_size": 32, "base_channels": 4, "seeds": list(seeds), "preset": "fake",
                               "steps_per_role": {r: 40 for r in ROLES}, "wall_seconds": 10.0, "date": "today"}
    (folder / "provenance.json").write_text(json.dumps(prov))
    return folder


# made-up effects (Dice fractions) of every ablation method over its baseline, for notebook 07's tests
ABLATION_EFFECTS = {"baseline": 0.0, "baseline_swin_unetr": -0.02, "baseline_basic_unet": 0.01, "sikd": 0.03,
                    "teacher_skips": 0.0, "lambda_0.5": 0.03, "lambda_1": 0.03, "lambda_4": 0.05, "bottleneck": 0.02,
                    "teacher_onehot": 0.03, "teacher_raw": 0.01, "logit_kd": 0.03, "attention_transfer": 0.0,
                    "swin_unetr": 0.0, "swin_unetr_lr3e-4": 0.01, "swin_unetr_projected": 0.02,
                    "basic_unet": 0.03}


def write_fake_ablations(folder, tasks=("fundus", "abdomen"), seeds=(0, 1, 2), families=("gamma", "squash"),
                         severities=(1, 2, 3), seed=0) -> Path:
    """``book/results/ablations/`` as ``python -m sikd_utils ablate`` writes it, with made-up numbers."""
    from sikd_utils import ablations as ab

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    methods = ab.methods_for(None)
    prov = {"tasks": {}}
    for task in tasks:
        rows, training = [], []
        keys = [("clean", 0)] + [(f, v) for f in ("target", *families) for v in severities]
        for s in seeds:
            for method in methods:
                for family, severity in keys:
                    dice = 0.9 - 0.05 * severity + ABLATION_EFFECTS[method] + rng.normal(0, 0.004)
                    hd = float(rng.uniform(2, 9)) if family in ("clean", "target") else np.nan
                    gate = "n/a" if method in ab.BASELINES else ("FAIL" if method == "teacher_skips" and s == 0 else "pass")
                    rows.append({"task": task, "seed": s, "method": method, "family": family, "severity": severity,
                                 "dice": dice, "hd95_mm": hd, "teacher_gate": gate, "n_cases": 4})
                for role, _ in ab.units(method):
                    training.append({"task": task, "seed": s, "method": method, "role": role, "best_epoch": 3,
                                     "best_val_dice": 0.85 + rng.normal(0, 0.01), "epochs": 4, "steps": 40,
                                     "validated_on": "mean images" if role == "teacher" else "raw images",
                                     "train_seconds": 1.0, "run_key": "fake",
                                     "gate": "" if role in ("baseline", "student", "control") else "pass"})
        pd.DataFrame(rows).to_csv(folder / f"{task}.csv", index=False)
        pd.DataFrame(training).to_csv(folder / f"{task}_training.csv", index=False)
        prov["tasks"][task] = {"command": "fake", "commit": "abc1234", "device": "none", "torch": "0", "precision": "fp32",
                               "run_key": "fake", "preset": "tiny", "image_size": 32, "base_channels": 4, "seeds": list(seeds),
                               "families": list(families), "severities": list(severities),
                               "methods": {m: {} for m in methods}, "train_seconds": 10.0, "date": "today"}
    (folder / "provenance.json").write_text(json.dumps(prov))
    return folder
