"""The evidence run: every task × seeds × (baseline, SIKD student, control) on the whole shift benchmark.

    python -m sikd_utils reproduce --preset gpu --max-minutes 9 --workers 8

For each task and seed it trains five roles (teacher on class-wise mean images, baseline, SIKD
student, and the control's raw-image teacher and student), then tests the three methods on the clean
source test set, the realistic target at severities 1–5 and every family of the shift benchmark
(``sikd_utils.data.shifts``) at severities 1–5 (Dice everywhere, HD95 on clean and target).

Built to run in pieces on a machine lent for minutes:

* **resumable** — model checkpoints after every epoch (``out_dir/<task>/<hash>/seed<k>/<role>/``), a
  finished (task, seed) leaves a small *part* file (``out_dir/parts/<task>/<hash>/seed<k>.*``), a finished
  task leaves its results in ``results_dir``; rerunning the same command skips what is done;
* **time-limited** — ``max_minutes`` stops every worker between epochs (or between test sets) before
  the limit; the exit status says whether everything is done (0) or a rerun is needed (3);
* **parallel** — ``workers`` (task, seed) jobs run side by side as processes (one GPU holds many);
  ``gpus=N`` (``--gpus N``) spreads the jobs round-robin over cuda:0..N-1 (:func:`job_device`): independent
  runs, one per job, not one data-parallel run (that is ``torchrun … train``, :mod:`sikd_utils.distributed`).

On one GPU, worker processes only overlap their kernels when the CUDA MPS daemon runs
(``nvidia-cuda-mps-control -d`` before the run, ``echo quit | nvidia-cuda-mps-control`` after); without it
the GPU time-slices between processes, and ten workers trained about 1.7× slower than with it
(measured on an H200; see ``book/results/RUNLOG.md``).

Results (committed by the book): ``<task>.csv`` (per-seed scores), ``<task>_training.csv`` (per (seed,
role) training records with the teacher gate) and ``provenance.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .configuration import ExperimentConfig, Splits, benchmark_splits, preset_config
from .data.tasks import TASKS
from .jobs import (  # noqa: F401 (some are re-exported: the job runner lived here)
    _START_SECONDS, _STOP_MARGIN_SECONDS, EXIT_DONE, EXIT_UNFINISHED, TEST_SECONDS_GUESS, Deadline, TimeUp,
    Unfinishable, _measured, _mps_running, _print, closing_status, minimum_minutes, mps_hint, outcome_detail,
    rerun_advice, run_jobs, write_atomic)

_Deadline, _write_atomic = Deadline, write_atomic  # older names of what jobs.py now holds

__all__ = ["ReproduceSettings", "reproduce", "preflight", "run_job", "job_device", "load_results", "task_done", "ROLES", "EVIDENCE_METHODS"]

ROLES = ("teacher", "baseline", "student", "raw_teacher", "control")
EVIDENCE_METHODS = ("baseline", "sikd", "control")
SCORE_COLUMNS = ["task", "seed", "method", "family", "severity", "dice", "hd95_mm", "teacher_gate", "n_cases"]
DISTANCE_FAMILIES = ("clean", "target")  # HD95 only where the results page reports it


@dataclass
class ReproduceSettings:
    """One evidence run (see the module docstring). ``families=None``: every family of the registry."""

    preset: str = "gpu"
    tasks: tuple[str, ...] = tuple(TASKS)
    seeds: tuple[int, ...] | None = None  # None: the preset's seeds
    out_dir: str = "runs"
    results_dir: str = "book/results"
    max_minutes: float | None = None
    workers: int = 1
    device: str = "auto"
    gpus: int = 0  # > 1: job k runs on cuda:(k mod gpus)
    families: tuple[str, ...] | None = None
    progress: bool = False
    command: str = ""
    replace_results: bool = False  # write over another run's results in results_dir, on purpose
    debug: bool = False  # a failed job's log shows its traceback
    difficulty: int = 0  # level of the synthetic suite (sikd_utils.data.synthetic); 0 = the committed evidence

    def __post_init__(self):
        from .data.synthetic import check_difficulty

        self.difficulty = check_difficulty(self.difficulty)
        if self.seeds is not None:
            repeated = sorted({s for s in self.seeds if list(self.seeds).count(s) > 1})
            if repeated:
                raise ValueError(f"seeds {list(self.seeds)} repeat seed(s) {repeated}; give each seed once")
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of {sorted(TASKS)}, got {list(self.tasks)}")
        self.tasks = tuple(self.tasks)
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be positive, got {self.max_minutes}")
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 0:
            raise ValueError(f"gpus must be a whole number >= 0, got {self.gpus!r}")
        if self.gpus > 1 and self.device not in ("auto", "cuda"):
            raise ValueError(f"gpus={self.gpus} places each job on its own cuda:K; it cannot be combined with "
                             f"device={self.device!r} (use 'auto' or 'cuda')")

    def config(self, task: str) -> ExperimentConfig:
        overrides = {"seeds": tuple(self.seeds)} if self.seeds else {}
        return preset_config(self.preset, task, device=self.device, out_dir=self.out_dir,
                             progress=self.progress, difficulty=self.difficulty, **overrides)

    def severities(self) -> tuple[int, ...]:
        from .presets import preset_settings

        return tuple(int(s) for s in preset_settings(self.preset)["severities"])


# --------------------------------------------------------------------------- files
def _data_tag(config: ExperimentConfig) -> str:
    n = config.counts()
    return f"synthetic:{n['n_train']},{n['n_val']},seed={config.data_seed}"  # as benchmark_splits tags it


def _part_stem(settings: ReproduceSettings, config: ExperimentConfig, seed: int) -> Path:
    key = config.run_key(_data_tag(config))
    return Path(settings.out_dir) / "parts" / config.task / key / f"seed{seed}"


def _splits(settings: ReproduceSettings, config: ExperimentConfig) -> Splits:
    """The task's benchmark splits, generated once and cached on disk for every worker and piece."""
    severities = settings.severities()
    families = settings.families
    n = config.counts()
    name = f"benchmark-{config.image_size}px-{n['n_test']}-{n['n_target']}-{'-'.join(map(str, severities))}"
    if families is not None:
        name += "-" + "-".join(sorted(families)).replace("+", "_")
    path = Path(settings.out_dir) / config.task / f"{config.run_key(_data_tag(config))}" / f"{name}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    import fcntl

    # one process generates, the task's other jobs wait for it and read the file
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if path.exists():
                try:
                    with open(path, "rb") as fh:
                        cached = pickle.load(fh)
                    if getattr(cached, "identity", None) is not None:  # caches without a data identity: remade
                        return cached
                except Exception:  # a damaged cache is regenerated
                    pass
            splits = benchmark_splits(config, families, severities)

            def write(tmp):
                with open(tmp, "wb") as fh:
                    pickle.dump(splits, fh, protocol=pickle.HIGHEST_PROTOCOL)

            _write_atomic(path, write)
            return splits
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- one (task, seed) job
def run_job(settings: ReproduceSettings, task: str, seed: int, deadline: float | None = None) -> dict:
    """Train (or reload) every role of one (task, seed), test the three methods, write the part files.

    Returns ``{"task", "seed", "status"}`` with status "done" (now or before) or "stopped" (deadline).
    """
    import pandas as pd
    import torch

    from .orchestration import METHOD_ROLES, evaluate_methods, seed_scores_of, train_roles
    from .stats import gate_by_seed

    config = settings.config(task)
    stem = _part_stem(settings, config, seed)
    scores_path, training_path = stem.with_suffix(".scores.csv"), stem.with_suffix(".training.csv")
    if scores_path.exists() and training_path.exists():
        return {"task": task, "seed": seed, "status": "done", "reused": True}
    if settings.workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // settings.workers))
    began = time.time()
    spent_path = stem.with_suffix(".seconds")  # time this job spent in earlier, stopped pieces
    spent_before = float(spent_path.read_text()) if spent_path.exists() else 0.0
    clock = Deadline(deadline)
    try:
        clock.check_start()
        splits = _splits(settings, config)
        results = train_roles(config, splits, ROLES, seed, callbacks=(clock.after_epoch,))
        models = {m: results[METHOD_ROLES[m]].model for m in EVIDENCE_METHODS}
        per_case = evaluate_methods(models, splits, config, seed, before_each=clock.before_eval,
                                    distances=lambda key: key.family in DISTANCE_FAMILIES)
    except TimeUp as stop:
        spent = spent_before + time.time() - began
        _write_atomic(spent_path, lambda tmp: Path(tmp).write_text(f"{spent:.1f}\n"))
        return {"task": task, "seed": seed, "status": "stopped", "at": f"{stop}; {clock.summary()}"}
    training = pd.DataFrame([
        {"task": task, "seed": seed, "role": role, "best_epoch": r.best_epoch, "best_val_dice": r.best_val_dice,
         "validated_on": "mean images" if role == "teacher" else "raw images", "epochs": len(r.history),
         "steps": r.extra.get("steps"), "train_seconds": sum(h.get("seconds", 0.0) for h in r.history)}
        for role, r in results.items()])
    gate = gate_by_seed(training).iloc[0]
    flags = {"baseline": "n/a", "sikd": "pass" if gate["teacher_pass"] else "FAIL",
             "control": "pass" if gate["raw_teacher_pass"] else "FAIL"}
    training["gate"] = training["role"].map({"teacher": flags["sikd"], "student": flags["sikd"],
                                             "raw_teacher": flags["control"], "control": flags["control"]})
    counts = per_case.groupby(["method", "test_set"], sort=False)["case"].nunique()
    scores = seed_scores_of(per_case).assign(task=task)
    scores["teacher_gate"] = scores["method"].map(flags)
    scores["n_cases"] = [int(counts[(m, t)]) for m, t in zip(scores["method"], scores["test_set"])]
    scores = scores[SCORE_COLUMNS]
    training["job_seconds"] = spent_before + time.time() - began
    _write_atomic(stem.with_suffix(".per_case.csv.gz"), lambda tmp: per_case.to_csv(tmp, index=False, compression="gzip"))
    _write_atomic(training_path, lambda tmp: training.to_csv(tmp, index=False))
    _write_atomic(scores_path, lambda tmp: scores.to_csv(tmp, index=False))  # last: marks the job done
    return {"task": task, "seed": seed, "status": "done", "reused": False, "at": clock.summary()}


