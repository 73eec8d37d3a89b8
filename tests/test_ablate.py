"""``python -m sikd_utils ablate`` end to end at toy scale: tidy files, shared networks, resuming."""

import json

import pandas as pd
import pytest

from sikd_utils import jobs

from fake_shifts import install
from sikd_utils import ablate as ar
from sikd_utils.reproduce import EXIT_DONE, SCORE_COLUMNS, load_results


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One toy ablation run (polyp, one seed, two variants), shared by the tests that read or reuse it."""
    mp = pytest.MonkeyPatch()
    install(mp)
    root = tmp_path_factory.mktemp("ablate")
    settings = ar.AblationSettings(preset="tiny", tasks=("polyp",), seeds=(0,), out_dir=str(root / "runs"),
                                   results_dir=str(root / "results"), device="cpu", command="test",
                                   variants=("lambda_4", "teacher_onehot"))
    messages = []
    code = ar.ablate(settings, log=messages.append)
    yield settings, code, messages
    mp.undo()


def test_ablate_writes_the_tidy_schema(finished):
    settings, code, messages = finished
    assert code == EXIT_DONE, messages
    scores, training, prov = load_results(settings.results_dir)
    assert list(scores.columns) == SCORE_COLUMNS
    assert set(scores["method"]) == {"baseline", "sikd", "lambda_4", "teacher_onehot"}
    keys = set(zip(scores["family"], scores["severity"]))
    assert keys == {("clean", 0)} | {(f, s) for f in ("target", "gamma", "squash") for s in (1, 5)}
    assert len(scores) == 4 * len(keys)
    assert scores.loc[scores.family != "clean", "hd95_mm"].isna().all()  # HD95 on clean only
    assert scores.loc[scores.family == "clean", "hd95_mm"].notna().any()
    assert scores.loc[scores.method == "baseline", "teacher_gate"].isna().all()  # "n/a", read back as NaN
    assert set(scores.loc[scores.method != "baseline", "teacher_gate"]) <= {"pass", "FAIL"}
    entry = prov["tasks"]["polyp"]
    assert set(entry["methods"]) == {"baseline", "sikd", "lambda_4", "teacher_onehot"}
    assert entry["methods"]["lambda_4"]["baseline"] == "baseline" and entry["families"] == ["gamma", "squash"]
    for key in ("command", "commit", "device", "torch", "precision", "run_key", "seeds", "train_seconds"):
        assert key in entry, key


def test_a_run_of_some_variants_says_the_task_is_not_complete(finished):
    _, _, messages = finished
    line = next(m for m in messages if m.startswith("polyp: finished"))
    assert "the chosen part only" in line and "teacher_skips" in line and "interim" in line
    assert "seed(s) 1 of the preset not in it" in line  # tiny has seeds 0 and 1; the run had 0 only


def test_networks_are_shared_where_settings_agree(finished):
    settings, _, _ = finished
    training = pd.read_csv(f"{settings.results_dir}/polyp_training.csv")
    assert set(zip(training["method"], training["role"])) == {
        ("baseline", "baseline"), ("sikd", "teacher"), ("sikd", "student"), ("lambda_4", "teacher"),
        ("lambda_4", "student"), ("teacher_onehot", "teacher"), ("teacher_onehot", "student")}
    teachers = training[training.role == "teacher"].set_index("method")
    assert teachers.loc["lambda_4", "run_key"] == teachers.loc["sikd", "run_key"]  # one teacher, reused
    assert teachers.loc["lambda_4", "best_val_dice"] == teachers.loc["sikd", "best_val_dice"]
    assert teachers.loc["teacher_onehot", "run_key"] != teachers.loc["sikd", "run_key"]
    assert teachers.loc["teacher_onehot", "validated_on"] == "one-hot labels"
    students = training[training.role == "student"].set_index("method")["run_key"]
    assert students.nunique() == 3


def test_finished_tasks_and_methods_are_reused(finished):
    settings, _, _ = finished
    messages = []
    assert ar.ablate(settings, log=messages.append) == EXIT_DONE
    assert any("skipped" in m for m in messages)
    assert ar.run_group(settings, "polyp", 0, ["sikd", "lambda_4"])["reused"]


def test_cli_ablate_refuses_unknown_variants(capsys):
    from sikd_utils.__main__ import main

    assert main(["ablate", "--variants", "lambda_3"]) == 2
    err = capsys.readouterr().err
    assert "lambda_3" in err and "teacher_onehot" in err


def test_a_job_past_its_deadline_stops_cleanly(finished):
    import time

    settings, _, _ = finished
    outcome = ar.run_group(settings, "polyp", 0, ["bottleneck"], deadline=time.time())
    assert outcome["status"] == "stopped"


def test_cli_ablate_reuses_parts(finished, tmp_path, capsys):
    from sikd_utils.__main__ import main

    settings, _, _ = finished
    code = main(["ablate", "--preset", "tiny", "--tasks", "polyp", "--seeds", "0", "--variants", "lambda_4",
                 "--out-dir", settings.out_dir, "--results-dir", str(tmp_path), "--device", "cpu",
                 "--parts-dir", f"{settings.results_dir}/parts"])
    assert code == 0 and "DONE" in capsys.readouterr().out
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert "python -m sikd_utils" in prov["tasks"]["polyp"]["command"]
    # every method whose parts exist for the seeds is gathered, not only those asked for now
    assert set(prov["tasks"]["polyp"]["methods"]) == {"baseline", "sikd", "lambda_4", "teacher_onehot"}


def test_an_unfinished_task_shows_its_finished_methods(finished, tmp_path):
    """Part files of a task not yet gathered: every method tested on all seeds is read back exactly as the
    finished task's CSV holds it, with its provenance; a method missing a seed is left out."""
    import shutil

    from sikd_utils import why

    settings, _, _ = finished
    parts = shutil.copytree(f"{settings.results_dir}/parts", tmp_path / "parts")
    from sikd_utils import ablations as ab

    got = why.interim(["polyp", "fundus"], parts, preset="tiny", seeds=(0,))
    every = len(ab.BASELINES) + len(ab.VARIANTS)
    assert list(got.notes) == ["polyp"] and f"4 of {every} methods" in got.notes["polyp"]
    gathered = pd.read_csv(f"{settings.results_dir}/polyp.csv").fillna({"teacher_gate": "n/a"})  # read as NaN
    key = ["method", "family", "severity"]
    pd.testing.assert_frame_equal(got.scores.sort_values(key).reset_index(drop=True),
                                  gathered.sort_values(key).reset_index(drop=True), check_dtype=False)
    assert set(got.provenance["method"]) == {"baseline", "sikd", "lambda_4", "teacher_onehot"}
    assert got.provenance["device"].str.startswith("CPU").all() and got.provenance["commit"].ne("—").all()
    next(parts.rglob("lambda_4.scores.csv")).unlink()  # lambda_4 now lacks its only seed
    assert "lambda_4" not in set(why.interim(["polyp"], parts, preset="tiny", seeds=(0,)).scores["method"])


