"""The ablation run of issue 13: every variant of :mod:`sikd_utils.ablations` × seeds on a 2D and a 3D task.

    python -m sikd_utils ablate --preset gpu --tasks fundus abdomen --workers 10 --max-minutes 9

Built on the evidence run's machinery (:mod:`sikd_utils.reproduce`): the same preset settings, data,
checkpoints and deadline, the same tidy schema. What differs:

* **jobs** are (task, seed, group) where a group is the methods sharing one trained teacher (SIKD and
  its λ, layer and method variants share SIKD's), or a single baseline; two jobs never train into the
  same run folder, and the long groups start first;
* **part files** are per (task, seed, method) under ``results_dir/parts/`` (``parts_dir``): a method tested
  is never tested again, so a job stopped at the deadline loses at most one method's testing. They sit
  beside the results, not with the checkpoints in ``out_dir``, because the whole run takes more GPU time
  than one session lends: committed, they carry a half-done task to the next session (a few kB per method);
* **test sets**: the clean source test set, the realistic target at the preset's severities and *every
  single family* of the task's shift registry at those severities — the fingerprint per variant needs
  the single causes; the compound families (pairs, triples, ``all``) of the evidence run are left
  out, as they ask whether effects add up, which the evidence run answers for SIKD. HD95 on the clean
  test set only (notebook 07 reports Dice; HD95 on every target severity would add a third to testing);
* **results** go to ``book/results/ablations/``: ``<task>.csv`` (``method`` = variant or baseline name),
  ``<task>_training.csv`` (one row per (seed, method, role) trained or reused) and ``provenance.json``;
  each method's part files also keep every network's epochs (``<method>.history.csv``, :data:`HISTORY_COLUMNS`);
* **reuse of the evidence run**: ``baseline`` and ``teacher_raw`` (= the evidence run's control) are the
  evidence run's networks and test sets when it ran at the same preset, seeds, precision and run keys, so
  :func:`import_evidence` writes their part files from ``book/results/`` instead of training and testing
  them again (``--no-reuse-evidence`` turns it off; ``--check-evidence`` only says what it would import);
  provenance lists what was imported, from which file and commit.

GPU time. Jobs start costliest first (:data:`EPOCH_COST` counts epochs of other backbones in U-Net epochs),
so the long ones finish within a session. A SIKD group fans out (:func:`lead_and_followers`): once its
teacher and first student are done, its other students are jobs of their own, side by side, and they start
before any group still waiting, so begun groups finish first. ``ablate --plan`` lists the jobs it would start
now, the networks each trains and their minutes at the epoch times of the committed histories
(:func:`plan_lines`). At the gpu preset the whole ablation takes a few hours of one GPU; the estimate made
before the run and what each GPU session measured are in ``book/results/RUNLOG.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import ablations as ab
from .jobs import Deadline as _Deadline
from .jobs import TimeUp, Unfinishable, _print, closing_status, outcome_detail, run_jobs
from .jobs import write_atomic as _write_atomic
from .reproduce import SCORE_COLUMNS, ReproduceSettings, _data_tag, _splits, difficulty_arg, preflight

__all__ = ["AblationSettings", "ablate", "EPOCH_COST", "run_group", "job_groups", "task_done", "ablation_families",
           "import_evidence", "importable", "evidence_mismatches", "lead_and_followers", "finished_methods", "TRAINING_COLUMNS", "HISTORY_COLUMNS", "plan_jobs", "plan_lines", "measured_epoch_seconds", "SECOND_CHANCES", "ABLATION_TASKS", "FROM_EVIDENCE"]

# One 2D and one 3D task. The 3D one is abdomen rather than cardiac, chosen before any ablation result
# existed: with 80-epoch teachers both 3D tasks' skip-free teachers missed the gate by ~0.2 points (cardiac
# 0.977 against 0.979, abdomen 0.958 against 0.959), so neither was better placed, and abdomen's epochs are
# cheaper (56 batches, not 66). At the preset's 160 epochs cardiac's teachers pass too (0.988-0.989).
ABLATION_TASKS = ("fundus", "abdomen")
TRAINING_COLUMNS = ["task", "seed", "method", "role", "best_epoch", "best_val_dice", "validated_on", "epochs",
                    "steps", "train_seconds", "run_key"]
_SEEN = {"mean_image": "mean images", "label_onehot": "one-hot labels", "raw": "raw images"}
#: ablation method -> the evidence run's method that is the same networks (``teacher_raw`` is its control)
# What the evidence run measured that the ablation can take as is. Not SIKD itself: the λ, layer and method
# variants are compared with SIKD seed by seed, and that pairing is tightest when SIKD's student and theirs
# learn from one teacher, which the ablation trains anyway (a GPU retrain is not bit-identical to the
# evidence run's teacher).
FROM_EVIDENCE = {"baseline": "baseline", "teacher_raw": "control"}


@dataclass
class AblationSettings(ReproduceSettings):
    """One ablation run (see the module docstring). ``variants=None``: every variant of the registry."""

    tasks: tuple[str, ...] = ABLATION_TASKS
    results_dir: str = "book/results/ablations"
    variants: tuple[str, ...] | None = None
    evidence_dir: str | None = "book/results"  # None: never import the evidence run's methods
    parts_dir: str | None = None  # None: ``results_dir/parts`` (committed with the results; see the docstring)
    # a session's last piece: stop a job as soon as it cannot finish by the deadline (see reproduce._Deadline)
    finish_only: bool = False

    def __post_init__(self):
        super().__post_init__()
        self.variants = ab.check_variants(self.variants)

    def methods(self) -> list[str]:
        return ab.methods_for(self.variants)

    def for_task(self, task: str) -> "AblationSettings":
        """These settings with the task's test families (every single family unless ``families`` is given)."""
        return dataclasses.replace(self, families=self.families or tuple(ablation_families(task)))


