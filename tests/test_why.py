"""Notebook 07's tables and sentences: the conclusion rule on numbers whose answer is known."""

import numpy as np
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


def test_a_verdict_carried_by_some_summaries_names_them():
    """Better on the realistic target only (clean and the other shifts ties) is said as such; a verdict on every
    summary names none."""
    scores = _scores({"lambda_4": (0.04, 0.05, 0.06), "bottleneck": (0.04, 0.05, 0.06)})
    tie = {0: 0.02, 1: -0.02, 2: 0.0}
    off_target = (scores.method == "lambda_4") & (scores.family != "target")
    scores.loc[off_target, "dice"] -= scores.loc[off_target, "seed"].map(lambda s: 0.05 - tie[s] + 0.01 * (s - 1))
    lines = why.conclusions(why.comparisons(scores), scores)
    lam = next(line for line in lines if ab.QUESTIONS["lambda"] in line)
    assert f"{ab.VARIANTS['lambda_4'].answers['better']} (on target (mean) only; `lambda_4` − `sikd`" in lam
    layer = next(line for line in lines if ab.QUESTIONS["layer"] in line)
    assert f"{ab.VARIANTS['bottleneck'].answers['better']} (`bottleneck`" in layer and " only" not in layer


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
    assert any("failed the gate on 1/3 seeds)" in line for line in lines)
    assert not any("does not test the method" in line for line in lines)
    every_seed = scores.assign(teacher_gate=scores["teacher_gate"].replace("pass", "FAIL"))
    lines = why.conclusions(table, every_seed)
    assert any("failed the gate on 3/3 seeds: these students copied" in line for line in lines)
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


def test_students_beside_their_teachers(tmp_path):
    """teacher_and_student pairs each variant's teacher margin with its student's clean Δ, from the files."""
    import numpy as np

    from fake_results import write_fake_results

    scores, training, _ = why.load_results(write_fake_ablations(tmp_path / "ablations"))
    pairs = why.teacher_and_student(why.comparisons(scores), training)
    assert set(pairs["variant"]) == set(ab.VARIANTS) and len(pairs) == 2 * len(ab.VARIANTS)  # 2 tasks
    row = pairs[(pairs.task == "fundus") & (pairs.variant == "lambda_4")].iloc[0]
    fund = training[training.task == "fundus"]
    teacher = fund[(fund.method == "lambda_4") & (fund.role == "teacher")].best_val_dice.mean()
    assert row["teacher margin"] == pytest.approx(100 * (teacher - fund[fund.method == "baseline"].best_val_dice.mean()))
    clean = scores[(scores.task == "fundus") & (scores.family == "clean")].pivot_table(index="seed", columns="method",
                                                                                      values="dice")
    assert row["delta"] == pytest.approx(100 * (clean["lambda_4"] - clean["baseline"]).mean())
    # the evidence run's records: its teacher is SIKD's, its raw teacher the control's (teacher_raw)
    evidence_scores, evidence_training, _ = why.load_results(write_fake_results(tmp_path / "evidence"))
    evidence = why.teacher_and_student(why.comparisons(why.from_evidence(evidence_scores)),
                                       why.training_from_evidence(evidence_training))
    assert sorted(set(evidence["variant"])) == ["sikd", "teacher_raw"] and len(evidence) == 4
    sentence = why.follow_sentence(pd.concat([pairs, evidence], ignore_index=True))
    r = np.corrcoef(pd.concat([pairs, evidence])["teacher margin"], pd.concat([pairs, evidence])["delta"])[0, 1]
    assert f"Over {len(pairs) + 4} (task, variant) pairs" in sentence and f"r = {r:.2f}" in sentence
    both = pd.concat([pairs, evidence], ignore_index=True)
    assert f"ρ = {both['teacher margin'].rank().corr(both['delta'].rank()):.2f}" in sentence
    # one collapsed teacher: r over every pair follows it; the gate-passing pairs' own r does not
    collapsed = both.copy()
    collapsed.loc[0, ["teacher margin", "delta", "gate passes"]] = [-80.0, -50.0, "0/5"]
    learned = collapsed.iloc[1:][collapsed.iloc[1:]["gate passes"].map(lambda g: g.split("/")[0] == g.split("/")[1])]
    r_learned = np.corrcoef(learned["teacher margin"], learned["delta"])[0, 1]
    assert f"r = {r_learned:.2f} over the {len(learned)} whose teacher passed" in why.follow_sentence(collapsed)
    none_passed = both.assign(**{"gate passes": "0/5"})
    assert "only 0 teachers passed the gate" in why.follow_sentence(none_passed)
    assert why.follow_sentence(pairs.head(2)).startswith("Too few")
    fig = viz_figure(pd.concat([pairs.assign(run="ablation"), evidence.assign(run="evidence")], ignore_index=True))
    assert len([line for line in fig.axes[0].lines if line.get_marker() in ("o", "s")]) == len(pairs) + 4