def test_a_finished_task_lists_each_methods_commits(finished, tmp_path):
    """provenance.json names the piece that gathered a task; each method's seeds may come from other pieces
    and commits, and method_provenance lists every one its part files record."""
    import shutil

    from sikd_utils import why

    settings, _, _ = finished
    parts = shutil.copytree(f"{settings.results_dir}/parts", tmp_path / "parts")
    prov = json.loads(open(f"{settings.results_dir}/provenance.json").read())
    made = why.method_provenance(prov, ["polyp"], parts)
    assert set(made["method"]) == {"baseline", "sikd", "lambda_4", "teacher_onehot"}
    record = next(parts.rglob("lambda_4.provenance.json"))
    written = json.loads(record.read_text())
    record.write_text(json.dumps({**written, "commit": "0ldc0de"}))
    made = why.method_provenance(prov, ["polyp"], parts).set_index("method")
    assert made.loc["lambda_4", "commit"] == "0ldc0de" and made.loc["sikd", "commit"] == written["commit"]
    # a second record (as an imported seed leaves one): every distinct commit is listed
    record.with_name("lambda_4.imported.json").write_text(json.dumps({"commit": "a05db01", "evidence_method": "x"}))
    made = why.method_provenance(prov, ["polyp"], parts).set_index("method")
    assert made.loc["lambda_4", "commit"] == "0ldc0de; a05db01"