def ablation_families(task: str) -> list[str]:
    """The single shift families of ``task``'s registry (no compounds; ``target`` is always tested)."""
    from .data import shifts

    return [f for f in shifts.shift_families(task) if f not in ("clean", "target")]


# --------------------------------------------------------------------------- jobs
def _parts(settings: AblationSettings, task: str, seed: int) -> Path:
    config = settings.config(task)
    root = Path(settings.parts_dir) if settings.parts_dir else Path(settings.results_dir) / "parts"
    return root / task / config.run_key(_data_tag(config)) / f"seed{seed}"


def _method_done(settings, task, seed, method) -> bool:
    folder = _parts(settings, task, seed)
    return (folder / f"{method}.scores.csv").exists() and (folder / f"{method}.training.csv").exists()


#: what one epoch costs per backbone, in U-Net epochs, for ordering jobs only (the long ones start first so they
#: finish within a session): on one GPU shared by ~10 processes a SwinUNETR epoch took 2-3 times a U-Net's, a
#: BasicUNet epoch about a U-Net's (measurements in book/results/RUNLOG.md)
EPOCH_COST = {"unet": 1.0, "basic_unet": 1.0, "swin_unetr": 2.3}


def _epochs(config, method: str) -> float:
    """The method's epochs to train, in U-Net epochs (:data:`EPOCH_COST`)."""
    return sum(config.train_config(role, 0).epochs * EPOCH_COST[overrides.get("backbone", config.backbone)]
               for role, overrides in ab.units(method))


def job_groups(settings: AblationSettings, task: str) -> list[list[str]]:
    """The task's methods grouped by the teacher they share (a baseline alone), costliest group first."""
    config = settings.config(task)
    tag = _data_tag(config)
    groups: dict[tuple, list[str]] = {}
    for method in settings.methods():
        role, overrides = ab.units(method)[0]
        groups.setdefault((role, ab.role_config(config, role, overrides).run_key(tag)), []).append(method)
    return sorted(groups.values(), key=lambda g: -sum(_epochs(config, m) for m in g))


def lead_and_followers(settings: AblationSettings, task: str, seed: int, group: list[str]) -> tuple[list[str], list[list[str]]]:
    """One (task, seed) group as the job that trains its shared network and the jobs that only reuse it.

    The lead is the group's first unfinished method: it trains the shared teacher and its own student. Every
    other unfinished method needs only its student then, so it is a job of its own that reloads the teacher
    from the run folder, and a group's students train side by side instead of one after another (a 3D SIKD
    group, teacher 160 epochs and 7 students in turn, outlasts a session's GPU time). Methods whose later
    networks are the same stay in one job, so nothing is trained twice. Without a run folder (``out_dir``
    None) nothing could be reloaded, and the group stays one job.
    """
    todo = [m for m in group if not _method_done(settings, task, seed, m)]
    if len(todo) <= 1 or settings.out_dir is None:
        return (todo or list(group)), []
    config = settings.config(task)
    tag = _data_tag(config)
    followers: list[tuple[set, list[str]]] = []
    for method in todo[1:]:
        later = {(role, ab.role_config(config, role, o).run_key(tag)) for role, o in ab.units(method)[1:]}
        shared = next((job for job in followers if job[0] & later), None)
        if shared is None:
            followers.append((later, [method]))
        else:
            shared[0].update(later)
            shared[1].append(method)
    return [todo[0]], [methods for _, methods in followers]


def _validated_on(role: str, train_config) -> str:
    """What a role's validation Dice was measured on: a teacher sees its teacher input, the others raw images."""
    return _SEEN[train_config.effective_teacher_input() if role in ("teacher", "raw_teacher") else "raw"]


def _training_rows(task, seed, method, results, configs, tag) -> list[dict]:
    rows = []
    for role, result in results.items():
        rows.append({"task": task, "seed": seed, "method": method, "role": role, "best_epoch": result.best_epoch,
                     "best_val_dice": result.best_val_dice, "validated_on": _validated_on(role, result.config),
                     "epochs": len(result.history), "steps": result.extra.get("steps"),
                     "train_seconds": sum(h.get("seconds", 0.0) for h in result.history),
                     "run_key": configs[role].run_key(tag)})
    return rows


#: one row per (role, epoch) of a method's part file ``<method>.history.csv``: how each network's validation
#: Dice and loss went, which the best-epoch summary of ``training.csv`` hides (a teacher that sat at Dice 0 for
#: 52 epochs before it learned looks like one that learned at once). ``loss`` = ``ce`` + λ·``mse`` (``mse``: the
#: distillation term before its weight; 0 for networks that distil nothing); the earliest committed files have
#: ``loss`` alone (book/results/RUNLOG.md says which)
HISTORY_COLUMNS = ["role", "epoch", "lr", "loss", "ce", "mse", "val_dice", "seconds", "run_key"]


def _history_rows(results, configs, tag) -> list[dict]:
    return [{"role": role, **{k: h.get(k) for k in HISTORY_COLUMNS[1:-1]}, "run_key": configs[role].run_key(tag)}
            for role, result in results.items() for h in result.history]