def job_device(device: str, job_index: int, gpus: int) -> str:
    """The device of the ``job_index``-th job: ``cuda:(job_index mod gpus)`` over ``gpus`` > 1 GPUs (round
    robin, so N GPUs hold equally many of the equally long jobs), else ``device`` unchanged."""
    return f"cuda:{job_index % gpus}" if gpus > 1 else device


def _check_gpus(gpus: int, device: str = "auto") -> None:
    """Refuse more GPUs, or a CUDA device, than torch sees, before any job starts."""
    from .run_guard import check_devices_present

    check_devices_present(device, gpus)


def preflight(settings: ReproduceSettings, done, entry_of, run_key_of) -> None:
    """Refuse, before any work, what the run could not honour: folders that cannot be written, a device or GPUs
    this machine lacks, a deadline too short for any job, unknown shift families, and results of another run
    in ``results_dir`` (unless ``replace_results``). ``done(task)``: the task is finished there already;
    ``entry_of(task)``: its provenance entry there; ``run_key_of(task)``: this run's key for it."""
    from .data import shifts
    from .run_guard import replaced_results, writable_folder

    writable_folder(settings.out_dir, "--out-dir")
    writable_folder(settings.results_dir, "--results-dir")
    _check_gpus(settings.gpus, settings.device)
    if settings.max_minutes is not None and settings.max_minutes < minimum_minutes():
        raise ValueError(f"--max-minutes {settings.max_minutes:g} leaves no job time to start: a job starts only "
                         f"with {_START_SECONDS / 60:.2f} min left, after {_STOP_MARGIN_SECONDS} s kept for stopping; "
                         f"give at least {minimum_minutes():.1f}")
    if settings.families is not None:
        for task in settings.tasks:
            known = shifts.shift_families(task)
            unknown = [f for f in settings.families if f not in known and f not in ("clean", "target")]
            if unknown:
                raise ValueError(f"unknown shift famil{'y' if len(unknown) == 1 else 'ies'} {unknown} for {task}; "
                                 f"choose from {sorted(known)}")
    clashes = [why for task in settings.tasks if not done(task)
               for why in [replaced_results(settings.results_dir, task, entry_of(task), settings.preset,
                                            run_key_of(task), settings.config(task).seeds)] if why]
    if clashes and not settings.replace_results:
        raise ValueError("; ".join(clashes) + ". Nothing was run: write elsewhere with --results-dir, or replace "
                         "those results on purpose with --replace-results")