def test_a_gather_keeps_the_device_the_networks_were_trained_on(finished, tmp_path):
    """Gathering part files on a CPU (they were trained on a GPU) names the GPU and its precision as where the
    networks were made, and the CPU only as where the gathering ran."""
    import dataclasses
    import shutil

    settings, _, _ = finished
    parts = shutil.copytree(f"{settings.results_dir}/parts", tmp_path / "parts")
    for record in parts.rglob("*.provenance.json"):
        made = json.loads(record.read_text())
        record.write_text(json.dumps({**made, "device": "NVIDIA H200", "precision": "bf16 autocast, channels-last"}))
    here = dataclasses.replace(settings, results_dir=str(tmp_path / "gathered"), parts_dir=str(parts))
    ar._finish_task(here, "polyp")
    entry = json.loads((tmp_path / "gathered" / "provenance.json").read_text())["tasks"]["polyp"]
    assert entry["device"] == "NVIDIA H200" and entry["precision"] == "bf16 autocast, channels-last"
    assert entry["gathered_on"].startswith("CPU") and entry["torch"]
    next(parts.rglob("lambda_4.provenance.json")).write_text(json.dumps({**made, "device": "NVIDIA A100"}))
    ar._finish_task(here, "polyp")  # networks from two kinds of machine: both are named
    entry = json.loads((tmp_path / "gathered" / "provenance.json").read_text())["tasks"]["polyp"]
    assert set(entry["device"].split("; ")) == {"NVIDIA H200", "NVIDIA A100"}


# --------------------------------------------------------------------------- reusing the evidence run
@pytest.fixture(scope="module")
def evidence_and_ablation(tmp_path_factory):
    """A toy evidence run, then a toy ablation with the same settings that imports from it (own out_dir,
    so nothing could be reloaded from checkpoints instead), counting what the ablation trains and tests."""
    from sikd_utils import orchestration
    from sikd_utils import reproduce as rp

    mp = pytest.MonkeyPatch()
    install(mp)
    root = tmp_path_factory.mktemp("reuse")
    evidence = rp.ReproduceSettings(preset="tiny", tasks=("polyp",), seeds=(0,), out_dir=str(root / "evidence_runs"),
                                    results_dir=str(root / "evidence"), device="cpu", command="test")
    assert rp.reproduce(evidence, log=lambda m: None) == EXIT_DONE
    trained, tested = [], []
    train_roles, evaluate_methods = orchestration.train_roles, orchestration.evaluate_methods

    def counting_train(config, splits, roles, seed, callbacks=(), **kw):
        # counts roles that trained an epoch here: one reloaded from its run folder (the shared teacher, for
        # a student that runs as a job of its own) trains none; ablate asks for one role at a time
        epochs = []
        results = train_roles(config, splits, roles, seed, callbacks=(*callbacks, epochs.append), **kw)
        if epochs:
            trained.extend(roles)
        return results

    def counting_eval(models, *args, **kw):
        tested.extend(models)
        return evaluate_methods(models, *args, **kw)

    mp.setattr(orchestration, "train_roles", counting_train)
    mp.setattr(orchestration, "evaluate_methods", counting_eval)
    settings = ar.AblationSettings(preset="tiny", tasks=("polyp",), seeds=(0,), out_dir=str(root / "runs"),
                                   results_dir=str(root / "results"), device="cpu", command="test",
                                   variants=("lambda_4", "teacher_raw"), evidence_dir=evidence.results_dir)
    messages = []
    code = ar.ablate(settings, log=messages.append)
    yield evidence, settings, code, messages, trained, tested
    mp.undo()


def test_evidence_methods_are_imported_not_retrained(evidence_and_ablation):
    _, settings, code, messages, trained, tested = evidence_and_ablation
    assert code == EXIT_DONE, messages
    assert sum("imported from" in m for m in messages) == 2  # baseline and teacher_raw of seed 0
    assert sorted(trained) == ["student", "student", "teacher"]  # SIKD's and lambda_4's students share a teacher
    assert sorted(tested) == ["lambda_4", "sikd"]