def run_group(settings: AblationSettings, task: str, seed: int, methods: list[str], deadline: float | None = None,
              retry_after: float = 0.0) -> dict:
    """Train (or reload) and test the ``methods`` of one group for one (task, seed); write their part files.
    ``retry_after``: seconds to wait first (a second chance after a ``--finish-only`` stop, see :func:`ablate`)."""
    import pandas as pd

    from .orchestration import evaluate_methods, provenance, seed_scores_of, train_roles
    from .train import LAST

    settings = settings.for_task(task)
    config = settings.config(task)
    todo = [m for m in methods if not _method_done(settings, task, seed, m)]
    outcome = {"task": task, "seed": seed, "group": methods, "status": "done", "reused": not todo}
    if not todo:
        return outcome
    if settings.workers > 1:  # processes side by side share the CPU cores
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 2) // settings.workers))
    clock = _Deadline(deadline, finish_only=settings.finish_only)
    folder = _parts(settings, task, seed)
    time.sleep(retry_after)
    try:
        clock._check(60.0, "start")
        splits = _splits(settings, config)
        runs = _job_runs(config, splits.tag, todo)
        order = list(runs)
        tests = len(_test_sets(settings, task))
        trained = {}  # (role, run key) -> TrainResult, shared by the group's methods
        for number, method in enumerate(todo):
            results, configs = {}, {}
            for role, overrides in ab.units(method):
                configs[role] = cfg = ab.role_config(config, role, overrides)
                key = (role, cfg.run_key(splits.tag))
                if key not in trained:
                    later = order[order.index(key) + 1:]
                    root = cfg.run_root(splits.tag)
                    clock.plan(runs[key], sum(runs[k] for k in later if k not in trained), tests * (len(todo) - number),
                               begun=root is not None and (root / f"seed{seed}" / role / LAST).exists())
                    teachers = {r: results[r].model for r in results}
                    trained[key] = train_roles(cfg, splits, [role], seed, callbacks=(clock.after_epoch,),
                                               teachers=teachers)[role]
                results[role] = trained[key]
            model = results[ab.student_role(method)].model
            per_case = evaluate_methods({method: model}, splits, config, seed, before_each=clock.before_eval,
                                        distances=lambda key: key.family == "clean")
            counts = per_case.groupby("test_set", sort=False)["case"].nunique()
            scores = seed_scores_of(per_case).assign(task=task, teacher_gate="")
            scores["n_cases"] = [int(counts[t]) for t in scores["test_set"]]
            training = pd.DataFrame(_training_rows(task, seed, method, results, configs, _data_tag(config)),
                                    columns=TRAINING_COLUMNS)
            (folder / f"{method}.imported.json").unlink(missing_ok=True)  # measured here, not imported
            made = provenance(configs[ab.student_role(method)], command=settings.command or None)
            _write_atomic(folder / f"{method}.provenance.json",  # an unfinished task's methods keep theirs
                          lambda tmp: Path(tmp).write_text(json.dumps(made, indent=2) + "\n"))
            history = pd.DataFrame(_history_rows(results, configs, _data_tag(config)), columns=HISTORY_COLUMNS)
            _write_atomic(folder / f"{method}.history.csv", lambda tmp: history.to_csv(tmp, index=False))
            _write_atomic(folder / f"{method}.training.csv", lambda tmp: training.to_csv(tmp, index=False))
            _write_atomic(folder / f"{method}.scores.csv", lambda tmp: scores[SCORE_COLUMNS].to_csv(tmp, index=False))
    except TimeUp as stop:
        return {**outcome, "status": "stopped", "at": f"{stop}; {clock.summary()}",
                "unfinishable": isinstance(stop, Unfinishable)}
    return {**outcome, "at": clock.summary()}


def _job_runs(config, tag: str, methods: list[str]) -> dict:
    """``(role, run key) -> epochs`` of the networks a job of ``methods`` trains, in training order (a run
    folder that is already finished reloads instead: counting it makes the estimate err on the long side)."""
    runs = {}
    for method in methods:
        for role, overrides in ab.units(method):
            cfg = ab.role_config(config, role, overrides)
            runs.setdefault((role, cfg.run_key(tag)), cfg.train_config(role, 0).epochs)
    return runs