def _on_device(settings: ReproduceSettings, device: str) -> ReproduceSettings:
    """``settings`` of one job, placed on ``device`` (already chosen, so no longer spread)."""
    return settings if device == settings.device else dataclasses.replace(settings, device=device, gpus=0)


def _run_job_safely(settings, task, seed, deadline):
    try:
        return run_job(settings, task, seed, deadline)
    except Exception as err:  # one failing job must not take the others down; reported at the end
        import traceback

        return {"task": task, "seed": seed, "status": "failed", "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc()}


# --------------------------------------------------------------------------- a finished task
def _provenance_path(settings: ReproduceSettings) -> Path:
    return Path(settings.results_dir) / "provenance.json"


def _read_provenance(settings: ReproduceSettings) -> dict:
    path = _provenance_path(settings)
    if path.exists():
        data = json.loads(path.read_text())
        if "tasks" in data and isinstance(data["tasks"], dict):
            return data
    return {"tasks": {}}


def task_done(settings: ReproduceSettings, task: str) -> bool:
    """Whether ``results_dir`` already holds this task's results for these exact settings and seeds."""
    config = settings.config(task)
    entry = _read_provenance(settings)["tasks"].get(task)
    return (entry is not None and entry.get("run_key") == config.run_key(_data_tag(config))
            and set(config.seeds) <= set(entry.get("seeds", ())) and entry.get("preset") == settings.preset
            and (Path(settings.results_dir) / f"{task}.csv").exists())


def _finish_task(settings: ReproduceSettings, task: str) -> Path:
    """Gather a task's part files into ``results_dir`` and record its provenance."""
    import pandas as pd

    from .orchestration import provenance

    config = settings.config(task)
    stems = [_part_stem(settings, config, seed) for seed in config.seeds]
    from .results_schema import check_frame

    scores = pd.concat([pd.read_csv(s.with_suffix(".scores.csv")) for s in stems], ignore_index=True)
    training = pd.concat([pd.read_csv(s.with_suffix(".training.csv")) for s in stems], ignore_index=True)
    source = f"{task}'s part files {stems[0].parent}/seed*"
    check_frame(scores, "scores", source, task=task, seeds=config.seeds, per_seed=EVIDENCE_METHODS)
    check_frame(training, "training", source, task=task, seeds=config.seeds, per_seed=ROLES)
    results = Path(settings.results_dir)
    _write_atomic(results / f"{task}.csv", lambda tmp: scores.to_csv(tmp, index=False))
    _write_atomic(results / f"{task}_training.csv", lambda tmp: training.to_csv(tmp, index=False))
    prov = provenance(config, command=settings.command or None)
    steps = training.groupby("role", sort=False)["steps"].max().astype(int).to_dict()
    n = config.counts()
    entry = {**prov, "preset": settings.preset, "difficulty": config.difficulty,
             "run_key": config.run_key(_data_tag(config)),
             "seeds": list(config.seeds), "image_size": config.image_size, "base_channels": config.base_channels,
             "batch_size": config.batch_size, "epochs": config.epochs,
             "teacher_epochs": config.teacher_epochs or config.epochs, "steps_per_role": steps,
             "cases": {"train": n["n_train"], "val": n["n_val"], "clean_test": n["n_test"],
                       "shifted_test": n["n_target"]},
             "test_sets": int(scores[["family", "severity"]].drop_duplicates().shape[0]),
             "wall_seconds": float(training.groupby("seed")["job_seconds"].max().sum()),
             "wall_time_note": "summed over (task, seed) jobs and over every piece each job ran in; "
                               "jobs ran side by side, so elapsed time was shorter"}
    data = _read_provenance(settings)
    data["tasks"][task] = entry
    data["schema"] = {"<task>.csv": "one row per (task, seed, method, family, severity): Dice (and HD95 in mm on "
                                    "clean/target) averaged over classes of the per-class mean over cases",
                      "<task>_training.csv": "one row per (task, seed, role): best epoch, best validation Dice "
                                             "(teacher on class-wise mean images), optimiser steps, teacher gate"}
    _write_atomic(_provenance_path(settings), lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))
    return results / f"{task}.csv"