def test_imported_scores_equal_the_evidence(evidence_and_ablation):
    evidence, settings, _, _, _, _ = evidence_and_ablation
    ours = pd.read_csv(f"{settings.results_dir}/polyp.csv")
    theirs = pd.read_csv(f"{evidence.results_dir}/polyp.csv").replace({"method": {"control": "teacher_raw"}})
    assert set(ours["method"]) == {"baseline", "sikd", "lambda_4", "teacher_raw"}
    keys = ["seed", "method", "family", "severity"]
    both = ours.merge(theirs, on=keys, suffixes=("", "_evidence"))
    both = both[both.method.isin(list(ar.FROM_EVIDENCE))]
    assert len(both) == 2 * len(ours[ours.method == "lambda_4"])  # every ablation test set of the two methods
    assert (both["dice"] == both["dice_evidence"]).all() and (both["n_cases"] == both["n_cases_evidence"]).all()
    clean = both[both.family == "clean"]
    assert (clean["hd95_mm"] == clean["hd95_mm_evidence"]).all()
    assert both.loc[both.family != "clean", "hd95_mm"].isna().all()  # HD95 on clean only, as the ablation measures
    gates = both[both.method != "baseline"]
    assert (gates["teacher_gate"] == gates["teacher_gate_evidence"]).all()
    training = pd.read_csv(f"{settings.results_dir}/polyp_training.csv")
    assert set(training.loc[training.method == "teacher_raw", "role"]) == {"raw_teacher", "control"}
    assert training["run_key"].notna().all()
    imported = json.loads(open(f"{settings.results_dir}/provenance.json").read())["tasks"]["polyp"][
        "imported_from_evidence"]
    commit = json.loads(open(f"{evidence.results_dir}/provenance.json").read())["tasks"]["polyp"]["commit"]
    assert set(imported) == {"baseline", "teacher_raw"}
    assert imported["teacher_raw"]["evidence_method"] == "control" and imported["baseline"]["commit"] == commit


@pytest.mark.parametrize("change", [{"preset": "cpu"}, {"seeds": (0, 1)}])
def test_a_mismatch_imports_nothing(evidence_and_ablation, tmp_path, change):
    import dataclasses

    evidence, settings, _, _, _, _ = evidence_and_ablation
    other = dataclasses.replace(settings, out_dir=str(tmp_path / "runs"), **change)
    messages = []
    assert ar.import_evidence(other, "polyp", evidence.results_dir, log=messages.append) == []
    assert "not reused" in messages[0] and ("preset" in messages[0] or "seeds [1]" in messages[0])
    assert not (tmp_path / "runs").exists()
    assert ar.evidence_mismatches(settings, "polyp", evidence.results_dir) == []


def test_evidence_at_another_precision_is_not_imported(evidence_and_ablation, tmp_path):
    import shutil

    evidence, settings, _, _, _, _ = evidence_and_ablation
    copy = shutil.copytree(evidence.results_dir, tmp_path / "evidence")
    prov = json.loads((copy / "provenance.json").read_text())
    prov["tasks"]["polyp"]["precision"] = "bf16 autocast, channels-last"  # as if made on a GPU
    (copy / "provenance.json").write_text(json.dumps(prov))
    assert ar.evidence_mismatches(settings, "polyp", str(copy)) == [
        "precision 'bf16 autocast, channels-last' in the evidence, 'fp32' here"]


def test_a_group_fans_out_after_its_lead(finished, tmp_path):
    """The lead trains the shared teacher; each other unfinished method is a job of its own reusing it."""
    import dataclasses

    settings, _, _ = finished
    group = ["sikd", "lambda_4", "lambda_1", "lambda_0.5"]
    fresh = dataclasses.replace(settings, results_dir=str(tmp_path / "nothing"), parts_dir=None)
    assert ar.lead_and_followers(fresh, "polyp", 0, group) == (["sikd"], [["lambda_4"], ["lambda_1"], ["lambda_0.5"]])
    # in the finished run sikd and lambda_4 are done: the first unfinished method leads
    assert ar.lead_and_followers(settings, "polyp", 0, group) == (["lambda_1"], [["lambda_0.5"]])
    assert ar.lead_and_followers(settings, "polyp", 0, ["sikd", "lambda_4"]) == (["sikd", "lambda_4"], [])
    no_folder = dataclasses.replace(fresh, out_dir=None)  # nothing to reload from: one job
    assert ar.lead_and_followers(no_folder, "polyp", 0, group) == (group, [])


def test_jobs_a_finished_job_asks_for_run_before_those_waiting():
    from sikd_utils.reproduce import run_jobs

    seen = []

    def collect(outcome):
        seen.append(outcome)
        return [(-10,), (-11,)] if outcome == 1 else []

    run_jobs(abs, [(-1,), (-2,), (-3,)], 1, collect)
    assert seen == [1, 10, 11, 2, 3]
    seen.clear()
    run_jobs(abs, [(-1,), (-2,), (-3,)], 2, collect)  # processes: every job and follow-up runs once
    assert sorted(seen) == [1, 2, 3, 10, 11]


