"""Notebook 07's tables and sentences: the conclusion rule on numbers whose answer is known."""

import pandas as pd
import pytest

from fake_results import ABLATION_EFFECTS, write_fake_ablations
from sikd_utils import ablations as ab
from sikd_utils import why

SEEDS = (0, 1, 2)


def _scores(diffs: dict) -> pd.DataFrame:
    """fundus scores where ``method`` − ``sikd`` is ``diffs[method]`` (per seed) on every test set."""
    rows = []
    for s in SEEDS:
        for method in ("baseline", "sikd", *diffs):
            for family, severity in (("clean", 0), ("target", 1), ("target", 2), ("gamma", 1)):
                base = 0.8 - 0.01 * s
                dice = base + (0.0 if method == "baseline" else 0.02) + (diffs[method][s] if method in diffs else 0.0)
                rows.append({"task": "fundus", "seed": s, "method": method, "family": family, "severity": severity,
                             "dice": dice, "teacher_gate": "n/a" if method == "baseline" else "pass"})
    return pd.DataFrame(rows)


def test_the_rule_finds_gain_loss_and_tie():
    scores = _scores({"lambda_4": (0.04, 0.05, 0.06), "bottleneck": (-0.05, -0.04, -0.06),
                      "logit_kd": (0.02, -0.02, 0.0)})
    table = why.comparisons(scores)
    versus_sikd = table[table["against"] == "reference"].groupby("variant")["outcome"].apply(why.overall_outcome)
    assert versus_sikd.to_dict() == {"lambda_4": "better", "bottleneck": "worse", "logit_kd": "tie"}
    lam = table[(table.variant == "lambda_4") & (table.against == "reference") & (table.summary == "clean")].iloc[0]
    assert lam["delta"] == pytest.approx(5.0) and lam["wins"] == 3  # Dice points
    lines = why.conclusions(table, scores)
    by_question = {q: next(line for line in lines if text in line) for q, text in ab.QUESTIONS.items()}
    assert ab.VARIANTS["lambda_4"].answers["better"] in by_question["lambda"]
    assert ab.VARIANTS["bottleneck"].answers["worse"] in by_question["layer"]
    assert ab.VARIANTS["logit_kd"].answers["tie"] in by_question["method"]
    assert "`lambda_0.5` pending" in by_question["lambda"] and "`teacher_skips` pending" in by_question["skips"]
    assert "+5.0 ± " in by_question["lambda"]
    assert ab.VARIANTS["sikd"].answers["better"] in by_question["reference"]  # SIKD vs baseline: +2 on every seed


def test_mixed_and_overall_outcomes():
    assert why.overall_outcome(["gain", "loss", "tie"]) == "mixed"
    assert why.overall_outcome(["tie", "tie"]) == "tie"
    assert why.overall_outcome(["gain", "tie"]) == "better" and why.overall_outcome(["loss"]) == "worse"


def test_tables_from_fake_results(tmp_path):
    scores, training, prov = why.load_results(write_fake_ablations(tmp_path))
    table = why.comparisons(scores)
    wide = why.comparison_table(table)
    assert len(wide) == 2 * len(ab.VARIANTS)
    assert (wide.loc[wide.variant == "swin_unetr", "vs SIKD: outcome"] == "—").all()  # backbones: baseline only
    fingerprint = why.fingerprints(scores)
    assert set(fingerprint["method"]) == set(ab.VARIANTS)
    row = fingerprint[(fingerprint.method == "swin_unetr") & (fingerprint.family == "clean")].iloc[0]
    expected = ABLATION_EFFECTS["swin_unetr"] - ABLATION_EFFECTS["baseline_swin_unetr"]
    assert row["delta"] == pytest.approx(expected, abs=0.02)
    lines = why.conclusions(table, scores)
    assert len(lines) == len(ab.QUESTIONS) * 2 and not any("pending" in line for line in lines)
    assert any("failed the gate on 1/3 seeds" in line for line in lines)
    assert len(why.teacher_table(training)) == 2 * len(ab.VARIANTS)
    assert set(why.registry_table()["variant"]) == set(ab.VARIANTS)
    assert why.provenance_table(prov, ["fundus"])[["task", "command", "seeds"]].values.tolist() == [["fundus", "fake", 3]]


def test_the_pending_note_names_the_command_and_what_is_missing():
    assert why.COMMAND in why.pending() and why.pending().startswith("**Pending.**")
    assert f"{why.COMMAND} --out-dir /scratch/runs" in why.pending("/scratch/runs")
    partial = why.pending(tasks=["cardiac"])
    assert "for cardiac yet" in partial and "nothing is shown for them" in partial


def test_every_variant_changes_one_ingredient_of_sikd():
    table = why.ingredients()
    assert list(table.index) == list(ab.VARIANTS)
    changed = (table != table.loc["sikd"]).sum(axis=1)
    assert changed["sikd"] == 0 and (changed.drop("sikd") == 1).all(), changed.to_dict()
    assert table.loc["teacher_raw", "teacher sees"] == "raw image"
    assert table.loc["lambda_0.5", "λ"] == "0.5"
    fig = why.ingredient_figure()
    assert fig.axes[0].images[0].get_array().sum() == len(ab.VARIANTS) - 1  # one shaded cell per variant


def test_the_evidence_control_answers_the_teacher_input_question():
    rows = []
    for s in SEEDS:
        for method, dice in (("baseline", 0.80), ("sikd", 0.82), ("control", 0.77)):
            for family, severity in (("clean", 0), ("target", 1), ("gamma", 2)):
                rows.append({"task": "fundus", "seed": s, "method": method, "family": family, "severity": severity,
                             "dice": dice - 0.01 * s, "teacher_gate": "n/a" if method == "baseline" else "pass"})
    scores = why.from_evidence(pd.DataFrame(rows))
    assert set(scores["method"]) == {"baseline", "sikd", "teacher_raw"}
    table = why.comparisons(scores)
    raw = table[(table.variant == "teacher_raw") & (table.against == "reference")]
    assert list(raw["outcome"]) == ["loss"] * 3 and raw["delta"].tolist() == pytest.approx([-5.0] * 3)
    lines = why.conclusions(table, scores, questions=why.EVIDENCE_QUESTIONS, notes={"fundus": "(a note)"})
    assert len(lines) == len(why.EVIDENCE_QUESTIONS)
    assert ab.VARIANTS["teacher_raw"].answers["worse"] in lines[1] and "`teacher_onehot` pending" in lines[1]
    assert all(line.endswith("(a note).") for line in lines)