def _run_group_safely(settings, task, seed, methods, deadline, retry_after=0.0):
    try:
        return run_group(settings, task, seed, methods, deadline, retry_after)
    except Exception as err:  # one failing job must not take the others down; reported at the end
        import traceback

        return {"task": task, "seed": seed, "group": methods, "status": "failed",
                "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}


# --------------------------------------------------------------------------- methods the evidence run measured
def _test_sets(settings: AblationSettings, task: str) -> list[tuple[str, int]]:
    """The ablation's ``(family, severity)`` test sets of ``task``, in :func:`run_group`'s order."""
    settings = settings.for_task(task)
    families = ["target", *[f for f in settings.families if f not in ("clean", "target")]]
    return [("clean", 0)] + [(f, int(s)) for f in families for s in settings.severities()]


def _evidence_files(evidence_dir, task) -> tuple[Path, Path, Path]:
    folder = Path(evidence_dir)
    return folder / "provenance.json", folder / f"{task}.csv", folder / f"{task}_training.csv"


def evidence_mismatches(settings: AblationSettings, task: str, evidence_dir: str = "book/results") -> list[str]:
    """Why the evidence run's ``task`` results are *not* this ablation's baseline and teacher_raw
    (empty: they are). Checked: the same preset, seeds and precision, the same run key for every role of those
    methods (the evidence run trains all five roles under one config, so each ablation role's config
    must hash to that key), the settings behind the key field by field (to say what differs), and
    every ablation test set measured once per (seed, method) with the ablation's case counts."""
    import pandas as pd

    prov_path, scores_path, training_path = _evidence_files(evidence_dir, task)
    missing = [str(p) for p in (prov_path, scores_path, training_path) if not p.exists()]
    if missing:
        return [f"no evidence files {', '.join(missing)}"]
    entry = json.loads(prov_path.read_text()).get("tasks", {}).get(task)
    if not isinstance(entry, dict):
        return [f"{prov_path} has no entry for {task}"]
    config = settings.config(task)
    tag = _data_tag(config)
    key = config.run_key(tag)
    why = []
    if entry.get("preset") != settings.preset:
        why.append(f"preset {entry.get('preset')!r} in the evidence, {settings.preset!r} here")
    if not set(config.seeds) <= set(entry.get("seeds", ())):
        why.append(f"seeds {sorted(set(config.seeds) - set(entry.get('seeds', ())))} not in the evidence "
                   f"(it has {entry.get('seeds')})")
    if entry.get("run_key") != key:
        why.append(f"run key {entry.get('run_key')} in the evidence, {key} here")
    n = config.counts()
    expected = {"image_size": config.image_size, "base_channels": config.base_channels,
                "batch_size": config.batch_size, "epochs": config.epochs,
                "teacher_epochs": config.teacher_epochs or config.epochs,
                "cases": {"train": n["n_train"], "val": n["n_val"], "clean_test": n["n_test"],
                          "shifted_test": n["n_target"]}}
    why += [f"{name} {entry.get(name)!r} in the evidence, {value!r} here" for name, value in expected.items()
            if entry.get(name) != value]
    from .orchestration import precision_label

    if entry.get("precision") != precision_label(config):  # e.g. bf16 on a GPU vs fp32 on a CPU: not one network
        why.append(f"precision {entry.get('precision')!r} in the evidence, {precision_label(config)!r} here")
    methods = [m for m in FROM_EVIDENCE if m in settings.methods()]
    for method in methods:
        for role, overrides in ab.units(method):
            role_key = ab.role_config(config, role, overrides).run_key(tag)
            if role_key != entry.get("run_key"):
                why.append(f"{method}'s {role} trains under run key {role_key}, the evidence's under "
                           f"{entry.get('run_key')}")
    if why:
        return why
    scores, training = pd.read_csv(scores_path), pd.read_csv(training_path)
    wanted = _test_sets(settings, task)
    for seed in config.seeds:
        for method in methods:
            rows = scores[(scores["seed"] == seed) & (scores["method"] == FROM_EVIDENCE[method])]
            have = list(zip(rows["family"], rows["severity"].astype(int)))
            absent = [f"{f}@{s}" for f, s in wanted if have.count((f, s)) != 1]
            if absent:
                why.append(f"seed {seed} {FROM_EVIDENCE[method]}: test sets {absent[:5]}"
                           f"{' …' if len(absent) > 5 else ''} not measured exactly once")
            counts = {(f, int(s)): c for f, s, c in zip(rows["family"], rows["severity"], rows["n_cases"])}
            wrong = [f"{f}@{s}" for f, s in wanted if (f, s) in counts
                     and counts[(f, s)] != (n["n_test"] if f == "clean" else n["n_target"])]
            if wrong:
                why.append(f"seed {seed} {FROM_EVIDENCE[method]}: case counts differ on {wrong[:5]}")
            roles = set(training.loc[training["seed"] == seed, "role"])
            lacking = [r for r, _ in ab.units(method) if r not in roles]
            if lacking:
                why.append(f"seed {seed}: no training record of {lacking}")
    return why


def importable(settings: AblationSettings, task: str, evidence_dir: str = "book/results", log=_print) -> list[tuple]:
    """``(seed, method)`` of the methods :func:`import_evidence` would take from the evidence run now: those of
    ``FROM_EVIDENCE`` not yet done, none if :func:`evidence_mismatches` finds a reason (which is logged)."""
    why = evidence_mismatches(settings, task, evidence_dir)
    if why:
        log(f"{task}: evidence in {evidence_dir} not reused — " + "; ".join(why))
        return []
    return [(seed, method) for seed in settings.config(task).seeds
            for method in FROM_EVIDENCE if method in settings.methods() and not _method_done(settings, task, seed, method)]


def import_evidence(settings: AblationSettings, task: str, evidence_dir: str = "book/results", log=_print,
                    dry_run: bool = False) -> list[str]:
    """Write the part files of baseline and teacher_raw from the committed evidence run, so the
    ablation neither retrains nor retests them — only if :func:`evidence_mismatches` finds nothing (else
    nothing is imported and the reasons are logged). Keeps the ablation's test sets only, HD95 on clean
    only (as :func:`run_group` measures it); never overwrites a part file. Returns one line per
    (task, seed, method) imported (or, with ``dry_run``, that would be)."""
    import pandas as pd

    todo = importable(settings, task, evidence_dir, log)
    if not todo:
        return []
    prov_path, scores_path, training_path = _evidence_files(evidence_dir, task)
    entry = json.loads(prov_path.read_text())["tasks"][task]
    config = settings.config(task)
    tag = _data_tag(config)
    wanted = _test_sets(settings, task)
    order = {k: i for i, k in enumerate(wanted)}
    scores, training = pd.read_csv(scores_path), pd.read_csv(training_path)
    source = {"scores": str(scores_path), "training": str(training_path), "provenance": str(prov_path),
              "commit": entry.get("commit"), "evidence_method": None, "run_key": entry["run_key"],
              "date": entry.get("date")}
    done = []
    for seed, method in todo:
        folder = _parts(settings, task, seed)
        line = f"{task} seed {seed} {method}: imported from {scores_path} (evidence {FROM_EVIDENCE[method]}, " \
               f"commit {entry.get('commit')})"
        done.append(line)
        if dry_run:
            continue
        rows = scores[(scores["seed"] == seed) & (scores["method"] == FROM_EVIDENCE[method])].copy()
        rows["severity"] = rows["severity"].astype(int)
        position = pd.Series([order.get(k) for k in zip(rows["family"], rows["severity"])], index=rows.index)
        rows = rows.loc[position.dropna().sort_values(kind="stable").index]  # the ablation's test sets, its order
        rows = rows.assign(method=method, teacher_gate="")  # the gate is set when the task is gathered
        rows.loc[rows["family"] != "clean", "hd95_mm"] = float("nan")  # the ablation's HD95: clean only
        units = ab.units(method)
        records = []
        for role, overrides in units:
            record = training[(training["seed"] == seed) & (training["role"] == role)].iloc[0]
            cfg = ab.role_config(config, role, overrides)
            records.append({**{c: record.get(c) for c in TRAINING_COLUMNS}, "task": task, "seed": seed,
                            "method": method, "role": role,
                            "validated_on": _validated_on(role, cfg.train_config(role, seed)),
                            "run_key": cfg.run_key(tag)})
        train_rows = pd.DataFrame(records, columns=TRAINING_COLUMNS)
        note = {**source, "evidence_method": FROM_EVIDENCE[method]}
        _write_atomic(folder / f"{method}.imported.json",
                      lambda tmp: Path(tmp).write_text(json.dumps(note, indent=2) + "\n"))
        _write_atomic(folder / f"{method}.training.csv", lambda tmp: train_rows.to_csv(tmp, index=False))
        _write_atomic(folder / f"{method}.scores.csv",
                      lambda tmp: rows[SCORE_COLUMNS].to_csv(tmp, index=False))
        log(line)
    return done


# --------------------------------------------------------------------------- a finished task
def _read_provenance(settings: AblationSettings) -> dict:
    path = Path(settings.results_dir) / "provenance.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    return data if isinstance(data.get("tasks"), dict) else {"tasks": {}}


def task_done(settings: AblationSettings, task: str) -> bool:
    """Whether ``results_dir`` holds this task's ablations for these settings, seeds and methods."""
    config = settings.config(task)
    entry = _read_provenance(settings)["tasks"].get(task)
    return (entry is not None and entry.get("run_key") == config.run_key(_data_tag(config))
            and entry.get("preset") == settings.preset and set(config.seeds) <= set(entry.get("seeds", ()))
            and set(settings.methods()) <= set(entry.get("methods", {}))
            and (Path(settings.results_dir) / f"{task}.csv").exists())


def _gates(training):
    """``(seed, method) -> "pass"/"FAIL"`` from the teacher gate of :mod:`sikd_utils.stats` (baselines: n/a)."""
    from .stats import GATE_MARGIN

    val = training.set_index(["seed", "method", "role"])["best_val_dice"]
    gates = {}
    for (seed, method), group in training.groupby(["seed", "method"]):
        baseline, _ = ab.compared_with(method)
        teacher = [r for r in group["role"] if r in ("teacher", "raw_teacher")]
        if baseline is None or not teacher or (seed, baseline, "baseline") not in val.index:
            gates[(seed, method)] = "n/a"
        else:
            ok = val[(seed, method, teacher[0])] >= val[(seed, baseline, "baseline")] - GATE_MARGIN - 1e-12
            gates[(seed, method)] = "pass" if ok else "FAIL"
    return gates


def finished_methods(settings: AblationSettings, task: str):
    """What the part files hold for ``task``: ``(scores, training, methods)`` of every method tested on every
    seed, with each method's teacher gate. A method finished on all seeds is final whether or not the other
    methods are: the rest of the run cannot change its networks, its test sets or its baseline."""
    import pandas as pd

    config = settings.config(task)
    folders = [_parts(settings, task, seed) for seed in config.seeds]
    methods = [m for m in [*ab.BASELINES, *ab.VARIANTS]
               if all(_method_done(settings, task, s, m) for s in config.seeds)]
    if not methods:
        return pd.DataFrame(columns=SCORE_COLUMNS), pd.DataFrame(columns=TRAINING_COLUMNS), []
    scores = pd.concat([pd.read_csv(f / f"{m}.scores.csv") for m in methods for f in folders], ignore_index=True)
    training = pd.concat([pd.read_csv(f / f"{m}.training.csv") for m in methods for f in folders], ignore_index=True)
    gates = _gates(training)
    scores["teacher_gate"] = [gates[(s, m)] for s, m in zip(scores["seed"], scores["method"])]
    training["gate"] = [gates[(s, m)] if r in ("teacher", "raw_teacher") else "" for s, m, r in
                        zip(training["seed"], training["method"], training["role"])]
    return scores, training, methods


def _trained_on(folders, methods) -> dict:
    """Device, torch and precision of the networks, from the part files' own records (every distinct value):
    gathering part files is bookkeeping, and a gather run on a CPU must not relabel GPU-trained networks."""
    records = [json.loads(path.read_text()) for folder in folders for method in methods
               if (path := folder / f"{method}.provenance.json").exists()]
    values = {key: list(dict.fromkeys(str(r[key]) for r in records if r.get(key))) for key in ("device", "torch",
                                                                                               "precision")}
    return {key: "; ".join(found) for key, found in values.items() if found}


def _narrower_than(entry: dict | None, preset: str, run_key: str, methods, seeds) -> str | None:
    """Why a gather of ``methods`` x ``seeds`` would hold less than ``entry``'s, the same run's gather already
    in the results folder (None: it holds at least as much, or ``entry`` is of another run)."""
    if not entry or entry.get("preset") != preset or entry.get("run_key") != run_key:
        return None
    lost_methods = sorted(set(entry.get("methods", {})) - set(methods))
    lost_seeds = sorted(set(entry.get("seeds", [])) - set(seeds))
    if not lost_methods and not lost_seeds:
        return None
    return ", ".join(part for part in (f"method(s) {' '.join(lost_methods)}" if lost_methods else "",
                                       f"seed(s) {' '.join(map(str, lost_seeds))}" if lost_seeds else "") if part)


def _finish_task(settings: AblationSettings, task: str) -> Path | str:
    """Gather the part files of every method tested for every seed into ``results_dir``; record provenance (the
    networks' device and precision from their part files, where the gathering ran as ``gathered_on``).

    A gather never replaces a fuller one of the same run: then nothing is written and the reason is returned
    (the part files keep this run's results)."""
    from .orchestration import provenance
    from .results_schema import check_frame

    settings = settings.for_task(task)
    config = settings.config(task)
    folders = [_parts(settings, task, seed) for seed in config.seeds]
    scores, training, methods = finished_methods(settings, task)
    narrower = _narrower_than(_read_provenance(settings)["tasks"].get(task), settings.preset,
                              config.run_key(_data_tag(config)), methods, config.seeds)
    if narrower:
        return (f"{Path(settings.results_dir) / f'{task}.csv'} kept: it holds {narrower} that this gather lacks "
                "(this run's results stay in the part files)")
    source = f"{task}'s ablation part files under {folders[0].parent}"
    check_frame(scores, "scores", source, task=task, seeds=config.seeds, per_seed=methods)
    check_frame(training, "ablation_training", source, task=task, seeds=config.seeds, per_seed=methods)
    imported = {}  # method -> where its parts came from (see import_evidence)
    for method in methods:
        notes = {s: f / f"{method}.imported.json" for s, f in zip(config.seeds, folders)}
        notes = {s: json.loads(p.read_text()) for s, p in notes.items() if p.exists()}
        if notes:
            first = next(iter(notes.values()))
            imported[method] = {"seeds": sorted(notes), "evidence_method": first["evidence_method"],
                                "scores": first["scores"], "training": first["training"],
                                "commit": first["commit"], "run_key": first["run_key"]}
    results = Path(settings.results_dir)
    _write_atomic(results / f"{task}.csv", lambda tmp: scores.to_csv(tmp, index=False))
    _write_atomic(results / f"{task}_training.csv", lambda tmp: training.to_csv(tmp, index=False))
    tag = _data_tag(config)
    here = provenance(config, command=settings.command or None)
    entry = {**here, **_trained_on(folders, methods), "gathered_on": here["device"], "preset": settings.preset,
             "difficulty": config.difficulty, "run_key": config.run_key(tag), "seeds": list(config.seeds), "image_size": config.image_size,
             "base_channels": config.base_channels, "batch_size": config.batch_size, "epochs": config.epochs,
             "teacher_epochs": config.teacher_epochs or config.epochs, "families": list(settings.families),
             "severities": list(settings.severities()), "hd95_families": ["clean"],
             "methods": {m: {"baseline": ab.compared_with(m)[0], "reference": ab.compared_with(m)[1],
                             "overrides": ab.units(m)[-1][1], "roles": [r for r, _ in ab.units(m)],
                             "run_key": ab.role_config(config, *ab.units(m)[-1]).run_key(tag)} for m in methods},
             "train_seconds": float(training.drop_duplicates(["seed", "run_key", "role"])["train_seconds"].sum()),
             "wall_time_note": "train_seconds sums every network once (shared teachers counted once; imported "
                               "methods' networks with the seconds the evidence run spent on them); "
                               "jobs ran side by side, so elapsed time was shorter",
             "imported_from_evidence": imported}
    data = _read_provenance(settings)
    data["tasks"][task] = entry
    data["schema"] = {"<task>.csv": "one row per (task, seed, method, family, severity); method = an ablation variant "
                                    "of sikd_utils.ablations or a baseline; Dice (and HD95 on clean/target) averaged "
                                    "over classes of the per-class mean over cases; teacher_gate of the method's teacher",
                      "<task>_training.csv": "one row per (task, seed, method, role) trained or reused: best epoch, "
                                             "best validation Dice, what it was validated on, run key, gate"}
    _write_atomic(results / "provenance.json", lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))
    return results / f"{task}.csv"