def test_finish_only_leaves_a_job_that_cannot_finish_unbegun(finished, monkeypatch):
    import dataclasses
    import time

    from sikd_utils import reproduce as rp

    settings, _, _ = finished
    # this worker's last epoch took 1000 s: the bottleneck student (its teacher is trained) cannot end in 10 min
    monkeypatch.setattr(jobs, "_measured", {"test_seconds": 0.0, "tests": 0, "epoch_seconds": 1000.0})
    last_piece = dataclasses.replace(settings, finish_only=True)
    outcome = ar.run_group(last_piece, "polyp", 0, ["bottleneck"], deadline=time.time() + 600)
    assert outcome["status"] == "stopped" and "start: cannot finish" in outcome["at"], outcome
    assert not ar._method_done(last_piece, "polyp", 0, "bottleneck")


def test_cli_ablate_has_finish_only():
    import argparse

    parser = argparse.ArgumentParser()
    ar.add_arguments(parser)
    assert parser.parse_args(["--finish-only"]).finish_only and not parser.parse_args([]).finish_only


def test_the_costliest_groups_start_first():
    """SwinUNETR's teacher group trains as many epochs as the one-hot teacher's, but each costs ~2.3 U-Net
    epochs (EPOCH_COST, measured): it starts first, so its 160-epoch teachers are not begun too late to finish."""
    groups = [group[0] for group in ar.job_groups(ar.AblationSettings(preset="gpu"), "abdomen")]
    assert groups[0] == "sikd"  # SIKD's teacher and its seven students
    assert groups.index("swin_unetr") < groups.index("teacher_onehot")
    assert groups.index("baseline_swin_unetr") < groups.index("baseline")


def test_each_method_keeps_its_networks_epoch_by_epoch(finished):
    """<method>.history.csv: every role's epochs, the same networks and best Dice as training.csv says."""
    settings, _, _ = finished
    folder = next(ar.Path(settings.results_dir, "parts", "polyp").glob("*/seed0"))
    for method in ("sikd", "lambda_4", "teacher_onehot"):
        history = pd.read_csv(folder / f"{method}.history.csv")
        training = pd.read_csv(folder / f"{method}.training.csv").set_index("role")
        assert list(history.columns) == ar.HISTORY_COLUMNS
        for role, rows in history.groupby("role"):
            assert len(rows) == training.loc[role, "epochs"] and list(rows["epoch"]) == list(range(1, len(rows) + 1))
            assert rows["val_dice"].max() == pytest.approx(training.loc[role, "best_val_dice"])
            assert set(rows["run_key"]) == {training.loc[role, "run_key"]}
            # the loss's parts: a student's loss is its cross-entropy plus λ times its distillation term
            lam = 4.0 if (method, role) == ("lambda_4", "student") else 2.0 if role == "student" else 0.0
            assert rows["loss"].to_numpy() == pytest.approx((rows["ce"] + lam * rows["mse"]).to_numpy(), rel=1e-4)
            assert (rows["mse"] > 0).all() if role == "student" else (rows["mse"] == 0).all()


def test_plan_lists_the_jobs_a_run_would_start_and_writes_nothing(finished, tmp_path, capsys):
    """--plan: a fresh run's jobs (a follower trains only its student), a finished run's none; no file written."""
    import dataclasses

    settings, _, _ = finished
    fresh = dataclasses.replace(settings, out_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "results"))
    jobs = ar.plan_jobs(fresh)
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()
    by_methods = {tuple(j["methods"]): j for j in jobs}
    assert set(by_methods) == {("sikd",), ("lambda_4",), ("teacher_onehot",), ("baseline",)}
    config = fresh.config("polyp")
    teacher, student = (config.train_config(r, 0).epochs for r in ("teacher", "student"))
    assert by_methods[("sikd",)]["networks"] == [("teacher", "unet", teacher), ("student", "unet", student)]
    assert by_methods[("lambda_4",)]["follows_lead"] and by_methods[("lambda_4",)]["networks"] == [("student", "unet", student)]
    assert sum(j["unet_epochs"] for j in jobs) == 2 * teacher + 3 * student + config.train_config("baseline", 0).epochs
    lines = ar.plan_lines(jobs)
    assert len(lines) == len(jobs) + 1 and lines[-1].startswith(f"{len(jobs)} jobs")
    assert ar.plan_jobs(settings) == [] and ar.plan_lines([])[-1].startswith("nothing to train")