# --------------------------------------------------------------------------- the run
def reproduce(settings: ReproduceSettings, log=_print) -> int:
    """Run (or continue) the evidence run; returns :data:`~sikd_utils.jobs.EXIT_DONE` or :data:`~sikd_utils.jobs.EXIT_UNFINISHED`.

    Everything it cannot honour is refused before any work (:func:`preflight`); ``out_dir`` and
    ``results_dir`` are locked for the run (:class:`~sikd_utils.run_guard.FolderLock`)."""
    from .run_guard import FolderLock

    entries = _read_provenance(settings)["tasks"]
    preflight(settings, lambda t: task_done(settings, t), entries.get,
              lambda t: settings.config(t).run_key(_data_tag(settings.config(t))))
    with FolderLock(settings.out_dir, settings.command, log), FolderLock(settings.results_dir, settings.command, log):
        return _reproduce(settings, log)


def _reproduce(settings: ReproduceSettings, log) -> int:
    start = time.time()
    deadline = start + settings.max_minutes * 60 - _STOP_MARGIN_SECONDS if settings.max_minutes else None
    pending = [t for t in settings.tasks if not task_done(settings, t)]
    for task in settings.tasks:
        if task not in pending:
            log(f"{task}: results already in {settings.results_dir} — skipped")
    if settings.workers > 1 and pending:
        import torch

        cuda = settings.device.startswith("cuda") or (settings.device == "auto" and torch.cuda.is_available())
        hint = mps_hint(settings.workers, settings.gpus, cuda, _mps_running())
        if hint:
            log(hint)
    pairs = [(task, seed) for task in pending for seed in settings.config(task).seeds]
    jobs = [(_on_device(settings, job_device(settings.device, index, settings.gpus)), task, seed)
            for index, (task, seed) in enumerate(pairs)]
    remaining = {task: set(settings.config(task).seeds) for task in pending}
    outcomes = []

    def collect(outcome):
        outcomes.append(outcome)
        task, seed, status = outcome["task"], outcome["seed"], outcome["status"]
        log(f"{task} seed {seed}: {status}{outcome_detail(outcome)} [{(time.time() - start) / 60:.1f} min]")
        if status == "done":
            remaining[task].discard(seed)
            if not remaining[task]:
                path = _finish_task(settings, task)
                log(f"{task}: finished — results written to {path}")

    run_jobs(_run_job_safely, [(*job, deadline) for job in jobs], settings.workers, collect, log)
    unfinished = sorted(task for task in pending if remaining[task])
    return closing_status(outcomes, unfinished, start, log,
                          f"results of {', '.join(settings.tasks)} in {settings.results_dir}", settings.debug)


