"""Results and checkpoints are data (issue 32): nothing overwrites, corrupts or silently reuses them.

Each case asserts the message (naming the file, value and rule), that nothing was written, and — where the
command would touch ``book/results/`` — that the committed files are byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sikd_utils import reproduce as rp
from sikd_utils.averaging import class_wise_mean
from sikd_utils.checkpoints import read_checkpoint, weights_digest
from sikd_utils.models import UNet
from sikd_utils.results_schema import ResultsFileError, check_task_files
from sikd_utils.run_guard import FolderBusy, FolderLock
from sikd_utils.train import TrainConfig, build_model, load_model, train

try:
    from .conftest import ToySlices
    from .fake_results import write_fake_ablations, write_fake_results
except ImportError:  # pragma: no cover - depends on how pytest imports tests/
    from conftest import ToySlices
    from fake_results import write_fake_ablations, write_fake_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "results"


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".sikd-run")):
        h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def committed():
    """The digest of ``book/results/``, which no test here may change."""
    before = _digest(RESULTS)
    yield before
    assert _digest(RESULTS) == before, "a test changed the committed results"


def _cli(argv, capsys):
    from sikd_utils.__main__ import main

    status = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sikd: error:")]
    assert "Traceback" not in err
    return status, (lines[0] if lines else err)


# ------------------------------------------------------------------ committed results are never replaced
@pytest.mark.parametrize("argv, words", [
    (["reproduce", "--preset", "tiny", "--tasks", "polyp", "--seeds", "0"],
     ["book/results/polyp.csv holds another run", "preset gpu", "preset tiny", "--replace-results", "--results-dir"]),
    (["ablate", "--preset", "tiny", "--tasks", "fundus", "--seeds", "0", "--variants", "lambda_4"],
     ["book/results/ablations/fundus.csv holds another run", "preset tiny", "--replace-results"]),
])
def test_a_toy_run_cannot_replace_the_committed_evidence(argv, words, committed, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    status, line = _cli([*argv, "--out-dir", str(tmp_path / "runs"), "--device", "cpu"], capsys)
    assert status == 1
    for word in words:
        assert word in line, line
    assert not (tmp_path / "runs").exists(), "refused before any work"


def test_replace_results_and_another_folder_are_the_ways_out(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    write_fake_results(folder, tasks=("polyp",))
    settings = rp.ReproduceSettings(preset="tiny", tasks=("polyp",), seeds=(0,), out_dir=str(tmp_path / "runs"),
                                    results_dir=str(folder), device="cpu")
    with pytest.raises(ValueError, match="holds another run"):
        rp.reproduce(settings, log=lambda m: None)
    ran = []
    monkeypatch.setattr(rp, "_run_job_safely", lambda s, task, seed, deadline: ran.append(task) or
                        {"task": task, "seed": seed, "status": "stopped"})
    import dataclasses

    assert rp.reproduce(dataclasses.replace(settings, replace_results=True), log=lambda m: None) == rp.EXIT_UNFINISHED
    assert rp.reproduce(dataclasses.replace(settings, results_dir=str(tmp_path / "elsewhere")),
                        log=lambda m: None) == rp.EXIT_UNFINISHED
    assert ran == ["polyp", "polyp"]


def test_a_partial_ablation_gather_never_replaces_a_fuller_one():
    from sikd_utils.ablate import _narrower_than

    entry = {"preset": "gpu", "run_key": "k", "seeds": [0, 1, 2, 3, 4], "methods": {"sikd": {}, "lambda_4": {}}}
    assert "seed(s) 1 2 3 4" in _narrower_than(entry, "gpu", "k", ["sikd", "lambda_4"], [0])
    assert "method(s) lambda_4" in _narrower_than(entry, "gpu", "k", ["sikd"], [0, 1, 2, 3, 4])
    assert _narrower_than(entry, "gpu", "k", ["sikd", "lambda_4", "bottleneck"], [0, 1, 2, 3, 4]) is None
    assert _narrower_than(entry, "tiny", "other", ["sikd"], [0]) is None  # another run: refused up front instead


# ------------------------------------------------------------------ requests refused before work
@pytest.mark.parametrize("extra, words", [
    (["--seeds", "0", "0"], ["seeds [0, 0] repeat seed(s) [0]"]),
    (["--gpus", "1"], ["--gpus 1 asked for", "sees 0 CUDA GPU"]),
    (["--max-minutes", "1.5"], ["--max-minutes 1.5 leaves no job time", "at least 1.9"]),
    (["--families", "bogus"], ["unknown shift family ['bogus'] for polyp"]),
    (["--device", "cuda"], ["device 'cuda' asked for", "sees 0 CUDA GPU"]),
])
def test_reproduce_refuses_before_work(extra, words, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    argv = ["reproduce", "--preset", "tiny", "--tasks", "polyp", "--out-dir", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results"), *extra]
    status, line = _cli(argv, capsys)
    assert status == 1, line
    for word in words:
        assert word in line, line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


def test_ablate_refuses_a_parts_dir_it_cannot_write(tmp_path, capsys):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    base = ["ablate", "--preset", "tiny", "--tasks", "fundus", "--out-dir", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results"), "--device", "cpu"]
    status, line = _cli([*base, "--parts-dir", str(afile)], capsys)
    assert status == 1 and f"--parts-dir {afile} is a file, expected a folder" in line
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "read-only"
        locked.mkdir()
        locked.chmod(0o500)
        status, line = _cli([*base, "--parts-dir", str(locked / "parts")], capsys)
        assert status == 1 and "cannot be written" in line
    assert not (tmp_path / "runs").exists()


def test_a_failed_job_says_what_failed_and_whether_a_rerun_helps():
    outcome = {"task": "polyp", "seed": 0, "status": "failed", "error": "ValueError: bad family",
               "traceback": "Traceback (most recent call last): ..."}
    said = []
    assert rp.closing_status([outcome], ["polyp"], 0.0, said.append, "done") == rp.EXIT_UNFINISHED
    assert said[0] == "FAILED polyp seed 0: ValueError: bad family — a rerun will fail the same way until the " \
                      "cause above is fixed"
    assert not any("Traceback" in line for line in said) and "every job FAILED" in said[-1]
    said.clear()
    rp.closing_status([outcome], ["polyp"], 0.0, said.append, "done", debug=True)
    assert any("Traceback" in line for line in said)
    assert "fewer --workers" in rp.rerun_advice("OutOfMemoryError: CUDA out of memory")


# ------------------------------------------------------------------ one run per output folder
def test_one_run_per_folder_and_stale_locks_are_reported(tmp_path):
    said = []
    with FolderLock(tmp_path, "first"):
        with pytest.raises(FolderBusy, match=rf"{tmp_path} is in use by another run \(pid {os.getpid()} on this "
                                             r"machine.*first\)"):
            FolderLock(tmp_path, "second").__enter__()
        settings = rp.ReproduceSettings(preset="tiny", tasks=("polyp",), seeds=(0,), out_dir=str(tmp_path),
                                        results_dir=str(tmp_path / "results"), device="cpu")
        with pytest.raises(FolderBusy):
            rp.reproduce(settings, log=said.append)
    assert not (tmp_path / ".sikd-run.lock").exists()  # released
    ended = subprocess.Popen(["true"])
    ended.wait()
    (tmp_path / ".sikd-run.lock").write_text(json.dumps({"pid": ended.pid, "host": os.uname().nodename,
                                                         "started": "then", "command": "old"}))
    with FolderLock(tmp_path, "new", log=said.append):
        assert json.loads((tmp_path / ".sikd-run.lock").read_text())["pid"] == os.getpid()
    assert any("removed a stale lock" in line and str(ended.pid) in line for line in said)


# ------------------------------------------------------------------ results files have a schema
def _copy(tmp_path, kind="evidence"):
    if kind == "evidence":
        folder = tmp_path / "results"
        shutil.copytree(RESULTS, folder, ignore=shutil.ignore_patterns("ablations"))
    else:
        folder = tmp_path / "ablations"
        shutil.copytree(RESULTS / "ablations", folder, ignore=shutil.ignore_patterns("parts"))
    return folder


def _edit(path, change):
    frame = pd.read_csv(path)
    change(frame).to_csv(path, index=False)


@pytest.mark.parametrize("name, damage, words", [
    ("Dice x 100", lambda f: _edit(f / "polyp.csv", lambda d: d.assign(dice=d["dice"] * 100)),
     ["polyp.csv, row 1 (line 2)", "'dice'", "at most 1"]),
    ("truncated to 60 %", lambda f: (f / "polyp.csv").write_text(
        (f / "polyp.csv").read_text()[: int(0.6 * len((f / "polyp.csv").read_text()))]), ["polyp.csv"]),
    ("a missing seed", lambda f: _edit(f / "polyp.csv", lambda d: d[d["seed"] != 3]),
     ["holds seeds [0, 1, 2, 4], its provenance says [0, 1, 2, 3, 4]"]),
    ("a duplicated row", lambda f: _edit(f / "polyp.csv", lambda d: pd.concat([d, d.iloc[[5]]])),
     ["a second row for (task='polyp', seed=0, method='baseline'"]),
    ("NaN Dice", lambda f: _edit(f / "polyp.csv", lambda d: d.assign(dice=d["dice"].where(d.index != 7))),
     ["row 8 (line 9)", "column 'dice' is empty"]),
    ("a renamed column", lambda f: _edit(f / "polyp.csv", lambda d: d.rename(columns={"dice": "Dice"})),
     ["missing column(s) ['dice']"]),
    ("an empty CSV", lambda f: (f / "polyp.csv").write_text(""), ["polyp.csv: not a readable CSV file"]),
    ("bad JSON", lambda f: (f / "provenance.json").write_text("{\"tasks\": {"), ["provenance.json: not valid JSON"]),
    ("a missing method", lambda f: _edit(f / "polyp.csv", lambda d: d[~((d["seed"] == 2) & (d["method"] == "sikd"))]),
     ["seed 2 lacks method(s) ['sikd']"]),
    ("a missing test set", lambda f: _edit(f / "polyp.csv", lambda d: d.drop(index=d.index[-1])),
     ["lacks test set(s)"]),
    ("a training file without its gate column", lambda f: _edit(f / "polyp_training.csv",
                                                                 lambda d: d.drop(columns="gate")),
     ["polyp_training.csv: missing column(s) ['gate']"]),
])
def test_a_damaged_results_file_cannot_reach_a_page(name, damage, words, tmp_path, committed):
    from sikd_utils import evidence

    folder = _copy(tmp_path)
    damage(folder)
    with pytest.raises(ResultsFileError) as info:
        evidence.load_results(folder)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_the_committed_results_keep_their_schema():
    for task in ("cardiac", "abdomen", "fundus", "polyp", "breast_us"):
        check_task_files(RESULTS, task)
    for task in ("fundus", "abdomen"):
        check_task_files(RESULTS / "ablations", task, "ablation_training")


def test_an_ablation_file_missing_a_method_is_refused(tmp_path):
    from sikd_utils import why

    folder = write_fake_ablations(tmp_path / "ablations")
    _edit(folder / "fundus.csv", lambda d: d[d["method"] != "lambda_4"])
    with pytest.raises(ResultsFileError, match="lacks method.*lambda_4"):
        why.load_results(folder)


def test_a_commit_unknown_to_the_repository_is_refused(tmp_path):
    folder = write_fake_results(tmp_path / "repo" / "results", tasks=("polyp",))
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    subprocess.run(["git", "-C", str(tmp_path / "repo"), "-c", "user.name=t", "-c", "user.email=t@t", "commit",
                    "-q", "--allow-empty", "-m", "x"], check=True)
    with pytest.raises(ResultsFileError, match="commit 'abc1234' is not in this repository's history"):
        rp.load_results(folder)


# ------------------------------------------------------------------ take_piece checks what it takes
def _take_piece_module():
    spec = importlib.util.spec_from_file_location("take_piece", ROOT / "scripts" / "take_piece.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pack(tmp_path, folder) -> Path:
    tarball = tmp_path / "piece.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname="book/results")
    return tarball


def test_take_piece_refuses_a_truncated_csv_and_takes_nothing(tmp_path):
    take = _take_piece_module()
    ours = write_fake_results(tmp_path / "ours", tasks=("polyp", "cardiac"), seed=1)
    theirs = write_fake_results(tmp_path / "theirs", tasks=("polyp", "cardiac"), seed=2)
    prov = json.loads((theirs / "provenance.json").read_text())
    for entry in prov["tasks"].values():
        entry["date"] = "tomorrow"  # newer than ours ("today")
    (theirs / "provenance.json").write_text(json.dumps(prov))
    text = (theirs / "cardiac.csv").read_text()
    (theirs / "cardiac.csv").write_text(text[: len(text) // 2])
    before = _digest(ours)
    with pytest.raises(ResultsFileError, match="cardiac.csv"):
        take.take_piece(_pack(tmp_path, theirs), ours)
    assert _digest(ours) == before  # polyp, which was fine, was not taken either


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(os.urandom(300)), "is not a readable tar archive"),
    (lambda p: None, "no piece at"),
    ("truncated", "is not a readable tar archive"),
])
def test_take_piece_names_a_bad_tarball_in_one_line(make, words, tmp_path, capsys, monkeypatch):
    take = _take_piece_module()
    tarball = tmp_path / "piece.tgz"
    if make == "truncated":
        whole = _pack(tmp_path, write_fake_results(tmp_path / "theirs")).read_bytes()
        tarball.write_bytes(whole[: len(whole) // 2])
    else:
        make(tarball)
    monkeypatch.setattr("sys.argv", ["take_piece.py", str(tarball), "--results-dir", str(tmp_path / "ours")])
    with pytest.raises(SystemExit) as info:
        take.main()
    assert str(info.value).startswith("take_piece: error:") and words in str(info.value)
    assert "nothing was taken" in str(info.value) and not (tmp_path / "ours").exists()


# ------------------------------------------------------------------ checkpoints carry a digest
def _trained(tmp_path, epochs=2):
    data = ToySlices(n=8, seed=0)
    config = TrainConfig(role="baseline", epochs=epochs, batch_size=4, seed=0, progress=False)
    model = build_model("baseline", 1, 3, 4, seed=0)
    train(model, data, config, checkpoint_dir=tmp_path / "run")
    return data, config


def _damage(path: Path) -> None:
    ckpt = torch.load(path, weights_only=True)
    name = next(iter(ckpt["model"]))
    ckpt["model"][name] = ckpt["model"][name].clone()
    ckpt["model"][name].view(-1)[0] += 1.0  # one weight changed; the recorded digest is not
    torch.save(ckpt, path)


def test_a_damaged_checkpoint_is_neither_reused_nor_resumed(tmp_path):
    data, config = _trained(tmp_path)
    last, best = tmp_path / "run" / "last.pt", tmp_path / "run" / "best.pt"
    assert read_checkpoint(last)["weights_digest"] == weights_digest(read_checkpoint(last)["model"])
    _damage(last)
    with pytest.raises(ValueError, match=rf"checkpoint {last} is damaged: .*neither reused nor resumed"):
        train(build_model("baseline", 1, 3, 4, seed=0), data, config, checkpoint_dir=tmp_path / "run")
    _damage(best)
    with pytest.raises(ValueError, match=rf"checkpoint {best} is damaged"):
        load_model(tmp_path / "run")


def test_checkpoints_without_their_keys_or_with_mismatched_weights_are_named(tmp_path):
    data, config = _trained(tmp_path, epochs=1)
    last = tmp_path / "run" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    torch.save({k: v for k, v in ckpt.items() if k != "optimizer"}, last)
    with pytest.raises(ValueError, match=rf"checkpoint {last} lacks \['optimizer'\]; it cannot be resumed"):
        train(build_model("baseline", 1, 3, 4, seed=0), data, TrainConfig(role="baseline", epochs=2, batch_size=4,
                                                                           seed=0, progress=False),
              checkpoint_dir=tmp_path / "run")
    torch.save({k: v for k, v in ckpt.items() if k != "architecture"}, last)
    with pytest.raises(ValueError, match=r"lacks \['architecture'\]"):
        load_model(last)
    wrong = {**ckpt, "architecture": {**ckpt["architecture"], "base_channels": 8}}
    wrong.pop("weights_digest")
    torch.save(wrong, last)
    with pytest.raises(ValueError, match=rf"checkpoint {last}: its weights do not fit the architecture it records"):
        load_model(last)


def test_the_refusal_of_other_settings_names_the_command_line_way_out(tmp_path):
    data, _ = _trained(tmp_path, epochs=1)
    other = TrainConfig(role="baseline", epochs=1, batch_size=4, seed=0, progress=False, lr=5e-4)
    with pytest.raises(ValueError, match=r"another run folder \(--out-dir on the command line\), or delete"):
        train(build_model("baseline", 1, 3, 4, seed=0), data, other, checkpoint_dir=tmp_path / "run")


# ------------------------------------------------------------------ the networks check their input
@pytest.mark.parametrize("x, train_mode, kind, words", [
    (torch.zeros(2, 1, 32, 32, dtype=torch.int64), False, TypeError, "floating-point image tensor, got torch.int64"),
    (torch.zeros(2, 1, 32, 32, dtype=torch.float64), False, TypeError, "weights are torch.float32 but its input is "
                                                                        "torch.float64"),
    (torch.zeros(2, 1, 0, 32), False, ValueError, "empty input of shape (2, 1, 0, 32)"),
    (torch.zeros(1, 1, 3, 3), True, ValueError, "training mode got input (1, 1, 3, 3)"),
    (torch.full((2, 1, 32, 32), float("nan")), False, ValueError, "2048 non-finite value(s)"),
])
def test_unet_names_bad_input(x, train_mode, kind, words):
    net = UNet(1, 3, base_channels=4).train(train_mode)
    with pytest.raises(kind) as info:
        net(x)
    assert words in str(info.value)
    assert "sikd_utils" in str(info.traceback[-1].path)


def test_class_wise_mean_refuses_nan_images():
    image = torch.rand(1, 1, 8, 8)
    image[0, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="image holds 1 non-finite value"):
        class_wise_mean(image, torch.zeros(1, 8, 8, dtype=torch.long), 2)


def test_a_student_listed_before_its_teacher_is_refused_before_any_training(tmp_path):
    import dataclasses

    from sikd_utils.configuration import preset_config, synthetic_splits
    from sikd_utils.orchestration import train_roles

    config = dataclasses.replace(preset_config("tiny", "polyp", device="cpu"), out_dir=str(tmp_path / "runs"))
    splits = synthetic_splits(dataclasses.replace(config, severities=(), shape_shift=False))
    with pytest.raises(ValueError, match=r"role 'student' needs a trained 'teacher': put 'teacher' before 'student' "
                                         r"in roles \(got \['baseline', 'student', 'teacher'\]\)"):
        train_roles(config, splits, ["baseline", "student", "teacher"], seed=0)
    assert not list(tmp_path.rglob("*.pt")), "the baseline before it was not trained"


def test_a_refused_ablation_lock_releases_those_already_taken(tmp_path):
    from sikd_utils.ablate import AblationSettings, ablate

    settings = AblationSettings(preset="tiny", tasks=("fundus",), seeds=(0,), out_dir=str(tmp_path / "runs"),
                                results_dir=str(tmp_path / "results"), evidence_dir=None, device="cpu")
    with FolderLock(tmp_path / "results", "another run"):
        with pytest.raises(FolderBusy, match="another run"):
            ablate(settings, log=lambda m: None)
    assert not (tmp_path / "runs" / ".sikd-run.lock").exists(), "the out-dir lock taken first was released"
