"""The evidence run end to end at toy scale: resumable, time-limited, tidy files, teacher gate."""

import json

import pandas as pd
import pytest

from sikd_utils import jobs

from fake_shifts import install
from sikd_utils import reproduce as rp
from sikd_utils.configuration import TestSet


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete toy evidence run (polyp, two seeds), shared by the tests that only read or reuse it."""
    mp = pytest.MonkeyPatch()
    install(mp)
    root = tmp_path_factory.mktemp("evidence")
    settings = rp.ReproduceSettings(preset="tiny", tasks=("polyp",), seeds=(0, 1), out_dir=str(root / "runs"),
                                    results_dir=str(root / "results"), device="cpu", command="test")
    messages = []
    code = rp.reproduce(settings, log=messages.append)
    yield settings, code, messages
    mp.undo()


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    install(monkeypatch)
    return rp.ReproduceSettings(preset="tiny", tasks=("polyp",), seeds=(0,), out_dir=str(tmp_path / "runs"),
                                results_dir=str(tmp_path / "results"), device="cpu", command="test")


def test_reproduce_writes_tidy_results(finished):
    settings, code, _ = finished
    assert code == rp.EXIT_DONE
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
    # the flag on each score row is its own seed's gate
    gates = training.set_index(["seed", "role"])["gate"]
    for _, row in scores[scores.method == "control"].iterrows():
        assert row["teacher_gate"] == gates[(row["seed"], "raw_teacher")]
    entry = prov["tasks"]["polyp"]
    for key in ("command", "commit", "device", "torch", "precision", "image_size", "base_channels",
                "steps_per_role", "wall_seconds"):
        assert key in entry, key
    assert set(entry["steps_per_role"]) == set(rp.ROLES)


def test_finished_tasks_and_seeds_are_reused(finished):
    settings, _, _ = finished
    messages = []
    assert rp.reproduce(settings, log=messages.append) == rp.EXIT_DONE
    assert any("skipped" in m for m in messages)
    assert rp.run_job(settings, "polyp", 0)["reused"]


def test_cli_reproduce_reuses_parts(finished, tmp_path, capsys):
    from sikd_utils.__main__ import main

    settings, _, _ = finished
    code = main(["reproduce", "--preset", "tiny", "--tasks", "polyp", "--seeds", "0", "--out-dir", settings.out_dir,
                 "--results-dir", str(tmp_path), "--device", "cpu"])
    assert code == 0
    assert "DONE" in capsys.readouterr().out
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["tasks"]["polyp"]["seeds"] == [0]
    assert pd.read_csv(tmp_path / "polyp.csv")["seed"].unique().tolist() == [0]


def test_reproduce_stops_at_the_deadline_and_resumes(fresh, monkeypatch):
    # too little time left: the job does not start
    assert rp.run_job(fresh, "polyp", 0, deadline=0.0)["status"] == "stopped"
    # time runs out after the second trained role: checkpoints stay, no part file, exit status 3
    calls = []

    def after_epoch(self, record):
        calls.append(record)
        if len(calls) == 2:
            raise rp.TimeUp("epoch")

    monkeypatch.setattr(rp._Deadline, "after_epoch", after_epoch)
    messages = []
    assert rp.reproduce(fresh, log=messages.append) == rp.EXIT_UNFINISHED
    assert any("UNFINISHED" in m for m in messages)
    assert not (rp.Path(fresh.results_dir) / "polyp.csv").exists()
    assert len(list(rp.Path(fresh.out_dir).glob("polyp/*/seed0/*/best.pt"))) == 2
    # the stopped piece's time is kept for the job's wall time
    (spent,) = rp.Path(fresh.out_dir).glob("parts/polyp/*/seed0.seconds")
    assert float(spent.read_text()) > 0
    spent.write_text("1000.0\n")  # as if the earlier pieces had taken 1000 s
    # the rerun trains only the three remaining roles
    calls.clear()
    monkeypatch.setattr(rp._Deadline, "after_epoch", lambda self, record: calls.append(record))
    assert rp.reproduce(fresh, log=messages.append) == rp.EXIT_DONE
    assert len(calls) == 3
    training = pd.read_csv(rp.Path(fresh.results_dir) / "polyp_training.csv")
    assert (training["job_seconds"] > 1000).all()
    assert json.loads((rp.Path(fresh.results_dir) / "provenance.json").read_text())["tasks"]["polyp"]["wall_seconds"] > 1000


def test_parallel_workers_share_the_cached_benchmark(fresh):
    # workers are fresh processes: they read the benchmark cache the parent wrote (fake registry here)
    rp._splits(fresh, fresh.config("polyp"))
    parallel = rp.ReproduceSettings(**{**fresh.__dict__, "workers": 2})
    assert rp.reproduce(parallel, log=lambda m: None) == rp.EXIT_DONE
    scores, _, _ = rp.load_results(fresh.results_dir)
    assert scores["seed"].unique().tolist() == [0]


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


def test_mps_hint_only_when_workers_share_a_gpu_without_the_daemon():
    from sikd_utils.reproduce import mps_hint

    assert "nvidia-cuda-mps-control -d" in mps_hint(10, 0, cuda=True, mps_running=False)
    assert mps_hint(10, 0, cuda=True, mps_running=True) is None
    assert mps_hint(1, 0, cuda=True, mps_running=False) is None
    assert mps_hint(4, 0, cuda=False, mps_running=False) is None  # CPU workers: nothing to share
    assert mps_hint(2, 2, cuda=True, mps_running=False) is None  # one worker per GPU
    assert mps_hint(4, 2, cuda=True, mps_running=False) is not None


def test_gpu_piece_keeps_a_commands_own_time_limit_and_earlier_parts(tmp_path):
    """scripts/gpu_piece.sh gives every command the piece's --max-minutes, unless the command names its own,
    and puts back the part files an earlier piece on the same machine finished."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    command = (f"reproduce --preset tiny --tasks polyp --seeds 0 --device cpu --out-dir {tmp_path / 'runs'} "
               f"--results-dir {tmp_path / 'results'} --max-minutes 0.01")
    parts, keep = tmp_path / "parts", tmp_path / "keep"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "SIKD_PIECE_PARTS": str(parts), "SIKD_PIECE_KEEP": str(keep)}

    def piece():
        done = subprocess.run(["bash", "scripts/gpu_piece.sh", str(tmp_path / "out"), "9", command], cwd=root,
                              capture_output=True, text=True, timeout=120, env=env)
        log = (tmp_path / "out" / "run1.log").read_text()
        assert done.returncode != 0, done.stdout + done.stderr + log
        assert "--max-minutes 0.01 leaves no job time" in log  # the command's 0.01 min won, not the piece's 9
        assert (tmp_path / "out" / "piece.tgz").stat().st_size > 0

    (parts / "fundus").mkdir(parents=True)
    (parts / "fundus" / "finished.csv").write_text("a part a piece finished\n")
    piece()
    # the next call's fresh copy of the tree lacks it (the caller never had it) but has one of its own
    (parts / "fundus" / "finished.csv").unlink()
    (parts / "fundus" / "sent.csv").write_text("sent by the caller\n")
    (keep / "fundus" / "sent.csv").write_text("an older copy\n")
    piece()
    assert (parts / "fundus" / "finished.csv").read_text() == "a part a piece finished\n"  # put back
    assert (parts / "fundus" / "sent.csv").read_text() == "sent by the caller\n"  # not replaced