# --------------------------------------------------------------------------- the plan
def measured_epoch_seconds(settings: AblationSettings, task: str) -> dict[tuple[str, str], tuple[float, float]]:
    """``(role, backbone) -> (fastest, slowest)`` of the runs' median epoch seconds in ``task``'s committed
    histories (``<method>.history.csv``; first epochs left out, cuDNN tunes there). A range, because an epoch's
    time depends on how many jobs shared the GPU (an abdomen SwinUNETR teacher epoch took 4.3 s beside 5 others,
    a fundus one 11.9 s beside 14): what the plan's minutes can honestly say."""
    import pandas as pd

    config = settings.config(task)
    rates: dict[tuple[str, str], list[float]] = {}
    for path in sorted(_parts(settings, task, 0).parent.glob("seed*/*.history.csv")):
        try:
            roles = dict(ab.units(path.name[:-len(".history.csv")]))
        except ValueError:  # a method this version does not know
            continue
        history = pd.read_csv(path)
        for role, rows in history[history["epoch"] >= 2].groupby("role"):
            if role in roles and len(rows):
                backbone = ab.role_config(config, role, roles[role]).backbone
                rates.setdefault((role, backbone), []).append(float(rows["seconds"].median()))
    return {key: (min(values), max(values)) for key, values in rates.items()}


