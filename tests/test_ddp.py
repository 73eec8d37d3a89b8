"""Data-parallel training (sikd_utils.distributed): two CPU processes over gloo train as one process does.

The two-rank runs are spawned once per test session (fixture ``ranks``: two torch.multiprocessing
ranks, a file:// rendezvous, every scenario in turn; xdist workers share the results) and each test
compares its scenario with a single-process run at the same global batch. The data: six synthetic fundus slices at 32 px
and a global batch of 5, so every epoch has one step with unequal shares (3 + 2) and a last step of
one item, which leaves rank 1 an empty share.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sikd_utils import distributed, train as train_module
from sikd_utils.data.slices import SliceDataset
from sikd_utils.data.synthetic import make_cases
from sikd_utils.train import TrainConfig, build_model, train

WORLD_SIZE = 2


GRADIENTS: list[list[torch.Tensor]] = []  # every step's gradients, recorded by _sgd's optimiser


class _RecordingSGD(torch.optim.SGD):
    def step(self, closure=None):
        GRADIENTS.append([p.grad.detach().clone() for group in self.param_groups for p in group["params"]])
        return super().step(closure)


def _sgd(params, lr, weight_decay):
    """Stands in for Adam where weights are compared: Adam divides by √v, so a coordinate whose gradient
    is zero up to rounding (a conv bias before batch norm) moves by about ±lr on rounding noise alone,
    and two runs that compute the same thing still differ there by 1e-3. SGD keeps rounding small, and
    records the gradient of every step (after DDP's average)."""
    return _RecordingSGD(params, lr=lr, weight_decay=weight_decay)
BATCH = 5


class Stop(Exception):
    pass


def _datasets():
    cases = make_cases("fundus", n_cases=6, image_size=32, seed=0)
    return (SliceDataset(cases[:6], 32, augment=True, seed=0),
            SliceDataset(make_cases("fundus", n_cases=3, image_size=32, seed=1), 32))


def _config(**overrides) -> TrainConfig:
    return TrainConfig(**{"role": "baseline", "epochs": 2, "batch_size": BATCH, "seed": 1, "device": "cpu",
                          "progress": False, **overrides})


def _run(folder, stop_after: int | None = None, **overrides):
    """One baseline run into ``folder`` (optionally stopped after an epoch, as a killed run would be)."""
    train_ds, val_ds = _datasets()

    def stop(record):
        if stop_after is not None and record["epoch"] == stop_after:
            raise Stop

    try:
        return train(build_model("baseline", 3, 3, 4, seed=0), train_ds, _config(**overrides), val_ds,
                     checkpoint_dir=folder, callbacks=[stop])
    except Stop:
        return None


SPAWN_DEADLINE_S = 400  # the whole shared spawn (six scenarios) takes ~40 s on 2 busy cores


def _rank(rank: int, init_file: str, out: str, scenarios: dict):
    """One rank: join the gloo group, run every scenario in turn (the same order on both ranks), save what
    each returns to ``out``/<scenario>.rank<k>.pt, with the checkpoints it wrote and the gradients
    _RecordingSGD recorded. A scenario that raises ends the rank (mp.spawn then stops the other)."""
    import datetime

    torch.set_num_threads(1)
    # collectives give up after 2 minutes instead of gloo's 30: a rank that is gone never hangs the other
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE,
                            timeout=datetime.timedelta(seconds=120))
    saves = []
    real_save, real_adam = train_module.save_checkpoint, torch.optim.Adam
    train_module.save_checkpoint = lambda obj, path: (saves.append(path.name), real_save(obj, path))
    try:
        for name, (scenario, sgd) in scenarios.items():
            saves.clear()
            GRADIENTS.clear()
            torch.optim.Adam = _sgd if sgd else real_adam  # in this spawned rank only
            try:
                result = scenario()
            finally:
                torch.optim.Adam = real_adam
            torch.save({**result, "saves": list(saves), "gradients": list(GRADIENTS)}, f"{out}/{name}.rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _spawn(folder, scenarios: dict) -> None:
    """Run ``scenarios`` (name -> (function, use _sgd for Adam)) in one group of two spawned ranks: one
    process start and one rendezvous for all of them; each writes ``folder``/<name>.rank<k>.pt."""
    context = mp.start_processes(_rank, args=(str(folder / "rendezvous"), str(folder), scenarios),
                                 nprocs=WORLD_SIZE, join=False, start_method="spawn")
    deadline = time.monotonic() + SPAWN_DEADLINE_S
    try:
        while not context.join(timeout=5):
            if time.monotonic() > deadline:
                pytest.fail(f"the two ranks did not finish within {SPAWN_DEADLINE_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


@contextlib.contextmanager
def _exclusive(lock_path, wait_s: float = SPAWN_DEADLINE_S + 120):
    """Hold an exclusive lock on ``lock_path`` (waiting at most ``wait_s``: never hangs)."""
    with open(lock_path, "w") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{lock_path} still locked after {wait_s} s")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


SCENARIOS = ("per-item", "batched", "full", "resumed", "refused", "student")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> dict:
    """Every two-rank scenario of this module, run by one spawned group (each spawn costs ~5 s of process
    start, torch import and rendezvous), once per session: under xdist the first worker to ask runs it
    into the session's shared temporary folder and the others wait for it and read its files. The tests
    below compare these results with single-process runs in their own process."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # pytest-of-<user>/pytest-<n>/: one per session, above each worker's own
    folder = shared / "ddp-ranks"
    with _exclusive(shared / "ddp-ranks.lock"):
        if not (folder / "done").exists():
            shutil.rmtree(folder, ignore_errors=True)  # what an attempt that failed left behind
            folder.mkdir()
            _run_scenarios(folder)
            (folder / "done").touch()
    results = {name: [torch.load(folder / f"{name}.rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]
               for name in SCENARIOS}
    return {**results, "teacher": folder / "teacher"}


def _run_scenarios(folder) -> None:
    train_ds, val_ds = _datasets()
    with pytest.MonkeyPatch.context() as patch:  # the student scenario's teacher, trained with _sgd
        patch.setattr(torch.optim, "Adam", _sgd)
        train(build_model("teacher", 3, 3, 4, seed=2), train_ds, _config(role="teacher", epochs=1), val_ds,
              checkpoint_dir=folder / "teacher")
    two = folder / "two"
    scenarios = {
        "per-item": (functools.partial(_two_rank_run, two / "per-item", False), True),
        "batched": (functools.partial(_two_rank_run, two / "batched", True), True),
        # the real optimiser; also the uninterrupted run that "resumed" must end equal to
        "full": (functools.partial(_two_rank_run, two / "full", None), False),
        "resumed": (functools.partial(_interrupted_then_resumed, two / "cut"), False),
        "refused": (functools.partial(_refused_run, two / "refused"), False),
        "student": (functools.partial(_student_on_rank, two / "student", folder / "teacher"), True),
    }
    assert tuple(scenarios) == SCENARIOS
    _spawn(folder, scenarios)


def _last(folder) -> dict:
    return torch.load(folder / "last.pt", weights_only=True)


# Float rounding: one process and two ranks differ by rounding alone, which depends on the CPU's kernels. With
# AVX512 kernels it reached 4.8e-5 in the epoch-2 loss, 4.0e-5 in a weight and 2.5e-4 of a deep batch norm's
# running variance (book/results/RUNLOG.md has the measurements, AVX2 kernels' too). Hence 1e-4 for the
# weights, 1e-3 of each running statistic's largest entry (their scale grows with depth) and 2e-4 for the
# histories, still 20x below what a stale learning rate moves the loss by (4.3e-3, test_fast_step); the
# gradients (relative tolerance 2e-3 of each tensor's largest entry), compared directly, stay the sharp check.
WEIGHT_ATOL = 1e-4
RUNNING_STATS_RTOL = 1e-3
GRADIENT_FLOOR = 1e-5
HISTORY_ATOL = 2e-4
# The step of one item (and none on the other rank) starts from weights that differ by rounding, and its batch
# norms see one item (the deepest, 2×2 pixels): with AVX512 kernels the first conv's gradient differed there by
# 3.5 % of its largest entry (every other tensor within 2e-3). Counting the empty rank in the average would halve
# that gradient (a 50 % difference), so 10 % still tells the two apart.
ONE_ITEM_STEP_RTOL = 0.1


def _assert_same_weights(a: dict, b: dict, atol: float = WEIGHT_ATOL) -> None:
    assert a.keys() == b.keys()
    for key in a:
        gap = float((a[key].double() - b[key].double()).abs().max()) if a[key].numel() else 0.0
        bound = atol
        if atol and key.endswith(("running_var", "running_mean")):  # relative: their scale grows with depth
            bound = atol + RUNNING_STATS_RTOL * float(a[key].double().abs().max())
        assert gap <= bound, f"{key}: differs by {gap:.2e}, more than {bound:.0e}"


def _assert_same_history(a: list[dict], b: list[dict], tolerance: float = HISTORY_ATOL) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for key in ("loss", "ce", "mse", "val_dice"):
            assert x[key] == pytest.approx(y[key], abs=tolerance), (x["epoch"], key)


def _outcome(result, folder) -> dict:
    return {"history": result.history, "last": _last(folder)["model"]}


def _interrupted_then_resumed(folder):
    """A run stopped after epoch 1, then resumed (scenario "full" is the same run, uninterrupted)."""
    assert _run(folder, stop_after=1) is None
    return _outcome(_run(folder), folder)


def _assert_same_gradients(a: list[torch.Tensor], b: list[torch.Tensor], tolerance: float = 2e-3) -> None:
    """Equal up to float rounding: relative to each tensor's largest entry, plus :data:`GRADIENT_FLOOR` for
    gradients that are zero up to rounding (conv biases before batch norm, ~1e-6 of noise)."""
    for x, y in zip(a, b, strict=True):
        assert float((x - y).abs().max()) <= tolerance * float(x.abs().max()) + GRADIENT_FLOOR


@pytest.mark.parametrize("batched", [False, True], ids=["per-item", "batched"])
def test_two_ranks_train_as_one_process(batched, ranks, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.optim, "Adam", _sgd)
    GRADIENTS.clear()
    one = _outcome(_run(tmp_path / "one", batched_augmentation=batched), tmp_path / "one")
    two = ranks["batched" if batched else "per-item"]
    for got in two:  # every rank holds the same history, equal to one process's
        _assert_same_history(got["history"], one["history"])
    _assert_same_weights(two[0]["last"], one["last"])
    _assert_same_weights(two[0]["weights"], two[1]["weights"], atol=0)
    # the gradients of the first epoch's steps: shares of 3 and 2 items, then of 1 item and none (later
    # steps start from weights that differ by rounding, which this toy network amplifies)
    _assert_same_gradients(two[0]["gradients"][0], GRADIENTS[0])
    _assert_same_gradients(two[0]["gradients"][1], GRADIENTS[1], tolerance=ONE_ITEM_STEP_RTOL)
    assert two[0]["saves"] and not two[1]["saves"]  # rank 0 alone writes checkpoints


def test_two_ranks_with_adam_follow_one_process(ranks, tmp_path):
    """The real optimiser: the same losses and validation Dice (weights: see _sgd)."""
    one = _outcome(_run(tmp_path / "one"), tmp_path / "one")
    _assert_same_history(ranks["full"][0]["history"], one["history"], tolerance=1e-4)


def _two_rank_run(folder, batched):
    result = _run(folder, batched_augmentation=batched)
    return {**_outcome(result, folder), "weights": result.model.state_dict()}


def test_interrupted_two_rank_run_resumes_to_identical_weights(ranks):
    for full, resumed in zip(ranks["full"], ranks["resumed"], strict=True):
        _assert_same_weights(resumed["last"], full["last"], atol=0)
        _assert_same_history(resumed["history"], full["history"])


def test_too_many_ranks_for_the_batch_fail_before_training(ranks):
    for got in ranks["refused"]:
        assert "world size 2" in got["error"] and "batch_size 1" in got["error"]
        assert not got["saves"]


def _refused_run(folder):
    try:
        _run(folder, batch_size=1)
    except ValueError as err:
        return {"error": str(err)}
    return {"error": ""}


def test_shares_split_every_global_batch_contiguously():
    batch = torch.arange(10, 15)
    shares = [distributed.rank_share(batch, rank, 2) for rank in range(2)]
    assert [s.tolist() for s in shares] == [[10, 11, 12], [13, 14]]
    assert [distributed.rank_share(torch.tensor([7]), rank, 2).tolist() for rank in range(2)] == [[7], []]
    with pytest.raises(ValueError, match="world size 3 is larger than the global batch_size 2"):
        distributed.check_global_batch(2, 3)


def test_share_weights_make_the_rank_average_the_global_mean():
    losses = {3: torch.tensor(2.0), 2: torch.tensor(5.0)}  # rank means over shares of 3 and 2 items
    scaled = [distributed.ShareScaler(torch.amp.GradScaler("cpu", enabled=False), n, 5, 2).scale(loss)
              for n, loss in losses.items()]
    assert float(sum(scaled) / 2) == pytest.approx((3 * 2.0 + 2 * 5.0) / 5)


def test_single_process_is_untouched():
    assert distributed.world() == (0, 1)
    assert distributed.rank_device(torch.device("cuda")) == torch.device("cuda")



def test_torchrun_trains_one_run_over_two_processes(tmp_path):
    """The launch the GPU page gives (book/gpu.md), on the CPU: gloo, two processes, rank 0's checkpoints."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "sikd_utils", "train", "--task", "fundus", "--roles", "baseline", "--epochs", "1",
               "--image-size", "32", "--base-channels", "4", "--n-train", "6", "--n-val", "3", "--seeds", "0",
               "--batch-size", "5", "--device", "cpu", "--no-progress", "--out-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("seed 0 baseline: best validation Dice") == 1  # rank 0 reports
    assert len(list(tmp_path.glob("fundus/*/seed0/baseline/last.pt"))) == 1


def test_other_commands_refuse_torchrun(monkeypatch, capsys):
    from sikd_utils.__main__ import EXIT_USAGE, main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["gap", "--task", "fundus"]) == EXIT_USAGE
    assert "only `train` runs data-parallel under torchrun" in capsys.readouterr().err


# --------------------------------------------------------------------------- reproduce --gpus N (no GPU needed)
def test_jobs_go_round_robin_over_the_gpus():
    from sikd_utils.reproduce import job_device

    assert [job_device("cuda", k, 2) for k in range(5)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert [job_device("auto", k, 3) for k in range(4)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]
    assert job_device("cpu", 7, 0) == "cpu" and job_device("cuda:1", 7, 1) == "cuda:1"


def test_reproduce_places_each_job_on_its_gpu(tmp_path, monkeypatch):
    from sikd_utils import reproduce as rp

    placed = []
    monkeypatch.setattr(rp, "_check_gpus", lambda *a: None)  # no GPUs here: placement only
    monkeypatch.setattr(rp, "_run_job_safely", lambda settings, task, seed, deadline: placed.append(
        (task, seed, settings.device)) or {"task": task, "seed": seed, "status": "stopped"})
    settings = rp.ReproduceSettings(preset="tiny", tasks=("polyp", "fundus"), seeds=(0, 1), gpus=2, device="cuda",
                                    out_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "results"))
    assert rp.reproduce(settings, log=lambda message: None) == rp.EXIT_UNFINISHED
    assert placed == [("polyp", 0, "cuda:0"), ("polyp", 1, "cuda:1"), ("fundus", 0, "cuda:0"),
                      ("fundus", 1, "cuda:1")]


def test_gpus_are_checked_before_any_job(monkeypatch):
    from sikd_utils import reproduce as rp

    with pytest.raises(ValueError, match="cannot be combined with device='cpu'"):
        rp.ReproduceSettings(gpus=2, device="cpu")
    with pytest.raises(ValueError, match="gpus must be"):
        rp.ReproduceSettings(gpus=-1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="--gpus 2 asked for, but torch .* sees 1 CUDA GPU"):
        rp._check_gpus(2)


def test_two_ranks_distil_as_one_process(ranks, tmp_path, monkeypatch):
    """A student: the frozen teacher (from its checkpoint) stays unwrapped and sees each rank's share.
    One epoch: the distillation term's larger gradients amplify rounding faster than the baseline's."""
    monkeypatch.setattr(torch.optim, "Adam", _sgd)
    GRADIENTS.clear()
    one = _outcome(_student(tmp_path / "one", ranks["teacher"]), tmp_path / "one")
    two = ranks["student"]
    _assert_same_history(two[1]["history"], one["history"])
    _assert_same_weights(two[0]["last"], one["last"])
    for step in (0, 1):
        _assert_same_gradients(two[0]["gradients"][step], GRADIENTS[step])


def _student(folder, teacher):
    train_ds, val_ds = _datasets()
    return train(build_model("student", 3, 3, 4, seed=0), train_ds, _config(role="student", epochs=1), val_ds,
                 teacher=teacher, checkpoint_dir=folder)


def _student_on_rank(folder, teacher):
    return _outcome(_student(folder, teacher), folder)