def test_plan_times_jobs_from_the_committed_histories(finished, tmp_path):
    """A job's minutes are its networks' epochs × the runs' median epoch seconds (epoch 1 left out, cuDNN tunes
    there), as a range over runs; a job with a network never timed has none, and the plan says how many it timed."""
    import dataclasses

    settings, _, _ = finished
    fresh = dataclasses.replace(settings, out_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "results"))
    assert all(job["minutes"] is None for job in ar.plan_jobs(fresh))
    teacher_seconds = {0: [1e6, 2.0, 4.0], 1: [1e6, 5.0, 5.0]}  # medians 3 and 5; the first epochs must not count
    for seed, seconds in teacher_seconds.items():
        rows = [{"role": "teacher", "epoch": e, "seconds": t} for e, t in enumerate(seconds, 1)]
        rows += [{"role": "student", "epoch": e, "seconds": t} for e, t in enumerate([1e6, 1.0, 1.0], 1)]
        folder = ar._parts(fresh, "polyp", seed)
        folder.mkdir(parents=True)
        pd.DataFrame(rows, columns=ar.HISTORY_COLUMNS).to_csv(folder / "sikd.history.csv", index=False)
    assert ar.measured_epoch_seconds(fresh, "polyp") == {("teacher", "unet"): (3.0, 5.0), ("student", "unet"): (1.0, 1.0)}
    jobs = {tuple(j["methods"]): j for j in ar.plan_jobs(fresh)}
    config = fresh.config("polyp")
    teacher, student = (config.train_config(r, 0).epochs for r in ("teacher", "student"))
    assert jobs[("sikd",)]["minutes"] == pytest.approx(((3 * teacher + student) / 60, (5 * teacher + student) / 60))
    assert jobs[("lambda_4",)]["minutes"] == pytest.approx((student / 60,) * 2)  # a follower: its student only
    assert jobs[("baseline",)]["minutes"] is None  # no baseline was timed
    lines = ar.plan_lines(list(jobs.values()))
    assert f"{sum(j['minutes'] is not None for j in jobs.values())} of {len(jobs)} jobs timed" in lines[-1]


def test_cli_ablate_plan_prints_and_trains_nothing(tmp_path, capsys):
    from sikd_utils.__main__ import main

    code = main(["ablate", "--preset", "tiny", "--tasks", "polyp", "--seeds", "0", "--variants", "lambda_4",
                 "--out-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"), "--plan"])
    out = capsys.readouterr().out
    assert code == 0 and "polyp seed 0 [sikd]: teacher unet" in out and "(after its group's lead)" in out
    assert "3 jobs" in out
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # the CLI's checks may make the folders, no more


def test_a_finish_only_stop_gets_its_second_chances(finished, tmp_path, monkeypatch):
    """A job --finish-only stopped is tried again (after RETRY_AFTER_SECONDS, at most SECOND_CHANCES times, only
    while time is left); one that then finishes lets its followers start. A hard deadline stop is not retried."""
    import dataclasses

    settings, _, _ = finished
    fresh = dataclasses.replace(settings, out_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "results"),
                                finish_only=True, max_minutes=30)
    calls = []

    def fake_run_group(settings, task, seed, methods, deadline, retry_after=0.0):
        calls.append((tuple(methods), retry_after))
        outcome = {"task": task, "seed": seed, "group": methods, "status": "stopped", "at": "x"}
        if methods == ["sikd"]:  # stopped by the estimate once, then it finishes
            return {**outcome, "unfinishable": True} if len(calls_of(("sikd",))) == 1 else {**outcome, "status": "done"}
        if methods == ["teacher_onehot"]:  # never can finish
            return {**outcome, "unfinishable": True}
        return outcome  # stopped by the deadline itself: not retried

    def calls_of(methods):
        return [c for c in calls if c[0] == methods]

    monkeypatch.setattr(ar, "run_group", fake_run_group)
    monkeypatch.setattr(ar, "RETRY_AFTER_SECONDS", 0.5)
    messages = []
    ar.ablate(fresh, log=messages.append)
    assert [r for _, r in calls_of(("sikd",))] == [0.0, 0.5]
    assert len(calls_of(("lambda_4",))) == 1  # the follower of sikd's lead, once it finished
    assert len(calls_of(("teacher_onehot",))) == 1 + ar.SECOND_CHANCES
    assert len(calls_of(("baseline",))) == 1
    assert any("will try again" in m and "second chance 3 of 3" in m for m in messages)
    calls.clear()
    ar.ablate(dataclasses.replace(fresh, max_minutes=2.3), log=messages.append)  # too little time for a retry
    assert len(calls_of(("teacher_onehot",))) == 1