def plan_jobs(settings: AblationSettings) -> list[dict]:
    """The jobs a run of ``settings`` would start now, without training or writing anything: per job its task,
    seed, methods, whether it follows a lead (it then only trains students), the networks it trains as
    ``(role, backbone, epochs)``, their cost in U-Net epochs (:data:`EPOCH_COST`) and ``minutes``, the
    training's range at :func:`measured_epoch_seconds` (None when a network has no measured rate, and testing
    not counted). Finished methods and those
    the evidence run would supply (as ``--check-evidence`` says) are left out; a network whose checkpoint
    a run folder on this machine already holds is counted anyway, so the cost errs on the long side."""
    jobs = []
    for task in [t for t in settings.tasks if not task_done(settings, t)]:
        config = settings.config(task)
        rates = measured_epoch_seconds(settings, task)
        imported = (set(importable(settings, task, settings.evidence_dir, log=lambda _: None))
                    if settings.evidence_dir is not None else set())
        for group in job_groups(settings, task):
            for seed in config.seeds:
                lead, followers = lead_and_followers(settings, task, seed, group)
                lead = [m for m in lead if not _method_done(settings, task, seed, m) and (seed, m) not in imported]
                for methods, follows in ([(lead, False)] if lead else []) + [(f, True) for f in followers]:
                    networks = {}
                    for method in methods:
                        for role, overrides in ab.units(method)[1 if follows else 0:]:
                            cfg = ab.role_config(config, role, overrides)
                            networks.setdefault((role, cfg.run_key("plan")),
                                                (role, cfg.backbone, cfg.train_config(role, 0).epochs))
                    cost = sum(epochs * EPOCH_COST[backbone] for _, backbone, epochs in networks.values())
                    timed = [(epochs, rates.get((role, backbone))) for role, backbone, epochs in networks.values()]
                    minutes = (None if not timed or any(r is None for _, r in timed) else
                               tuple(sum(e * r[k] for e, r in timed) / 60 for k in (0, 1)))
                    jobs.append({"task": task, "seed": seed, "methods": methods, "follows_lead": follows,
                                 "networks": list(networks.values()), "unet_epochs": cost, "minutes": minutes})
    return jobs


