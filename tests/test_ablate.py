"""``python -m sikd_utils ablate`` end to end at toy scale: tidy files, shared networks, resuming."""

import json

import pandas as pd
import pytest

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
                 "--out-dir", settings.out_dir, "--results-dir", str(tmp_path), "--device", "cpu"])
    assert code == 0 and "DONE" in capsys.readouterr().out
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert "python -m sikd_utils" in prov["tasks"]["polyp"]["command"]
    # every method whose parts exist for the seeds is gathered, not only those asked for now
    assert set(prov["tasks"]["polyp"]["methods"]) == {"baseline", "sikd", "lambda_4", "teacher_onehot"}