def viz_figure(pairs):
    import matplotlib.pyplot as plt

    from sikd_utils import viz

    fig = viz.teacher_student_figure(pairs)
    plt.close(fig)
    return fig


def test_the_lambda_curve_recovers_a_known_slope():
    import matplotlib

    matplotlib.use("Agg")
    # Dice falls one point per doubling of λ (seed by seed, slightly different), on every test set
    scores = _scores({"lambda_0.5": (0.020, 0.021, 0.019), "lambda_1": (0.010, 0.010, 0.010),
                      "lambda_4": (-0.010, -0.011, -0.009)})
    curve = why.lambda_curve(scores)
    assert set(curve["method"]) == {"baseline", "sikd", "lambda_0.5", "lambda_1", "lambda_4"}
    assert curve.loc[curve["method"] == "baseline", "lam"].isna().all()  # beside the curve, not on it
    assert curve.loc[curve["method"] == "sikd", "lam"].eq(2.0).all()
    slopes = why.lambda_slopes(curve)
    assert set(slopes["summary"]) == set(why.SUMMARIES)
    assert slopes["slope"].to_numpy() == pytest.approx([-1.0] * 3, abs=0.05)
    assert (slopes["outcome"] == "loss").all() and (slopes["n_seeds"] == 3).all()
    (line,) = why.lambda_sentences(slopes)
    assert line.startswith("Optic disc") and "falls (-1.0 ± " in line and "4 values and 3 seeds" in line
    fig = why.lambda_figure(curve)
    assert len(fig.axes) == 3 and all(ax.get_xscale() == "log" for ax in fig.axes)
    # the baseline's dashed line sits where its Dice is (0.8 - 0.01 s, mean over seeds 0-2)
    assert fig.axes[0].lines[-1].get_ydata()[0] == pytest.approx(79.0)


def test_the_lambda_slope_needs_three_values_per_seed():
    two = _scores({"lambda_4": (-0.01, -0.01, -0.01)})  # SIKD's λ = 2 and λ = 4 only
    assert why.lambda_slopes(why.lambda_curve(two)).empty
    flat = _scores({"lambda_1": (0.0, 0.001, -0.001), "lambda_4": (0.001, -0.001, 0.0)})
    assert (why.lambda_slopes(why.lambda_curve(flat))["outcome"] == "tie").all()


def test_the_lambda_curve_takes_object_columns():
    # the notebook concatenates committed and interim tables, which can leave Dice as dtype object
    scores = _scores({"lambda_0.5": (0.02, 0.021, 0.019), "lambda_1": (0.01, 0.01, 0.01)})
    curve = why.lambda_curve(scores.astype({"dice": object}))
    assert curve["dice"].dtype == float and len(why.lambda_slopes(curve)) == 3


def test_the_fingerprints_colour_limit_is_not_set_by_one_failed_network():
    # 99 cells within ±3 points and one of −50 (a student of a teacher that had not learned)
    deltas = pd.DataFrame({"delta": [0.03 * k / 98 for k in range(99)] + [-0.5]})
    limit = why.colour_limit(deltas)
    assert 2.5 < limit < 3.0  # the 95th percentile of |Δ| in points, not the 50 of the outlier
    assert why.colour_limit(pd.DataFrame({"delta": [0.001, -0.002, np.nan]})) == 1.0  # at least 1 point
    assert why.colour_limit(pd.DataFrame({"delta": []})) == 1.0
    cells = pd.DataFrame({"task": "fundus", "method": "sikd", "family": ["clean", "gamma"], "severity": [0, 1],
                          "delta": [-0.5, 0.01], "significant": [True, False]})
    fig = why.fingerprint_figure(cells, "fundus", limit=limit)
    assert fig.axes[0].images[0].colorbar.extend == "both"  # the bar says the −50 lies beyond its end
    fig = why.fingerprint_figure(cells, "fundus", limit=60.0)
    assert fig.axes[0].images[0].colorbar.extend == "neither"