def plan_lines(jobs: list[dict]) -> list[str]:
    """:func:`plan_jobs` as lines to print, with the total."""
    lines = []
    for job in jobs:
        nets = ", ".join(f"{role} {backbone} {epochs} ep" for role, backbone, epochs in job["networks"])
        after = " (after its group's lead)" if job["follows_lead"] else ""
        timed = f", {_minutes(job['minutes'])}" if job["minutes"] else ""
        lines.append(f"{job['task']} seed {job['seed']} [{', '.join(job['methods'])}]{after}: {nets} "
                     f"(~{job['unet_epochs']:.0f} U-Net epochs{timed})")
    total = sum(job["unet_epochs"] for job in jobs)
    lines.append(f"{len(jobs)} jobs, ~{total:.0f} U-Net epochs of training in all (a SwinUNETR epoch counted as "
                 f"{EPOCH_COST['swin_unetr']:g}), plus testing" if jobs else "nothing to train: every method is done")
    timed = [job["minutes"] for job in jobs if job["minutes"]]
    if timed:
        longest = (max(m[0] for m in timed), max(m[1] for m in timed))
        lines.append(f"at the epoch times measured so far (committed histories; they depend on how many jobs share "
                     f"the GPU): the longest job's training {_minutes(longest)}, the critical path when every job "
                     f"runs side by side ({len(timed)} of {len(jobs)} jobs timed; testing not counted)")
    return lines


def _minutes(span: tuple[float, float]) -> str:
    return f"{span[0]:.1f}–{span[1]:.1f} min" if round(span[0], 1) != round(span[1], 1) else f"{span[0]:.1f} min"


# --------------------------------------------------------------------------- the run
#: A job that ``--finish-only`` stopped is tried again up to this many times, each after
#: RETRY_AFTER_SECONDS and only while RETRY_MIN_LEFT_SECONDS would remain: its estimate came from epochs timed
#: beside the jobs of the moment, which may have ended since, and alone it may well finish (a case is in
#: book/results/RUNLOG.md). Each try trains two epochs before it is judged.
SECOND_CHANCES = 3
RETRY_AFTER_SECONDS = 60.0
RETRY_MIN_LEFT_SECONDS = 120.0


def ablate(settings: AblationSettings, log=_print) -> int:
    """Run (or continue) the ablations; returns :data:`~sikd_utils.jobs.EXIT_DONE` or ``EXIT_UNFINISHED``.

    What it cannot honour is refused before any work (:func:`~sikd_utils.reproduce.preflight`, and a parts folder
    that cannot be written); a piece of the same run (some ``variants`` or ``seeds``) may write its part files
    beside another piece's gather, but results of another preset or run key are replaced only with
    ``replace_results``. The output folders are locked for the run."""
    from .run_guard import FolderLock, writable_folder

    entries = _read_provenance(settings)["tasks"]

    def same_run(task):
        key = settings.config(task).run_key(_data_tag(settings.config(task)))
        entry = entries.get(task)
        return task_done(settings, task) or (entry is not None and entry.get("preset") == settings.preset
                                             and entry.get("run_key") == key)

    if settings.parts_dir:
        writable_folder(settings.parts_dir, "--parts-dir")
    preflight(settings, same_run, entries.get, lambda t: settings.config(t).run_key(_data_tag(settings.config(t))))
    folders = dict.fromkeys([settings.out_dir, settings.results_dir, *([settings.parts_dir] if settings.parts_dir else [])])
    with contextlib.ExitStack() as held:  # a lock refused releases those already taken
        for folder in folders:
            held.enter_context(FolderLock(folder, settings.command, log))
        return _ablate(settings, log)


def _ablate(settings: AblationSettings, log) -> int:
    start = time.time()
    deadline = start + settings.max_minutes * 60 - 20 if settings.max_minutes else None
    pending = [t for t in settings.tasks if not task_done(settings, t)]
    for task in settings.tasks:
        if task not in pending:
            log(f"{task}: ablations already in {settings.results_dir} — skipped")
        elif settings.evidence_dir is not None:  # what the evidence run measured is not trained again
            import_evidence(settings, task, settings.evidence_dir, log=log)
    groups = [(task, seed, group) for task in pending for group in job_groups(settings, task)
              for seed in settings.config(task).seeds]
    groups.sort(key=lambda j: -sum(_epochs(settings.config(j[0]), m) for m in j[2]))  # longest first
    remaining = {task: set() for task in pending}  # (seed, method) not yet done
    jobs, followers = [], {}
    for task, seed, group in groups:
        lead, then = lead_and_followers(settings, task, seed, group)
        jobs.append((settings, task, seed, lead, deadline))
        followers[(task, seed, tuple(lead))] = then
        remaining[task].update((seed, m) for m in [*lead, *(m for job in then for m in job)])
    outcomes = []
    tries = {}  # (task, seed, group) -> second chances taken

    def collect(outcome):
        outcomes.append(outcome)
        task, seed, group = outcome["task"], outcome["seed"], tuple(outcome["group"])
        job = (task, seed, group)
        log(f"{task} seed {seed} [{', '.join(group)}]: {outcome['status']}{outcome_detail(outcome)} "
            f"[{(time.time() - start) / 60:.1f} min]")
        if outcome.get("unfinishable") and tries.get(job, 0) < SECOND_CHANCES and deadline is not None and \
                deadline - time.time() > RETRY_AFTER_SECONDS + RETRY_MIN_LEFT_SECONDS:
            tries[job] = tries.get(job, 0) + 1  # its estimate was made beside jobs that may have ended by then
            log(f"{task} seed {seed} [{', '.join(group)}]: will try again in {RETRY_AFTER_SECONDS:.0f} s "
                f"(second chance {tries[job]} of {SECOND_CHANCES})")
            return [(settings, task, seed, list(group), deadline, RETRY_AFTER_SECONDS)]
        if outcome["status"] != "done":
            return []  # its followers wait for the next piece
        remaining[task].difference_update((seed, m) for m in group)
        if not remaining[task]:
            written = _finish_task(settings, task)
            if isinstance(written, str):
                log(f"{task}: finished — {written}")
                return [(settings, task, seed, methods, deadline) for methods in followers.pop((task, seed, group), [])]
            left, seeds = ab.not_gathered(_read_provenance(settings)["tasks"][task])
            missing = []
            if left:
                missing.append(f"{len(left)} method(s) of the full ablation not tested yet, {' '.join(left)}")
            if seeds:
                missing.append(f"seed(s) {' '.join(map(str, seeds))} of the preset not in it")
            log(f"{task}: finished — results written to {written}" + (
                f" (the chosen part only: {'; '.join(missing)}; the book reads {task} as interim until the full "
                f"ablation is gathered)" if missing else ""))
        return [(settings, task, seed, methods, deadline) for methods in followers.pop((task, seed, group), [])]

    run_jobs(_run_group_safely, jobs, settings.workers, collect, log)
    unfinished = sorted(task for task in pending if remaining[task])
    return closing_status(outcomes, unfinished, start, log,
                          f"ablations of {', '.join(settings.tasks)} in {settings.results_dir}", settings.debug)


