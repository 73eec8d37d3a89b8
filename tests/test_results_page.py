"""Every number the results page shows equals a recomputation from the committed per-seed files.

The recomputation here is written independently of ``sikd_utils.stats`` (plain numpy/scipy from the
CSV rows), and runs on the committed ``book/results/`` and on a made-up results folder (so that it
checks something even before the evidence run has committed results).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from fake_results import write_fake_ablations, write_fake_results
from sikd_utils import evidence
from sikd_utils.data.tasks import TASKS
from sikd_utils.paper import FIG1

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "book" / "results"


def ci(values):
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return float(values.mean()) if len(values) else np.nan, np.nan
    return float(values.mean()), float(st.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


_SPLITS = {}


def rows_of(scores, **where):
    """``scores[(scores.k1 == v1) & ...]`` for the columns named in ``where``, from one groupby per set of
    column names (thousands of boolean masks over the committed table took most of this file's time)."""
    names = tuple(where)
    cached = _SPLITS.get((id(scores), names))
    if cached is None or cached[0] is not scores:
        groups = {k if isinstance(k, tuple) else (k,): g for k, g in scores.groupby(list(names))}
        cached = _SPLITS[(id(scores), names)] = (scores, groups)
    return cached[1].get(tuple(where.values()), scores.iloc[:0])


def paired(scores, task, family, severity, a, b):
    rows = rows_of(scores, task=task, family=family, severity=severity)
    wide = rows.pivot_table(index="seed", columns="method", values="dice")
    return (wide[a] - wide[b]).to_numpy()


def outcome(mean, half):
    return "gain" if mean - half > 0 else "loss" if mean + half < 0 else "tie"


def check_page(folder):
    scores, training, _ = evidence.load_results(folder)
    tables = evidence.page_tables(scores, training)
    if not len(scores):
        assert tables == {}
        return 0
    checked = 0
    recomputed = {"intra": [], "cross": []}  # each task's verdicts as recomputed here, for the headline
    passed = {"teacher": [0, 0], "raw_teacher": [0, 0]}
    verdicts = tables["verdicts"].set_index("task")
    for task in scores.task.unique():
        mean, half = ci(paired(scores, task, "clean", 0, "sikd", "baseline"))
        v = verdicts.loc[task]
        assert v.intra_delta == pytest.approx(100 * mean) and v.intra_ci == pytest.approx(100 * half)
        assert v.intra_verdict == ("reproduced" if outcome(mean, half) == "gain" else "not reproduced")
        recomputed["intra"].append((task, v.intra_verdict))
        sevs = sorted(s for s in scores[(scores.task == task) & (scores.family == "target")].severity.unique() if s > 0)
        per_sev = [ci(paired(scores, task, "target", s, "sikd", "baseline")) for s in sevs]
        outcomes = [outcome(m, h) for m, h in per_sev]
        averaged = np.mean([paired(scores, task, "target", s, "sikd", "baseline") for s in sevs], axis=0)
        am, ah = ci(averaged)
        assert v.cross_delta == pytest.approx(100 * am) and v.cross_ci == pytest.approx(100 * ah)
        gains, losses = outcomes.count("gain"), outcomes.count("loss")
        expected = ("reproduced" if gains and not losses and outcome(am, ah) == "gain"
                    else "not reproduced" if not gains else "mixed")
        assert (v.cross_gains, v.cross_losses, v.cross_verdict) == (gains, losses, expected)
        recomputed["cross"].append((task, expected))
        # beside the paper
        vs = tables["versus_paper"].set_index(["task", "kind"])
        assert vs.loc[(task, "intra"), "delta"] == pytest.approx(100 * mean)
        assert vs.loc[(task, "cross"), "paper_delta"] == FIG1[task][5]
        # every heat-map cell and curve point
        for r in tables["fingerprint"][tables["fingerprint"].task == task].itertuples():
            m, h = ci(paired(scores, task, r.family, r.severity, "sikd", "baseline"))
            assert r.delta == pytest.approx(m) and r.delta_ci == pytest.approx(h, nan_ok=True)
            assert r.significant == (m - h > 0 or m + h < 0)
            checked += 1
        shifted = [outcome(*ci(paired(scores, task, f, v, "sikd", "baseline"))) for f, v in
                   scores[(scores.task == task) & (scores.family != "clean")][["family", "severity"]]
                   .drop_duplicates().itertuples(index=False)]
        said = [line for line in evidence.fingerprint_sentences(tables["fingerprint"]) if TASKS[task].title in line]
        assert len(said) == 1 and (f"of {len(shifted)} shifted test sets, SIKD gains on {shifted.count('gain')}, "
                                   f"loses on {shifted.count('loss')} and ties on {shifted.count('tie')}") in said[0]
        for r in tables["curves"][tables["curves"].task == task].itertuples():
            rows = rows_of(scores, task=task, family=r.family, severity=r.severity, method=r.method)
            m, h = ci(rows.dice)
            assert r.dice == pytest.approx(m) and r.dice_ci == pytest.approx(h, nan_ok=True)
            checked += 1
        # the control: three paired differences on clean and on the severity-averaged target
        control = tables["control"][tables["control"].task == task].set_index(["test set", "comparison"])
        for label, (a, b) in {"SIKD − baseline": ("sikd", "baseline"), "control − baseline": ("control", "baseline"),
                              "SIKD − control": ("sikd", "control")}.items():
            m, h = ci(paired(scores, task, "clean", 0, a, b))
            assert control.loc[("clean", label), "delta"] == pytest.approx(100 * m)
            m, h = ci(np.mean([paired(scores, task, "target", s, a, b) for s in sevs], axis=0))
            assert control.loc[("target (mean)", label), "delta"] == pytest.approx(100 * m)
            assert control.loc[("target (mean)", label), "ci"] == pytest.approx(100 * h)
        # ... each with the gate of the teachers behind it, counted by hand
        tr = training[training.task == task].pivot_table(index="seed", columns="role", values="best_val_dice")
        passes = {m: f"{int((tr[role] >= tr['baseline'] - 0.02).sum())}/{len(tr)} pass"
                  for m, role in (("sikd", "teacher"), ("control", "raw_teacher"))}
        assert control.loc[("clean", "SIKD − baseline"), "gate"] == f"teacher {passes['sikd']}"
        assert control.loc[("clean", "control − baseline"), "gate"] == f"control's raw teacher {passes['control']}"
        assert control.loc[("target (mean)", "SIKD − control"), "gate"] == (
            f"teacher {passes['sikd']}, control's raw teacher {passes['control']}")
        # degradation: severity-weighted drop from clean, weights (2/3)^s
        deg = tables["degradation"].set_index(["task", "method", "family"])
        for (method, family), _ in scores[(scores.task == task) & (scores.family != "clean")].groupby(["method", "family"]):
            values = []
            for seed in sorted(scores.seed.unique()):
                rows = rows_of(scores, task=task, method=method, seed=seed)
                clean = rows[rows.family == "clean"].dice.mean()
                fam = rows[rows.family == family]
                w = (2 / 3) ** fam.severity.to_numpy(dtype=float)
                values.append(float((w * (clean - fam.dice.to_numpy())).sum() / w.sum()))
            assert deg.loc[(task, method, family), "degradation"] == pytest.approx(ci(values)[0])
        # the gate
        gate = tables["gate"].set_index("task").loc[task]
        tr = training[training.task == task].pivot_table(index="seed", columns="role", values="best_val_dice")
        assert gate.teacher_val == pytest.approx(tr["teacher"].mean())
        assert gate.teacher_passes == int((tr["teacher"] >= tr["baseline"] - 0.02).sum())
        assert gate.raw_teacher_passes == int((tr["raw_teacher"] >= tr["baseline"] - 0.02).sum())
        for role in passed:
            passed[role][0] += int((tr[role] >= tr["baseline"] - 0.02).sum())
            passed[role][1] += int(tr[role].notna().sum())
        checked += 1
    # the headline: how many tasks got each verdict, the tasks where the claim held named, the gate summed
    line = evidence.headline(tables["verdicts"], tables["gate"])
    halves = dict(zip(("intra", "cross"), line.split("; its cross-domain")))
    for kind, pairs in recomputed.items():
        held = [TASKS[t].title for t, v in pairs if v == "reproduced"]
        assert (f"is reproduced on {len(held) or 'none'}" + (f" ({', '.join(held)})" if held else "")) in halves[kind]
        for verdict in ("mixed", "not reproduced"):
            count = sum(v == verdict for _, v in pairs)
            assert (f", {verdict} on {count}" in halves[kind]) == bool(count)
    assert (f"{passed['teacher'][0]} of {passed['teacher'][1]} SIKD teachers and {passed['raw_teacher'][0]} of "
            f"{passed['raw_teacher'][1]} of the control's raw teachers passed the gate") in line
    return checked


def test_committed_results_page_numbers():
    check_page(COMMITTED)


def test_page_numbers_on_made_up_results(tmp_path):
    folder = write_fake_results(tmp_path)
    assert check_page(folder) > 20
    # the failed teacher (cardiac, seed 0) is flagged, by name, in the figures' labels
    scores, training, _ = evidence.load_results(folder)
    assert "cardiac" in evidence.gate_flags(training) and "polyp" not in evidence.gate_flags(training)
    # every made-up raw teacher is 3 points below its baseline: flagged where the control is shown, not elsewhere
    with_control = evidence.task_notes(training, {}, ("teacher", "raw_teacher"))
    n = training.seed.nunique()
    assert with_control["polyp"] == f"(control's raw teacher gate failed on {n}/{n} seeds)"
    assert with_control["cardiac"].startswith("(teacher gate failed on 1/") and "raw teacher" in with_control["cardiac"]
    assert set(evidence.task_notes(training, {"polyp": "(older)"})) == {"cardiac", "polyp"}
    lines = evidence.verdict_sentences(evidence.page_tables(scores, training)["verdicts"])
    assert len(lines) == 2 and all("intra-domain" in line for line in lines)


def test_teacher_length_table_recomputed():
    """Each row of the 'how long must the teacher train' table from the raw files, by hand."""
    scores, training, prov = evidence.load_results(COMMITTED)
    scan = evidence.load_teacher_scan(COMMITTED)
    table = evidence.teacher_length_table(training, prov, scan)
    if scan is None and not len(training):
        assert table.empty
        return
    for r in table.itertuples():
        seed0 = training[(training.task == r.task) & (training.seed == 0)]
        if r.run == "evidence":
            assert r.teacher == seed0[seed0.role == "teacher"].best_val_dice.item()
            assert r.reached == r._2 == prov["tasks"][r.task]["teacher_epochs"]
        else:
            runs = scan[(scan.task == r.task) & (scan.teacher_epochs == r._2) & (scan.role == "teacher")]
            assert (r.teacher, r.reached) == (runs.val_dice.max(), runs.epoch.max())
        if len(seed0[seed0.role == "baseline"]):
            baseline = seed0[seed0.role == "baseline"].best_val_dice.item()
            assert r.passes == ("yes" if r.teacher >= baseline - 0.02 else "no")
        else:
            assert r.passes == "n/a"


def test_earlier_preset_is_noted():
    prov = {"tasks": {"cardiac": {"preset": "gpu", "epochs": 20, "teacher_epochs": 1},
                      "polyp": {"preset": "tiny", "epochs": 5, "teacher_epochs": 5}}}
    notes = evidence.earlier_preset_notes(prov, "gpu")
    assert list(notes) == ["cardiac"] and "1 epochs" in notes["cardiac"] and "rerun pending" in notes["cardiac"]


def test_3d_tasks_take_their_own_teacher_length_and_older_runs_are_noted():
    from sikd_utils.configuration import preset_config
    from sikd_utils.presets import PRESETS

    gpu = PRESETS["gpu"]
    assert preset_config("gpu", "cardiac").teacher_epochs == gpu["teacher_epochs_3d"] != gpu["teacher_epochs"]
    assert preset_config("gpu", "polyp").teacher_epochs == gpu["teacher_epochs"]
    assert preset_config("cpu", "cardiac").teacher_epochs == PRESETS["cpu"]["teacher_epochs"]  # no 3D override
    same = {"preset": "gpu", "epochs": gpu["epochs"], "teacher_epochs": gpu["teacher_epochs"]}
    notes = evidence.earlier_preset_notes({"tasks": {"cardiac": same, "polyp": same}}, "gpu")
    assert list(notes) == ["cardiac"] and f"{gpu['teacher_epochs']} epochs" in notes["cardiac"]


def _teacher_length_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("teacher_length_runs", ROOT / "scripts" / "teacher_length_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_teacher_length_runs_hold_the_current_runs_and_their_effect_is_recomputed():
    """The committed history has every task's current run as its files say it, and the page's
    'does a better teacher close the gap?' numbers equal a recomputation by hand."""
    runs = evidence.load_teacher_length_runs(COMMITTED)
    scores, training, prov = evidence.load_results(COMMITTED)
    if runs is None:
        assert not len(scores)
        return
    script = _teacher_length_script()
    for task, entry in prov["tasks"].items():
        expected = pd.DataFrame(script.version_rows(task, entry, scores[scores.task == task],
                                                    training[training.task == task], "now"))
        got = runs[(runs.task == task) & (runs.teacher_epochs == entry["teacher_epochs"])
                   & (runs.code_commit == entry["commit"])]
        assert len(got) == len(entry["seeds"]), f"{task}: rerun scripts/teacher_length_runs.py after committing"
        numbers = [c for c in script.COLUMNS if c.endswith(("_val", "_clean", "_target"))]
        assert np.allclose(got[numbers].to_numpy(float), expected[numbers].to_numpy(float), equal_nan=True), task
    effect = evidence.teacher_length_effect(runs)
    for r in effect.itertuples(index=False):
        group = runs[(runs.task == r.task) & (runs.teacher_epochs == r[1])]
        assert (r.teacher, r.passes) == (pytest.approx(group.teacher_val.mean()),
                                         f"{int(group.teacher_pass.sum())}/{len(group)}")
        for kind, (delta, half) in {"clean": (r[7], r[8]), "target": (r[9], r[10])}.items():
            mean, h = ci(group[f"sikd_{kind}"] - group[f"baseline_{kind}"])
            assert (delta, half) == (pytest.approx(100 * mean), pytest.approx(100 * h))
    lines = evidence.teacher_length_sentences(effect)
    assert len(lines) == int((effect.groupby("task").size() > 1).sum())


def test_teacher_length_history_reads_every_committed_run(tmp_path):
    """scripts/teacher_length_runs.py finds each gpu-preset run of a task in git history, once."""
    import io
    import json
    import subprocess

    script = _teacher_length_script()
    repo = tmp_path / "repo"
    folder = repo / "book" / "results"

    def commit(teacher_epochs, run_key, seed, preset="gpu"):
        write_fake_results(folder, tasks=("polyp",), seed=seed)  # a rerun: new numbers
        prov = json.loads((folder / "provenance.json").read_text())
        prov["tasks"]["polyp"].update(preset=preset, teacher_epochs=teacher_epochs, epochs=4, run_key=run_key,
                                      commit=f"code{teacher_epochs}")
        (folder / "provenance.json").write_text(json.dumps(prov))
        for args in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", run_key]):
            subprocess.run(["git", *args], cwd=repo, check=True)

    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    commit(40, "a", seed=1)
    commit(80, "b", seed=2)
    commit(80, "b", seed=3)  # the same run gathered again: counted once, from the later commit
    commit(5, "c", seed=4, preset="cpu")  # another scale: left out
    runs = script.history(repo)
    assert sorted(set(zip(runs.teacher_epochs, runs.code_commit))) == [(40, "code40"), (80, "code80")]
    assert len(runs) == 2 * 3 and list(runs.columns) == script.COLUMNS
    shown = subprocess.run(["git", "show", "HEAD~1:book/results/polyp_training.csv"], cwd=repo,
                           capture_output=True, text=True, check=True).stdout
    latest = pd.read_csv(io.StringIO(shown))
    teachers = latest[latest.role == "teacher"].sort_values("seed").best_val_dice.to_numpy()
    assert np.allclose(runs[runs.teacher_epochs == 80].sort_values("seed").teacher_val, teachers)
    assert runs.teacher_pass.dtype == bool


def test_take_piece_takes_what_the_piece_finished_and_nothing_older(tmp_path):
    """scripts/take_piece.py: a newer task run and new part files come in; an older run, a part we already
    have and the other tasks' provenance entries stay as they are."""
    import importlib.util
    import json
    import tarfile

    spec = importlib.util.spec_from_file_location("take_piece", ROOT / "scripts" / "take_piece.py")
    take = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(take)
    ours = write_fake_results(tmp_path / "ours", tasks=("polyp", "cardiac", "fundus"), seed=1)
    theirs = write_fake_results(tmp_path / "piece" / "book" / "results", tasks=("polyp", "cardiac", "fundus"), seed=2)
    for folder, dates in ((ours, {"polyp": "2026-12-01 10:00 UTC", "cardiac": "2026-12-01 10:00 UTC"}),
                          (theirs, {"polyp": "2026-12-02 09:00 UTC", "cardiac": "2026-11-30 09:00 UTC"})):
        prov = json.loads((folder / "provenance.json").read_text())
        for task, date in dates.items():
            prov["tasks"][task]["date"] = date
        prov["tasks"]["fundus"]["note"] = "ours" if folder == ours else "theirs"
        (folder / "provenance.json").write_text(json.dumps(prov))
    (theirs / "fundus.csv").write_bytes((ours / "fundus.csv").read_bytes())  # unchanged in the piece
    (theirs / "fundus_training.csv").write_bytes((ours / "fundus_training.csv").read_bytes())
    for folder, text in ((theirs, "retested\n"), (ours, "first\n")):
        (folder / "ablations" / "parts" / "fundus").mkdir(parents=True)
        (folder / "ablations" / "parts" / "fundus" / "sikd.scores.csv").write_text(text)
    new_part = write_fake_ablations(tmp_path / "made", tasks=("fundus",), seeds=(0,)) / "fundus.csv"
    rows = pd.read_csv(new_part)
    rows[rows["method"] == "lambda_4"].to_csv(theirs / "ablations" / "parts" / "fundus" / "lambda_4.scores.csv",
                                               index=False)
    new_part = (theirs / "ablations" / "parts" / "fundus" / "lambda_4.scores.csv").read_text()
    tarball = tmp_path / "piece.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "piece" / "book", arcname="book")
    before = {p: p.read_bytes() for p in ours.rglob("*") if p.is_file()}
    said = take.take_piece(tarball, ours, dry_run=True)
    assert {p: p.read_bytes() for p in ours.rglob("*") if p.is_file()} == before  # a dry run copies nothing
    assert said == take.take_piece(tarball, ours)
    assert sum(line.startswith("took") for line in said) == 2, said  # polyp and the new part
    assert (ours / "polyp.csv").read_bytes() == (theirs / "polyp.csv").read_bytes()
    assert (ours / "cardiac.csv").read_bytes() == before[ours / "cardiac.csv"]  # the piece's run is older
    prov = json.loads((ours / "provenance.json").read_text())["tasks"]
    assert prov["polyp"]["date"] == "2026-12-02 09:00 UTC" and prov["cardiac"]["date"] == "2026-12-01 10:00 UTC"
    assert prov["fundus"]["note"] == "ours"  # an unchanged task keeps our entry
    assert (ours / "ablations" / "parts" / "fundus" / "lambda_4.scores.csv").read_text() == new_part
    assert (ours / "ablations" / "parts" / "fundus" / "sikd.scores.csv").read_text() == "first\n"


def test_take_piece_leaves_an_ablation_task_gathered_from_part_of_the_ablation(tmp_path):
    """A ``ablate --seeds 0 1`` piece gathers every method on two seeds: that file must not
    replace ours; one gathered in full comes in."""
    import importlib.util
    import json
    import tarfile

    from sikd_utils.ablations import methods_for

    spec = importlib.util.spec_from_file_location("take_piece", ROOT / "scripts" / "take_piece.py")
    take = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(take)
    piece = tmp_path / "piece" / "book" / "results" / "ablations"
    ours = tmp_path / "ours"
    (ours / "ablations").mkdir(parents=True)
    write_fake_ablations(tmp_path / "two", tasks=("fundus",), seeds=(0, 1))
    write_fake_ablations(piece, tasks=("abdomen",), seeds=(0, 1, 2, 3, 4))
    entries = {}
    for task, folder in (("fundus", tmp_path / "two"), ("abdomen", piece)):
        for name in (f"{task}.csv", f"{task}_training.csv"):
            (piece / name).write_bytes((folder / name).read_bytes())
        entries[task] = {**json.loads((folder / "provenance.json").read_text())["tasks"][task], "preset": "gpu",
                         "date": f"2026-12-03 00:1{len(entries)} UTC"}
    (piece / "provenance.json").write_text(json.dumps({"tasks": entries}))
    (ours / "ablations" / "fundus.csv").write_text("ours, five seeds\n")
    tarball = tmp_path / "piece.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "piece" / "book", arcname="book")
    said = take.take_piece(tarball, ours)
    assert any(line.startswith("left: fundus.csv") and "seed(s) [2, 3, 4]" in line for line in said), said
    assert (ours / "ablations" / "fundus.csv").read_text() == "ours, five seeds\n"
    assert (ours / "ablations" / "abdomen.csv").read_bytes() == (piece / "abdomen.csv").read_bytes()
    assert set(json.loads((ours / "ablations" / "provenance.json").read_text())["tasks"]) == {"abdomen"}


def test_the_outcome_the_book_opens_with_is_the_results_pages_headline(tmp_path):
    """Notebook 00 and the landing page open with evidence.outcome: the headline of the same files."""
    folder = write_fake_results(tmp_path / "results", tasks=("polyp", "cardiac"))
    scores, training, _ = evidence.load_results(folder)
    tables = evidence.page_tables(scores, training)
    found = evidence.outcome(folder, tasks=("polyp", "cardiac"))
    assert found.headline == evidence.headline(tables["verdicts"], tables["gate"])
    assert sorted(found.verdicts["task"]) == sorted(tables["verdicts"]["task"])
    pending = evidence.outcome(folder)  # every task of the suite: those without results are named
    missing = [spec.title for task, spec in TASKS.items() if task not in ("polyp", "cardiac")]
    assert pending.headline == found.headline + f" Pending: {', '.join(missing)}."
    assert evidence.outcome(tmp_path / "nothing").headline == evidence.PENDING
    assert evidence.outcome().source == COMMITTED  # the repository's committed results by default
