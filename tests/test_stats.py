"""Statistics over seeds on hand-made tables whose answers are known."""

import numpy as np
import pandas as pd
import pytest

from sikd_utils import stats


def _scores(deltas_by_key, seeds=(0, 1, 2), base=0.8, noise=(0.0, 0.01, -0.01)):
    rows = []
    for (family, severity), delta in deltas_by_key.items():
        for s, n in zip(seeds, noise):
            rows.append({"task": "polyp", "seed": s, "method": "baseline", "family": family, "severity": severity,
                         "dice": base - 0.05 * severity})
            rows.append({"task": "polyp", "seed": s, "method": "sikd", "family": family, "severity": severity,
                         "dice": base - 0.05 * severity + delta + n})
    return pd.DataFrame(rows)


def test_paired_deltas_outcomes():
    table = stats.paired_deltas(_scores({("clean", 0): 0.05, ("target", 1): -0.05, ("target", 2): 0.0}))
    by = table.set_index(["family", "severity"])
    assert by.loc[("clean", 0), "outcome"] == "gain" and by.loc[("clean", 0), "wins"] == 3
    assert by.loc[("target", 1), "outcome"] == "loss"
    assert by.loc[("target", 2), "outcome"] == "tie" and not by.loc[("target", 2), "significant"]
    assert by.loc[("clean", 0), "delta"] == pytest.approx(0.05)


@pytest.mark.parametrize("target, expected", [
    ({1: 0.05, 2: 0.06}, "reproduced"),
    ({1: 0.0, 2: 0.0}, "not reproduced"),
    ({1: 0.06, 2: -0.06}, "mixed"),
])
def test_cross_verdicts(target, expected):
    scores = _scores({("clean", 0): -0.05, **{("target", s): d for s, d in target.items()}})
    row = stats.verdicts(scores).iloc[0]
    assert row["intra_verdict"] == "not reproduced"
    assert row["cross_verdict"] == expected


def test_degradation_weights_severity_by_two_thirds_power():
    rows = []
    for seed in (0, 1):
        rows += [{"seed": seed, "method": "baseline", "family": "clean", "severity": 0, "dice": 0.9},
                 {"seed": seed, "method": "baseline", "family": "blur", "severity": 1, "dice": 0.8},
                 {"seed": seed, "method": "baseline", "family": "blur", "severity": 2, "dice": 0.5}]
    table = stats.degradation_scores(pd.DataFrame(rows))
    w1, w2 = 2 / 3, (2 / 3) ** 2
    assert table.iloc[0]["degradation"] == pytest.approx((w1 * 0.1 + w2 * 0.4) / (w1 + w2))


def test_teacher_gate_boundary():
    training = pd.DataFrame([
        {"task": "t", "seed": 0, "role": "baseline", "best_val_dice": 0.90},
        {"task": "t", "seed": 0, "role": "teacher", "best_val_dice": 0.88},      # exactly at the gate: pass
        {"task": "t", "seed": 0, "role": "raw_teacher", "best_val_dice": 0.87},  # below: fail
        {"task": "t", "seed": 1, "role": "baseline", "best_val_dice": 0.90},
        {"task": "t", "seed": 1, "role": "teacher", "best_val_dice": 0.70},
        {"task": "t", "seed": 1, "role": "raw_teacher", "best_val_dice": 0.95},
    ])
    per_seed = stats.gate_by_seed(training).set_index("seed")
    assert bool(per_seed.loc[0, "teacher_pass"]) and not bool(per_seed.loc[0, "raw_teacher_pass"])
    assert not bool(per_seed.loc[1, "teacher_pass"])
    gate = stats.teacher_gate(training).iloc[0]
    assert (gate["teacher_passes"], gate["teacher_gated"], gate["gate"]) == (1, 2, "FAIL")


def test_compare_methods_has_one_schema_for_any_methods():
    scores = _scores({("clean", 0): 0.02})
    control = scores[scores.method == "sikd"].assign(method="control", dice=lambda d: d.dice - 0.04)
    table = stats.compare_methods(pd.concat([scores, control]))
    row = table.iloc[0]
    assert row["delta"] == pytest.approx(0.02) and row["control_delta"] == pytest.approx(-0.02)
    assert {"family", "severity", "baseline", "sikd", "control", "sikd_wins", "control_wins"} <= set(table.columns)


def test_attach_keys_from_legacy_labels():
    table = stats.attach_keys(pd.DataFrame({"test_set": ["source", "target@2"]}))
    assert list(table.family) == ["clean", "target"] and list(table.severity) == [0, 2]
