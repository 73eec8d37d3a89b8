"""The evidence run end to end at toy scale: resumable, time-limited, tidy files, teacher gate."""

import json

import pandas as pd
import pytest

from fake_shifts import install
from sikd_utils import reproduce as rp
from sikd_utils.configuration import TestSet


@pytest.fixture
def settings(tmp_path, monkeypatch):
    install(monkeypatch)
    return rp.ReproduceSettings(preset="tiny", tasks=("polyp",), seeds=(0, 1), out_dir=str(tmp_path / "runs"),
                                results_dir=str(tmp_path / "results"), device="cpu", command="test")


def test_reproduce_writes_tidy_results_and_skips_finished_tasks(settings):
    messages = []
    assert rp.reproduce(settings, log=messages.append) == rp.EXIT_DONE
    scores, training, prov = rp.load_results(settings.results_dir)
    assert {"task", "seed", "method", "family", "severity", "dice", "hd95_mm", "teacher_gate"} <= set(scores.columns)
    assert set(scores["method"]) == {"baseline", "sikd", "control"}
    # clean at 0, target and every registry family at the preset's severities (tiny: 1 and 5)
    keys = set(zip(scores["family"], scores["severity"]))
    assert keys == {("clean", 0)} | {(f, s) for f in ("target", "gamma", "squash") for s in (1, 5)}
    assert len(scores) == 2 * 3 * len(keys)
    # HD95 where the page reports it, not on the families (the slow part)
    assert scores.loc[scores.family.isin(["gamma", "squash"]), "hd95_mm"].isna().all()
    assert scores.loc[scores.family == "clean", "hd95_mm"].notna().any()
    assert set(training["role"]) == set(rp.ROLES) and len(training) == 2 * len(rp.ROLES)
    assert (training["steps"] > 0).all()
    assert set(training.dropna(subset=["gate"])["gate"]) <= {"pass", "FAIL"}
    entry = prov["tasks"]["polyp"]
    for key in ("command", "commit", "device", "torch", "precision", "image_size", "base_channels",
                "steps_per_role", "wall_seconds"):
        assert key in entry, key
    assert set(entry["steps_per_role"]) == set(rp.ROLES)
    # a second run skips the finished task and trains nothing
    messages.clear()
    assert rp.reproduce(settings, log=messages.append) == rp.EXIT_DONE
    assert any("skipped" in m for m in messages)


def test_reproduce_stops_at_the_deadline_and_resumes(settings, monkeypatch):
    # a deadline already (almost) passed: every job stops before training, nothing is written
    assert rp.run_job(settings, "polyp", 0, deadline=0.0)["status"] == "stopped"
    messages = []
    monkeypatch.setattr(rp.time, "time", lambda t0=rp.time.time(): t0)  # frozen clock
    tiny = rp.ReproduceSettings(**{**settings.__dict__, "max_minutes": 0.5})
    assert rp.reproduce(tiny, log=messages.append) == rp.EXIT_UNFINISHED
    assert any("UNFINISHED" in m for m in messages)
    assert not (rp.Path(settings.results_dir) / "polyp.csv").exists()
    monkeypatch.undo()
    install(monkeypatch)
    assert rp.reproduce(settings, log=messages.append) == rp.EXIT_DONE


def test_finished_seed_is_reused(settings):
    first = rp.run_job(settings, "polyp", 0)
    assert first["status"] == "done" and not first["reused"]
    assert rp.run_job(settings, "polyp", 0)["reused"]


def test_parallel_workers_share_the_cached_benchmark(settings):
    # workers are fresh processes: they read the benchmark cache the parent wrote (fake registry here)
    rp._splits(settings, settings.config("polyp"))
    parallel = rp.ReproduceSettings(**{**settings.__dict__, "workers": 2})
    assert rp.reproduce(parallel, log=lambda m: None) == rp.EXIT_DONE
    scores, _, _ = rp.load_results(settings.results_dir)
    assert sorted(scores["seed"].unique()) == [0, 1]


def test_bad_settings_name_the_choices():
    with pytest.raises(ValueError, match="tasks must be"):
        rp.ReproduceSettings(tasks=("brain",))
    with pytest.raises(ValueError, match="workers"):
        rp.ReproduceSettings(workers=0)


def test_test_set_keys_are_typed():
    key = TestSet("target", 2.0)
    assert key == "target@2" and key.family == "target" and key.severity == 2 and isinstance(key.severity, int)
    assert TestSet("clean", 0) == "source" and TestSet.of("source").family == "clean"
    assert TestSet.of("blur@3").key == ("blur", 3)
    assert TestSet.of("mnms").key == ("mnms", 0)
    with pytest.raises(ValueError, match="clean test set"):
        TestSet("clean", 2)
    import pickle

    assert pickle.loads(pickle.dumps(key)).key == ("target", 2)


def test_cli_reproduce_runs(settings, capsys):
    from sikd_utils.__main__ import main

    code = main(["reproduce", "--preset", "tiny", "--tasks", "polyp", "--seeds", "0", "--out-dir", settings.out_dir,
                 "--results-dir", settings.results_dir, "--device", "cpu"])
    assert code == 0
    assert "DONE" in capsys.readouterr().out
    prov = json.loads((rp.Path(settings.results_dir) / "provenance.json").read_text())
    assert prov["tasks"]["polyp"]["seeds"] == [0]
    assert pd.read_csv(rp.Path(settings.results_dir) / "polyp.csv")["seed"].unique().tolist() == [0]