# --------------------------------------------------------------------------- reading the committed results
def load_results(results_dir: str | os.PathLike = "book/results"):
    """The committed evidence (or ablations): ``(scores, training, provenance)`` of every finished task.

    Every task named in ``provenance.json`` is checked against :mod:`sikd_utils.results_schema` before a
    number is returned, so a truncated, scaled or duplicated file stops the page with a
    :class:`~sikd_utils.results_schema.ResultsFileError` naming it. ``scores`` and ``training`` are empty
    DataFrames (with their columns) when nothing is committed yet.
    """
    import pandas as pd

    from .results_schema import check_task_files, read_provenance

    folder = Path(results_dir)
    prov = read_provenance(folder / "provenance.json", required=False)
    scores, training = [], []
    for task in [t for t in TASKS if t in prov["tasks"]]:
        schema = "ablation_training" if isinstance(prov["tasks"][task].get("methods"), dict) else "training"
        task_scores, task_training, _ = check_task_files(folder, task, schema, provenance=prov)
        scores.append(task_scores)
        training.append(task_training)
    scores = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=SCORE_COLUMNS)
    training = (pd.concat(training, ignore_index=True) if training else
                pd.DataFrame(columns=["task", "seed", "role", "best_epoch", "best_val_dice", "gate"]))
    return scores, training, prov if (folder / "provenance.json").exists() else {}