def test_the_lr_probe_is_read_back_and_plotted(tmp_path):
    """The committed probe parses into one row per (lr, seed, epoch); a malformed line names file and line."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    committed = Path(why.__file__).resolve().parents[1] / "book" / "results" / "ablations" / why.LR_PROBE
    probe = why.read_lr_probe(committed)
    assert set(probe["lr"]) == {1e-3, 3e-4, 1e-4} and set(probe["seed"]) == {1, 2}
    assert len(probe) == 3 * 2 * 20 and probe["val_dice"].between(0, 1).all()
    assert probe[probe["lr"] == 1e-3]["val_dice"].max() == 0.0  # the collapse the probe was made to show
    fig = why.lr_probe_figure(probe)
    assert len(fig.axes) == 3 and [a.get_title() for a in fig.axes] == ["Adam lr 0.001", "Adam lr 0.0003",
                                                                       "Adam lr 0.0001"]
    assert why.read_lr_probe(tmp_path / "missing.txt").empty
    bad = tmp_path / "bad.txt"
    bad.write_text("# header\nprobe-1e-3 seed1 3 0.1 0.2 s/ep 5.0\n")  # says 3 epochs, holds 2
    with pytest.raises(ValueError, match=r"bad.txt, line 2: expected"):
        why.read_lr_probe(bad)


def test_teacher_rate_sentences_pair_the_two_swin_variants(tmp_path):
    """The rate's effect: each rate's teachers from the training records, the students paired by seed; a task
    without one of the two variants says nothing (section 6 marks it pending)."""
    scores, training, _ = why.load_results(write_fake_ablations(tmp_path / "ablations"))
    lines = why.teacher_rate_sentences(training, scores)
    assert [line.split(":")[0] for line in lines] == list(dict.fromkeys(training["task"]))
    line = next(line for line in lines if line.startswith("fundus:"))
    fund = training[(training.task == "fundus") & (training.role == "teacher")]
    fixed = fund[fund.method == "swin_unetr_lr3e-4"].best_val_dice
    assert f"at lr {ab.SWIN_TEACHER_LR:g} (`swin_unetr_lr3e-4`) best validation Dice {fixed.min():.2f}–" in line
    assert f"mean {fixed.mean():.2f}" in line
    clean = scores[(scores.task == "fundus") & (scores.family == "clean")].pivot_table(index="seed", columns="method",
                                                                                      values="dice")
    assert f"clean {100 * (clean['swin_unetr_lr3e-4'] - clean['swin_unetr']).mean():+.1f} ±" in line
    assert why.teacher_rate_sentences(training[training.method != "swin_unetr"], scores) == []


def test_projection_sentences_pair_the_projected_teacher_with_the_plain_one(tmp_path):
    scores, training, _ = why.load_results(write_fake_ablations(tmp_path / "ablations"))
    lines = why.projection_sentences(training, scores)
    assert [line.split(":")[0] for line in lines] == list(dict.fromkeys(training["task"]))
    line = next(line for line in lines if line.startswith("abdomen:"))
    teachers = training[(training.task == "abdomen") & (training.role == "teacher")]
    projected = teachers[teachers.method == "swin_unetr_projected"].best_val_dice
    assert f"(`swin_unetr_projected`) best validation Dice {projected.min():.2f}–{projected.max():.2f}" in line
    clean = scores[(scores.task == "abdomen") & (scores.family == "clean")].pivot_table(
        index="seed", columns="method", values="dice")
    assert f"clean {100 * (clean['swin_unetr_projected'] - clean['swin_unetr_lr3e-4']).mean():+.1f} ±" in line
    left = line.split("against the SwinUNETR baseline")[1]
    assert f"clean {100 * (clean['swin_unetr_projected'] - clean['baseline_swin_unetr']).mean():+.1f} ±" in left
    assert why.projection_sentences(training[training.method != "swin_unetr_projected"], scores) == []


def _history_parts(folder, runs):
    """Part files ``<method>.history.csv`` for ``runs``: {(task, seed, method): teacher val Dice per epoch}."""
    from sikd_utils.ablate import HISTORY_COLUMNS

    for (task, seed, method), dice in runs.items():
        path = folder / task / "key" / f"seed{seed}" / f"{method}.history.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"role": "teacher", "epoch": e, "lr": 3e-4, "loss": 0.1, "val_dice": d, "seconds": 1.0, "run_key": "k"}
                for e, d in enumerate(dice, 1)]
        rows.append({"role": "student", "epoch": 1, "lr": 1e-3, "loss": 0.1, "val_dice": 0.9, "seconds": 1.0,
                     "run_key": "k"})
        pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(path, index=False)
    return folder


def test_teacher_histories_say_when_each_seed_left_background(tmp_path):
    """read_histories + escape_epochs: the first epoch above LEFT_BACKGROUND per seed (NaN: never), the best
    Dice and epoch; the sentences and the probe comparison are made from them."""
    import matplotlib.pyplot as plt

    parts = _history_parts(tmp_path / "parts", {("fundus", 0, "m"): [0.0, 0.0, 0.5, 0.8, 0.7],
                                                ("fundus", 1, "m"): [0.0] * 5, ("fundus", 0, "other"): [0.9] * 5})
    histories = why.read_histories(parts, methods=["m"])
    assert set(histories["method"]) == {"m"} and set(histories["role"]) == {"teacher", "student"}
    assert len(why.read_histories(parts)) == 3 * 6 and why.read_histories(tmp_path / "none").empty
    escapes = why.escape_epochs(histories).set_index("seed")
    assert escapes.loc[0, "first epoch off background"] == 3 and np.isnan(escapes.loc[1, "first epoch off background"])
    assert escapes.loc[0, "best epoch"] == 4 and escapes.loc[0, "best val Dice"] == pytest.approx(0.8)
    assert escapes.loc[0, "epochs"] == 5  # the student's one epoch is not the teacher's
    [line] = why.escape_sentences(why.escape_epochs(histories))
    assert "seed 0 epoch 3, seed 1 never" in line and "0.00–0.80 after 5 epochs" in line
    probe = pd.DataFrame({"lr": [3e-4] * 3 + [1e-3] * 3, "seed": [0] * 6, "epoch": [1, 2, 3] * 2,
                          "val_dice": [0.0, 0.6, 0.7, 0.0, 0.0, 0.0]})
    [agree] = why.probe_agreement(probe, why.escape_epochs(histories), 3e-4, method="m")
    assert agree == "seed 0 at lr 0.0003: left background at epoch 2 in the probe and at epoch 3 in the ablation's run."
    [never] = why.probe_agreement(probe, why.escape_epochs(histories), 1e-3, method="m")
    assert "never in 3 epochs in the probe" in never
    fig = why.history_figure(why.read_histories(parts))
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2  # one panel per method, one line per seed
    plt.close(fig)


def test_headline_counts_the_ingredient_variants_by_outcome(tmp_path):
    """Per task: SIKD against its baseline, then how many variants do better/worse/mixed/tie against SIKD, by
    name; a variant whose teacher failed the gate on every seed is named as such."""
    scores, _, _ = why.load_results(write_fake_ablations(tmp_path / "ablations"))
    table = why.comparisons(scores)
    text = why.headline(table, notes={"fundus": "(interim: x)"})
    for task in dict.fromkeys(table["task"]):
        rows = table[(table.task == task) & (table.against == "reference")]
        verdicts = {v: why.overall_outcome(g["outcome"]) for v, g in rows.groupby("variant")}
        better = sorted(v for v, o in verdicts.items() if o == "better")
        sikd = why.overall_outcome(table[(table.task == task) & (table.variant == "sikd")]["outcome"])
        from sikd_utils.data.tasks import TASKS
        sentence = next(s for s in text.split(". ") if s.startswith(TASKS[task].title))
        assert f"SIKD against its baseline is {sikd}; of {len(verdicts)} variants" in sentence
        assert f"{len(better)} do better" in sentence and all(f"`{v}`" in sentence for v in better)
    assert "(interim: x)." in text
    failing = scores.copy()
    failing.loc[(failing.task == "fundus") & (failing.method == "logit_kd"), "teacher_gate"] = "FAIL"
    assert "(`logit_kd` with a teacher that failed the gate on every seed)" in why.headline(table, failing)
    assert why.headline(table.iloc[:0]).startswith("**Pending.**")


def test_a_task_gathered_from_some_variants_only_is_not_complete():
    every = {m: {} for m in ab.methods_for(None)}
    some = {m: {} for m in ab.methods_for(["lambda_4"])}
    prov = {"tasks": {"fundus": {"methods": every, "preset": "gpu", "seeds": [0, 1, 2, 3, 4]},
                      "abdomen": {"methods": some, "preset": "gpu", "seeds": [0, 1, 2, 3, 4]}}}
    assert why.complete_tasks(prov, ["fundus", "abdomen", "polyp"]) == ["fundus"]
    assert why.complete_tasks({}, ["fundus"]) == []


def test_a_task_gathered_from_some_seeds_only_is_not_complete():
    """A ``--seeds 0 1`` run gathers every method on two seeds; the book must not read that as the result."""
    every = {m: {} for m in ab.methods_for(None)}
    prov = {"tasks": {"fundus": {"methods": every, "preset": "gpu", "seeds": [0, 1]},
                      "abdomen": {"methods": every, "preset": "gpu", "seeds": [0, 1, 2, 3, 4]},
                      "polyp": {"methods": every, "preset": "no-such-preset", "seeds": [0]}}}
    assert why.complete_tasks(prov, ["fundus", "abdomen", "polyp"]) == ["abdomen"]
    assert ab.not_gathered(prov["tasks"]["fundus"]) == ([], [2, 3, 4])
    with pytest.raises(ValueError, match="'no-such-preset'.*seeds it needs is unknown"):
        ab.not_gathered(prov["tasks"]["polyp"])
