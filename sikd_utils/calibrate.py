"""Calibrating the synthetic suite's difficulty to the paper's baselines, blind to SIKD.

    python -m sikd_utils calibrate --preset gpu --levels 0 1 2 3 4 --seeds 0 1 --workers 10 --max-minutes 9

For every task, difficulty level and seed it trains the plain U-Net baseline only — never a teacher or a
student, so the choice of level cannot lean towards SIKD — at the preset's scale, and tests it on the clean
source and on the realistic target at every severity. :func:`choose_levels` then names each task's "paper"
level: the lowest level whose mean clean Dice lies within ±:data:`CLEAN_TOLERANCE` points of the paper's
intra-domain baseline and whose target Dice at one severity lies within ±:data:`TARGET_TOLERANCE` points of
its cross-domain baseline (the paper's Fig. 1, ``sikd_utils.paper.FIG1``).

Resumable like the evidence run: a finished (task, level, seed) leaves a part file under
``out_dir/calibration/``, its networks are checkpointed every epoch, and the same command continues. The
gathered table is ``results_dir/calibration.csv`` (one row per task, level, seed and test set) with its
provenance in ``calibration.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .data.tasks import TASKS

__all__ = ["CLEAN_TOLERANCE", "TARGET_TOLERANCE", "COLUMNS", "calibration_job", "calibrate", "choose_levels"]

#: how far (Dice points) the baseline's clean Dice may lie from the paper's intra-domain baseline
CLEAN_TOLERANCE = 3.0
#: how far its target Dice at the chosen severity may lie from the paper's cross-domain baseline
TARGET_TOLERANCE = 5.0
COLUMNS = ["task", "difficulty", "seed", "family", "severity", "dice", "n_cases"]


def _config(preset: str, task: str, level: int, seed: int, out_dir: str, device: str):
    from .configuration import preset_config

    return preset_config(preset, task, device=device, out_dir=out_dir, seeds=(seed,), difficulty=level)


def _part(out_dir: str, task: str, level: int, seed: int) -> Path:
    return Path(out_dir) / "calibration" / task / f"level{level}" / f"seed{seed}.csv"


def calibration_job(preset: str, task: str, level: int, seed: int, out_dir: str = "runs", device: str = "auto",
                    deadline: float | None = None) -> dict:
    """Train (or reload) one baseline and test it on clean and target; writes its part file.
    Returns ``{"task", "seed", "level", "status"}`` ("done" or "stopped" at the deadline)."""
    from .configuration import benchmark_splits
    from .orchestration import evaluate_methods, seed_scores_of, train_roles
    from .jobs import Deadline, TimeUp, write_atomic

    part = _part(out_dir, task, level, seed)
    outcome = {"task": task, "seed": seed, "level": level, "group": [f"level {level}"]}
    if part.exists():
        return {**outcome, "status": "done", "reused": True}
    config = _config(preset, task, level, seed, out_dir, device)
    clock = Deadline(deadline)
    try:
        clock.check_start()
        splits = benchmark_splits(config, families=["target"], severities=config.severities)
        model = train_roles(config, splits, ["baseline"], seed, callbacks=(clock.after_epoch,))["baseline"].model
        per_case = evaluate_methods({"baseline": model}, splits, config, seed, before_each=clock.before_eval,
                                    distances=lambda key: False)
    except TimeUp as stop:
        return {**outcome, "status": "stopped", "at": str(stop)}
    counts = per_case.groupby("test_set", sort=False)["case"].nunique()
    scores = seed_scores_of(per_case).assign(task=task, difficulty=level)
    scores["n_cases"] = [int(counts[t]) for t in scores["test_set"]]
    write_atomic(part, lambda tmp: scores[COLUMNS].to_csv(tmp, index=False))
    return {**outcome, "status": "done", "reused": False}


def _job_safely(*job):
    try:
        return calibration_job(*job)
    except Exception as err:  # reported at the end, like reproduce's jobs
        import traceback

        preset, task, level, seed = job[:4]
        return {"task": task, "seed": seed, "level": level, "group": [f"level {level}"], "status": "failed",
                "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}


def calibrate(preset: str, tasks, levels, seeds, out_dir: str = "runs", results_dir: str = "book/results",
              device: str = "auto", workers: int = 1, max_minutes: float | None = None, command: str = "",
              debug: bool = False, log=print) -> int:
    """Run (or continue) the calibration; gathers ``calibration.csv`` when every job is done. Returns the
    exit status of :func:`sikd_utils.jobs.closing_status`."""
    import pandas as pd

    from .data.synthetic import DIFFICULTY_LEVELS
    from .jobs import EXIT_DONE, closing_status, minimum_minutes, run_jobs, write_atomic
    from .run_guard import FolderLock, check_devices_present, writable_folder

    unknown = [t for t in tasks if t not in TASKS]
    bad_levels = [v for v in levels if v not in DIFFICULTY_LEVELS]
    if unknown or bad_levels or not tasks or not levels or not seeds:
        raise ValueError(f"calibrate needs tasks from {sorted(TASKS)} (got {list(tasks)}), levels from "
                         f"{list(DIFFICULTY_LEVELS)} (got {list(levels)}) and at least one seed (got {list(seeds)})")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {list(seeds)} repeat a seed; give each seed once")
    if max_minutes is not None and max_minutes < minimum_minutes():
        raise ValueError(f"--max-minutes {max_minutes:g} leaves no job time to start; give at least "
                         f"{minimum_minutes():.1f}")
    writable_folder(out_dir, "--out-dir")
    writable_folder(results_dir, "--results-dir")
    check_devices_present(device)
    start = time.time()
    deadline = start + max_minutes * 60 - 20 if max_minutes else None
    jobs = [(preset, task, level, seed, out_dir, device, deadline) for task in tasks for level in levels
            for seed in seeds]
    outcomes = []

    def collect(outcome):
        outcomes.append(outcome)
        log(f"{outcome['task']} level {outcome['level']} seed {outcome['seed']}: {outcome['status']}"
            f"{' (reused)' if outcome.get('reused') else ''} [{(time.time() - start) / 60:.1f} min]")

    with FolderLock(out_dir, command, log):
        run_jobs(_job_safely, jobs, workers, collect, log)
    unfinished = sorted({o["task"] for o in outcomes if o["status"] != "done"})
    status = closing_status(outcomes, unfinished, start, log, f"calibration of {', '.join(tasks)}", debug)
    if status == EXIT_DONE:
        from .orchestration import provenance

        frame = pd.concat([pd.read_csv(_part(out_dir, t, v, s)) for t in tasks for v in levels for s in seeds],
                          ignore_index=True)
        results = Path(results_dir)
        write_atomic(results / "calibration.csv", lambda tmp: frame.to_csv(tmp, index=False))
        record = {**provenance(_config(preset, tasks[0], levels[0], seeds[0], out_dir, device),
                               command=command or None),
                  "preset": preset, "tasks": list(tasks), "levels": list(levels), "seeds": list(seeds),
                  "trained": "baselines only: no teacher or student was trained or looked at"}
        write_atomic(results / "calibration.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
        log(f"calibration written to {results / 'calibration.csv'}")
    return status


def choose_levels(frame, paper: dict | None = None) -> "pd.DataFrame":  # noqa: F821
    """Per task, the lowest difficulty level within both tolerances, with the target severity whose mean Dice
    is nearest the paper's cross-domain baseline ("none" where no level fits), from a ``calibration.csv``."""
    import pandas as pd

    from .paper import FIG1

    paper = FIG1 if paper is None else paper
    means = frame.groupby(["task", "difficulty", "family", "severity"])["dice"].agg(["mean", "count"]).reset_index()
    means["mean"] *= 100
    rows = []
    for task, group in means.groupby("task", sort=False):
        intra, cross = paper[task][0], paper[task][3]
        chosen = None
        for level, at_level in group.groupby("difficulty"):
            clean = at_level.loc[at_level["family"] == "clean", "mean"]
            target = at_level[at_level["family"] == "target"]
            if clean.empty or target.empty:
                continue
            nearest = target.iloc[(target["mean"] - cross).abs().argsort().iloc[0]]
            fits = abs(clean.iloc[0] - intra) <= CLEAN_TOLERANCE and abs(nearest["mean"] - cross) <= TARGET_TOLERANCE
            if fits:
                chosen = {"level": int(level), "severity": int(nearest["severity"]), "clean": clean.iloc[0],
                          "target": nearest["mean"], "seeds": int(at_level["count"].min())}
                break
        rows.append({"task": task, "paper intra": intra, "paper cross": cross,
                     **(chosen or {"level": "none", "severity": "none", "clean": float("nan"),
                                   "target": float("nan"), "seeds": 0})})
    return pd.DataFrame(rows)


def add_arguments(parser) -> None:
    """The options of ``python -m sikd_utils calibrate``."""
    from .presets import PRESETS

    parser.add_argument("--preset", default="gpu", choices=sorted(PRESETS), help="scale of the baselines")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=sorted(TASKS), metavar="TASK",
                        help="tasks to calibrate (default: all five)")
    parser.add_argument("--levels", type=int, nargs="+", required=True, help="difficulty levels to try")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (at least 2)")
    parser.add_argument("--out-dir", default="runs", help="checkpoints and part files")
    parser.add_argument("--results-dir", default="book/results", help="where calibration.csv is written")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument("--workers", type=int, default=1, help="jobs side by side as processes")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop cleanly before this many minutes")


def main(args) -> int:
    """Run ``python -m sikd_utils calibrate`` with parsed ``args``."""
    command = "python -m sikd_utils " + " ".join(sys.argv[1:])
    return calibrate(args.preset, tuple(dict.fromkeys(args.tasks)), tuple(args.levels), tuple(args.seeds),
                     args.out_dir, args.results_dir, args.device, args.workers, args.max_minutes, command,
                     getattr(args, "debug", False))