def test_gpu_piece_can_stop_the_neighbours_with_the_first_command(tmp_path):
    """SIKD_PIECE_STOP_WITH_FIRST=1: when the first command ends, the others are stopped, workers included
    (a neighbour here is a stand-in python3 that starts a worker and waits 60 s), say so in their logs, and
    the piece exits 3 (run again); without it the piece waits for every command."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    fake = tmp_path / "bin"
    fake.mkdir()
    worker = tmp_path / "worker.pid"
    (fake / "python3").write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$3" = neighbour ]; then sleep 60 & echo $! > {worker}; wait; exit 0; fi\n'
        # the first command ends once the neighbour's worker is up (at most 10 s)
        f'if [ "$3" = short ]; then for i in $(seq 100); do [ -s {worker} ] && break; sleep 0.1; done; exit 0; fi\n'
        f'if [ "$3" = quick ]; then touch {tmp_path / "quick.done"}; exit 0; fi\n'
        f'if [ "$3" = waiter ]; then while [ ! -e {tmp_path / "quick.done"} ]; do sleep 0.1; done; sleep 1; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n')
    (fake / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "SIKD_PIECE_PARTS": str(tmp_path / "parts"),
           "SIKD_PIECE_KEEP": str(tmp_path / "keep"), "SIKD_PIECE_STOP_WITH_FIRST": "1"}
    began = time.time()
    done = subprocess.run(["bash", "scripts/gpu_piece.sh", str(tmp_path / "out"), "9", "short", "neighbour"],
                          cwd=root, capture_output=True, text=True, timeout=50, env=env)
    assert time.time() - began < 30, "the neighbour was waited for"
    assert done.returncode == rp.EXIT_UNFINISHED, done.stdout + done.stderr
    assert "STOPPED: the first command ended" in (tmp_path / "out" / "run2.log").read_text()
    assert "STOPPED" not in (tmp_path / "out" / "run1.log").read_text()
    pid = int(worker.read_text())
    for _ in range(50):  # the neighbour's worker went with it
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        raise AssertionError("the neighbour's worker process outlived the piece")
    # a neighbour that ended by itself before the first command is not stopped: the piece is done
    done = subprocess.run(["bash", "scripts/gpu_piece.sh", str(tmp_path / "out2"), "9", "waiter", "quick"],
                          cwd=root, capture_output=True, text=True, timeout=50, env=env)
    assert done.returncode == 0 and "STOPPED" not in (tmp_path / "out2" / "run2.log").read_text()
    # a neighbour with --finish-only stops what it cannot finish by itself: it is waited for, not stopped
    done = subprocess.run(["bash", "scripts/gpu_piece.sh", str(tmp_path / "out3"), "9", "quick",
                           "waiter --finish-only"], cwd=root, capture_output=True, text=True, timeout=50, env=env)
    assert done.returncode == 0 and "STOPPED" not in (tmp_path / "out3" / "run2.log").read_text()


@pytest.fixture()
def fresh_process(monkeypatch):
    """The per-process timings _Deadline keeps, as in a worker that has timed nothing yet."""
    monkeypatch.setattr(jobs, "_measured", {"test_seconds": 0.0, "tests": 0, "epoch_seconds": None})


def test_finish_only_stops_a_job_that_cannot_end_by_the_deadline(fresh_process):
    import time

    # 100 s left; after epoch 2 of 20 at 10 s each, 18 epochs and 10 test sets are left: > 200 s
    clock = rp._Deadline(time.time() + 100, finish_only=True)
    clock.plan(20, 0, 10)
    clock.after_epoch({"epoch": 1, "seconds": 10.0})  # not judged on its first epoch alone
    with pytest.raises(rp.TimeUp, match="epoch 2: cannot finish"):
        clock.after_epoch({"epoch": 2, "seconds": 10.0})
    # the same job with time enough goes on; without finish_only only the next epoch must fit
    roomy = rp._Deadline(time.time() + 1000, finish_only=True)
    roomy.plan(20, 0, 10)
    plain = rp._Deadline(time.time() + 100)
    plain.plan(20, 0, 10)
    for epoch in (1, 2):
        roomy.after_epoch({"epoch": epoch, "seconds": 10.0})
        plain.after_epoch({"epoch": epoch, "seconds": 10.0})


def test_finish_only_is_not_fooled_by_a_crowded_first_epoch(fresh_process):
    import time

    # as measured with 9 fundus workers starting at once: 6 s for the first epoch, 1.1 s after it
    clock = rp._Deadline(time.time() + 60, finish_only=True)
    clock.plan(20, 0, 0)
    clock.after_epoch({"epoch": 1, "seconds": 6.0})  # 19 x 6 s would not fit in 60 s
    clock.after_epoch({"epoch": 2, "seconds": 1.1})  # 18 x 1.1 s x 1.1 does
    assert jobs._measured["epoch_seconds"] == pytest.approx(1.1)


def test_finish_only_counts_later_runs_and_leaves_out_the_first_epoch(fresh_process):
    import time

    clock = rp._Deadline(time.time() + 3000, finish_only=True)
    clock.plan(5, 15, 0)  # a teacher's last epochs, then a student's 15
    clock.after_epoch({"epoch": 1, "seconds": 50.0})  # cuDNN autotuning: not the rate
    clock.after_epoch({"epoch": 2, "seconds": 5.0})
    # left after epoch 2: 3 + 15 epochs at 5 s (x 1.1); the 50 s epoch would make it 990 s
    assert clock.seconds_left_needed(2) == pytest.approx(1.1 * 5.0 * 18)
    # test sets at this process's measured mean once it has timed some, TEST_SECONDS_GUESS before
    clock.plan(1, 0, 4)
    assert clock.seconds_left_needed(0) == pytest.approx(1.1 * 5.0 + 4 * rp.TEST_SECONDS_GUESS)
    jobs._measured.update(test_seconds=3.0, tests=6)
    assert clock.seconds_left_needed(0) == pytest.approx(1.1 * 5.0 + 4 * 0.5)


def test_finish_only_does_not_begin_what_this_process_cannot_finish(fresh_process):
    import time

    jobs._measured["epoch_seconds"] = 30.0  # the last epoch this worker trained, for an earlier job
    with pytest.raises(rp.TimeUp, match="start: cannot finish"):
        rp._Deadline(time.time() + 300, finish_only=True).plan(20, 0, 0)
    # a run resuming a checkpoint may have few epochs left: it is judged after its first epoch here
    rp._Deadline(time.time() + 300, finish_only=True).plan(20, 0, 0, begun=True)
    rp._Deadline(time.time() + 300).plan(20, 0, 0)  # and without finish_only nothing is refused


def test_finish_only_judges_each_run_from_its_own_second_epoch(fresh_process):
    import time

    # as in an abdomen SwinUNETR job: teacher epochs of 3.7 s, then the student's first of 10.8 s and 6.7 s after
    clock = rp._Deadline(time.time() + 240, finish_only=True)
    clock.plan(3, 20, 52)
    for epoch in (1, 2, 3):
        clock.after_epoch({"epoch": epoch, "seconds": 3.7})
    clock.plan(20, 0, 52)  # the student: its first epoch is not judged, nor taken as its rate
    clock.after_epoch({"epoch": 1, "seconds": 10.8})
    assert clock.seconds_left_needed(1) == pytest.approx(1.1 * 3.7 * 19 + 52 * rp.TEST_SECONDS_GUESS)
    clock.after_epoch({"epoch": 2, "seconds": 6.7})  # 18 x 6.7 x 1.1 + 104 s fit in 240 s; 10.8 s would not
    assert clock.seconds_left_needed(2) == pytest.approx(1.1 * 6.7 * 18 + 52 * rp.TEST_SECONDS_GUESS)
    with pytest.raises(rp.TimeUp, match="epoch 3: cannot finish"):
        clock.after_epoch({"epoch": 3, "seconds": 30.0})