# --------------------------------------------------------------------------- command line
def add_arguments(parser) -> None:
    """The options of ``python -m sikd_utils ablate``."""
    from .data.tasks import TASKS
    from .presets import PRESETS

    parser.add_argument("--preset", default="gpu", choices=sorted(PRESETS), help="scale of the run (sikd_utils/presets.py)")
    parser.add_argument("--tasks", nargs="+", default=list(ABLATION_TASKS), choices=sorted(TASKS), metavar="TASK",
                        help="tasks to run (default: one 2D and one 3D task)")
    parser.add_argument("--variants", nargs="+", default=None, metavar="VARIANT", choices=list(ab.VARIANTS),
                        help=f"ablation variants (default: all: {' '.join(ab.VARIANTS)}); SIKD and the baselines "
                             "they need are always added")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default: the preset's)")
    parser.add_argument("--out-dir", default="runs", help="checkpoints and data cache")
    parser.add_argument("--results-dir", default=None,
                        help="where finished tasks' results go (default: book/results/ablations, or "
                             "book/results/ablations/difficulty<k> at --difficulty k)")
    parser.add_argument("--difficulty", type=difficulty_arg, default=0,
                        help="level of the synthetic suite, 0 (the original phantoms) to 4")
    parser.add_argument("--parts-dir", default=None,
                        help="per-(task, seed, method) part files (default: RESULTS_DIR/parts; commit them to "
                             "carry a half-done task to the next session)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop cleanly before this many minutes (rerun the same command to continue)")
    parser.add_argument("--workers", type=int, default=1,
                        help="jobs run side by side as processes (methods sharing a teacher: the teacher with "
                             "one student first, then each other student as a job of its own)")
    parser.add_argument("--finish-only", action="store_true",
                        help="for a session's last piece (its unfinished checkpoints are lost with the machine): "
                             "stop a job after an epoch once its training and testing left cannot end before "
                             "--max-minutes, giving the GPU to jobs that can (a job so stopped is tried again "
                             f"{RETRY_AFTER_SECONDS:.0f} s later, up to {SECOND_CHANCES} times, as its neighbours "
                             "may have ended)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument("--progress", action="store_true", help="show per-run progress bars")
    parser.add_argument("--evidence-dir", default=None,
                        help="the evidence run's results, whose baseline and control (= teacher_raw) are "
                             "imported when they were made with these settings (default: book/results, or "
                             "book/results/difficulty<k> at --difficulty k)")
    parser.add_argument("--no-reuse-evidence", action="store_true",
                        help="train and test baseline and teacher_raw here even if the evidence run has them")
    parser.add_argument("--plan", action="store_true",
                        help="only list the jobs this command would run, the networks each trains and, where the "
                             "committed histories timed them, its minutes (nothing is trained or written)")
    parser.add_argument("--replace-results", action="store_true",
                        help="replace ablations of another preset or run key in --results-dir; without it such a "
                             "run is refused before any work")
    parser.add_argument("--check-evidence", action="store_true",
                        help="only say which methods would be imported from the evidence run (nothing is written)")


def main(args) -> int:
    """Run ``python -m sikd_utils ablate`` with parsed ``args``; returns the exit status."""
    command = "python -m sikd_utils " + " ".join(sys.argv[1:]) if sys.argv[1:] else "python -m sikd_utils ablate"
    settings = AblationSettings(evidence_dir=None if args.no_reuse_evidence else args.evidence_dir,
                                preset=args.preset, tasks=tuple(dict.fromkeys(args.tasks)),
                                seeds=tuple(args.seeds) if args.seeds else None, out_dir=args.out_dir,
                                results_dir=args.results_dir, parts_dir=args.parts_dir,
                                max_minutes=args.max_minutes, workers=args.workers, finish_only=args.finish_only,
                                device=args.device, progress=args.progress, command=command,
                                variants=tuple(args.variants) if args.variants else None,
                                replace_results=args.replace_results, debug=getattr(args, "debug", False),
                                difficulty=args.difficulty)
    if args.plan:
        _print("\n".join(plan_lines(plan_jobs(settings))))
        return 0
    if args.check_evidence:
        for task in settings.tasks:
            lines = import_evidence(settings, task, args.evidence_dir, dry_run=True)
            _print("\n".join(lines) if lines else f"{task}: nothing to import")
        return 0
    return ablate(settings)