# --------------------------------------------------------------------------- command line
def difficulty_arg(text: str) -> int:
    """``--difficulty``: a level of the synthetic suite, checked while the command line is read."""
    import argparse

    from .data.synthetic import DIFFICULTY_LEVELS, check_difficulty

    try:
        return check_difficulty(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"difficulty must be one of the levels {list(DIFFICULTY_LEVELS)}, "
                                         f"got {text!r}") from None


def results_dir_for(base: str, difficulty: int) -> str:
    """Default results folder: ``base`` at difficulty 0 (the committed evidence), ``base/difficulty<k>`` above,
    so a harder run never overwrites the difficulty-0 results."""
    return base if not difficulty else str(Path(base) / f"difficulty{difficulty}")


def fill_result_dirs(args) -> None:
    """Set the result folders left out on the command line to their defaults at ``args.difficulty``."""
    if args.results_dir is None:
        base = "book/results/ablations" if args.command == "ablate" else "book/results"
        args.results_dir = results_dir_for(base, args.difficulty)
    if getattr(args, "evidence_dir", "") is None:
        args.evidence_dir = results_dir_for("book/results", args.difficulty)


def add_arguments(parser) -> None:
    """The options of ``python -m sikd_utils reproduce``."""
    from .presets import PRESETS

    parser.add_argument("--preset", default="gpu", choices=sorted(PRESETS),
                        help="scale of the run (sikd_utils/presets.py); gpu = the evidence scale")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=sorted(TASKS), metavar="TASK",
                        help=f"tasks to run (default: all five: {' '.join(TASKS)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default: the preset's)")
    parser.add_argument("--out-dir", default="runs", help="checkpoints, data cache and per-seed part files")
    parser.add_argument("--results-dir", default=None,
                        help="where finished tasks' results are written (default: book/results, or "
                             "book/results/difficulty<k> at --difficulty k)")
    parser.add_argument("--difficulty", type=difficulty_arg, default=0,
                        help="level of the synthetic suite, 0 (the original phantoms) to 4")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop cleanly before this many minutes (rerun the same command to continue)")
    parser.add_argument("--workers", type=int, default=1, help="(task, seed) jobs run side by side as processes")
    parser.add_argument("--families", nargs="+", default=None,
                        help="shift families to test (default: every family of each task's registry)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument("--gpus", type=int, default=0,
                        help="spread the jobs round-robin over cuda:0..N-1 (use --workers >= N)")
    parser.add_argument("--progress", action="store_true", help="show per-run progress bars")
    parser.add_argument("--replace-results", action="store_true",
                        help="replace results of another run (other preset, seeds or settings) in --results-dir; "
                             "without it such a run is refused before any work")


def main(args) -> int:
    """Run ``python -m sikd_utils reproduce`` with parsed ``args``; returns the exit status."""
    command = "python -m sikd_utils " + " ".join(sys.argv[1:]) if sys.argv[1:] else "python -m sikd_utils reproduce"
    settings = ReproduceSettings(preset=args.preset, tasks=tuple(dict.fromkeys(args.tasks)),
                                 seeds=tuple(args.seeds) if args.seeds else None, out_dir=args.out_dir,
                                 results_dir=args.results_dir, max_minutes=args.max_minutes, workers=args.workers,
                                 device=args.device, gpus=args.gpus,
                                 families=tuple(args.families) if args.families else None,
                                 progress=args.progress, command=command, replace_results=args.replace_results,
                                 debug=getattr(args, "debug", False), difficulty=args.difficulty)
    return reproduce(settings)
