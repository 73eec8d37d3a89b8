"""One task end to end: train the roles, test every method on every test set, tabulate per seed.

The same pipeline serves notebooks 03–06 and the command line, so a GPU machine can run it without
Jupyter. Trained weights are kept under ``out_dir/<task>/<settings hash>/seed<k>/<role>/``: rerunning
with the same settings reuses them (and an interrupted run resumes), which is also how the notebooks
share models. Statistics over seeds live in :mod:`sikd_utils.stats`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .configuration import ExperimentConfig, Splits, TestSet, synthetic_splits
from .data.tasks import get_task
from .runtime import resolve_device, resolve_precision
from .train import train, build_model

__all__ = ["ExperimentResult", "METHOD_ROLES", "TEACHER_OF", "roles_for", "train_roles", "evaluate_methods",
           "seed_scores_of", "run_task", "domain_gap", "provenance"]

# method -> the role whose model is tested; distilled roles -> the role of their teacher
METHOD_ROLES = {"baseline": "baseline", "sikd": "student", "control": "control"}
TEACHER_OF = {"student": "teacher", "control": "raw_teacher"}
SCORE_KEYS = ["seed", "method", "family", "severity", "test_set"]


def roles_for(methods: Sequence[str]) -> list[str]:
    """The roles to train, in dependency order, for ``methods`` (e.g. SIKD needs teacher then student)."""
    unknown = [m for m in methods if m not in METHOD_ROLES]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {tuple(METHOD_ROLES)}, got {tuple(methods)}")
    roles = []
    for method in METHOD_ROLES:  # fixed order: baseline, sikd, control
        if method in methods:
            role = METHOD_ROLES[method]
            roles += [TEACHER_OF[role], role] if role in TEACHER_OF else [role]
    return roles


@dataclass
class ExperimentResult:
    config: ExperimentConfig
    per_case: "pd.DataFrame"  # seed, method, family, severity, test_set, case, class, dice, hd95_mm, …  # noqa: F821
    seed_scores: "pd.DataFrame"  # one row per (seed, method, test set): mean Dice and HD95  # noqa: F821
    comparison: "pd.DataFrame"  # one row per test set: each method, paired differences with 95 % CI  # noqa: F821
    training: "pd.DataFrame | None" = None  # one row per (seed, role): best epoch and validation Dice  # noqa: F821
    histories: dict = field(default_factory=dict)  # (seed, role) -> list of epoch records
    provenance: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # (seed, role) -> trained UNet (last seed's kept in memory)

    def save(self, folder: str | Path) -> Path:
        """Write per_case.csv, seed_scores.csv, comparison.csv and result.json into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.per_case.to_csv(folder / "per_case.csv", index=False)
        self.seed_scores.to_csv(folder / "seed_scores.csv", index=False)
        self.comparison.to_csv(folder / "comparison.csv", index=False)
        if self.training is not None:
            self.training.to_csv(folder / "training.csv", index=False)
        payload = {
            "config": dataclasses.asdict(self.config),
            "provenance": self.provenance,
            "comparison": json.loads(self.comparison.to_json(orient="records")),
            "histories": {f"seed{s}/{r}": h for (s, r), h in self.histories.items()},
        }
        (folder / "result.json").write_text(json.dumps(payload, indent=2, default=float))
        return folder


def _commit() -> str:
    commit = os.environ.get("SIKD_COMMIT")  # for copies of the tree without .git
    if commit:
        return commit
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def precision_label(config: ExperimentConfig) -> str:
    """How ``config`` computes on its device, as provenance records it ("bf16 autocast, channels-last")."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    if device.type == "cuda":
        return f"{precision} autocast, channels-last" if precision != "fp32" else "fp32, channels-last"
    return precision


def provenance(config: ExperimentConfig, command: str | None = None) -> dict:
    """Where and how a result was computed: commit, device, torch version, precision, date, command."""
    import torch

    device = resolve_device(config.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {"commit": _commit(), "device": name, "torch": torch.__version__, "precision": precision_label(config),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": command or f"python -m sikd_utils run --task {config.task} ..."}


def train_roles(config: ExperimentConfig, splits: Splits, roles: Sequence[str], seed: int, bar=None,
                callbacks: Sequence[Callable[[dict], None]] = (), teachers: dict | None = None) -> dict:
    """Train (or reload, when the run folder already holds them) the given roles for one seed.

    Roles are trained in the order given; a distilled role ("student", "control") needs its teacher
    ("teacher", "raw_teacher") earlier in the list or already trained in the run folder. Returns
    ``role -> TrainResult``. With a tqdm ``bar`` (see :func:`run_task`), epochs advance that bar instead
    of each run drawing its own; ``callbacks`` receive every epoch's record (e.g. to stop at a deadline).
    ``teachers`` maps a teacher role to a trained model or run folder trained under *other* settings (the
    ablations share one teacher among students that differ only in how they are distilled).
    """
    from .data.slices import SliceDataset

    train_ds = SliceDataset(splits.train, config.image_size, augment=config.augment, foreground_only=True,
                            seed=config.data_seed)
    val_ds = SliceDataset(splits.val, config.image_size, augment=False, foreground_only=True)
    run_root = config.run_root(splits.tag)

    def trained_before(teacher_role):
        return ((teachers and teacher_role in teachers)
                or (run_root is not None and (run_root / f"seed{seed}" / teacher_role / "best.pt").exists()))

    for index, role in enumerate(roles):  # refused before any training, not after the roles before it
        teacher_role = TEACHER_OF.get(role)
        if teacher_role and teacher_role not in roles[:index] and not trained_before(teacher_role):
            raise ValueError(f"role {role!r} needs a trained {teacher_role!r}: put {teacher_role!r} before "
                             f"{role!r} in roles (got {list(roles)})")
    results = {}
    for role in roles:
        folder = run_root / f"seed{seed}" / role if run_root else None
        teacher = None
        if role in TEACHER_OF:
            teacher_role = TEACHER_OF[role]
            if teacher_role in results:
                teacher = results[teacher_role].model
            elif teachers and teacher_role in teachers:
                teacher = teachers[teacher_role]
            else:
                teacher = run_root / f"seed{seed}" / teacher_role
        model = config.build_model(role, seed=seed)
        train_config = config.train_config(role, seed)
        role_callbacks = list(callbacks)
        if bar is not None:
            train_config = dataclasses.replace(train_config, progress=False)
            bar.set_postfix_str(f"seed {seed}, {role}")
            done = bar.n
            role_callbacks.append(lambda record: bar.update())
        results[role] = train(model, train_ds, train_config, val_ds, teacher=teacher,
                              checkpoint_dir=folder, callbacks=role_callbacks, data_identity=splits.identity)
        results[role].extra["steps"] = train_config.epochs * -(-len(train_ds) // train_config.batch_size)
        if bar is not None:  # a run reloaded from its folder reports no epochs: count it as done
            bar.update(max(0, done + train_config.epochs - bar.n))
    return results


def evaluate_methods(models: dict, splits: Splits, config: ExperimentConfig, seed: int,
                     distances: Callable[[TestSet], bool] = lambda key: True, before_each=None,
                     bar=None) -> "pd.DataFrame":  # noqa: F821
    """Per-case scores of every ``method -> model`` on every test set of ``splits`` (one tidy table).

    ``distances(key)`` says whether HD95 is computed on that test set (it is the slow part);
    ``before_each(method, key)`` is called before each evaluation (e.g. to stop at a deadline).
    """
    import pandas as pd

    from .evaluation import evaluate_cases

    spec = get_task(config.task)
    frames = []
    for method, model in models.items():
        for key, cases in splits.tests.items():
            if before_each is not None:
                before_each(method, key)
            if bar is not None:
                bar.set_postfix_str(f"seed {seed}, testing {method} on {key}")
            table = evaluate_cases(model, cases, spec, config.image_size, device=config.device, progress=False,
                                   distances=distances(key), precision=config.precision)
            frames.append(table.per_case.assign(seed=seed, method=method, family=key.family,
                                                severity=key.severity, test_set=str(key)))
    per_case = pd.concat(frames, ignore_index=True)
    return per_case[SCORE_KEYS + [c for c in per_case.columns if c not in SCORE_KEYS]]


def seed_scores_of(per_case) -> "pd.DataFrame":  # noqa: F821
    """One number per (seed, method, test set): the mean over classes of each class's mean over cases."""
    class_means = per_case.groupby(SCORE_KEYS + ["class"], sort=False)[["dice", "hd95_mm"]].mean()
    return class_means.groupby(level=list(range(len(SCORE_KEYS))), sort=False).mean().reset_index()


def run_task(config: ExperimentConfig | None = None, splits: Splits | None = None,
             methods: Sequence[str] = ("baseline", "sikd"), **overrides) -> ExperimentResult:
    """Train the roles ``methods`` need for every seed; evaluate each method on every test set.

    Keyword overrides update ``config`` (e.g. ``run_task(task="polyp", epochs=5)``).
    ``methods`` is any subset of ``("baseline", "sikd", "control")``: ``("baseline",)`` trains and scores
    the baseline only (see :func:`domain_gap`); ``"control"`` adds the plain feature-distillation control.
    """
    import pandas as pd

    from . import stats

    config = dataclasses.replace(config or ExperimentConfig(), **overrides)
    roles = roles_for(methods)
    if config.out_dir is not None:  # an unwritable output folder fails now, not after training
        from .checks import check_writable_dir

        check_writable_dir("out_dir", config.out_dir)
    if splits is not None and not isinstance(splits, Splits):
        raise TypeError(f"splits must be a Splits (synthetic_splits or real_splits), got {type(splits).__name__}")
    splits = splits or synthetic_splits(config)
    run_root = config.run_root(splits.tag)

    from tqdm.auto import tqdm

    # One bar per task, counted in epochs over all seeds and roles (one widget in a notebook).
    total = len(config.seeds) * sum(config.train_config(role, 0).epochs for role in roles)
    bar = tqdm(desc=config.task, total=total, unit="epoch", disable=not config.progress)
    frames, histories, models, training = [], {}, {}, []
    for seed in config.seeds:
        results = train_roles(config, splits, roles, seed, bar=bar)
        training += [{"seed": seed, "role": role, "best_epoch": r.best_epoch, "best_val_dice": r.best_val_dice,
                      "validated_on": "mean images" if role == "teacher" else "raw images",
                      "steps": r.extra.get("steps")}
                     for role, r in results.items()]
        histories.update({(seed, role): r.history for role, r in results.items()})
        models = {(seed, role): r.model for role, r in results.items()}
        tested = {m: results[METHOD_ROLES[m]].model for m in METHOD_ROLES if m in methods}
        frames.append(evaluate_methods(tested, splits, config, seed, bar=bar))
    bar.set_postfix_str("done")
    bar.close()

    per_case = pd.concat(frames, ignore_index=True)
    seed_scores = seed_scores_of(per_case)
    comparison = (stats.compare_methods(seed_scores) if len(methods) > 1 and "baseline" in methods
                  else stats.method_summary(seed_scores))
    result = ExperimentResult(config, per_case, seed_scores, comparison, pd.DataFrame(training), histories,
                              {**provenance(config), "data": splits.identity}, models)
    if run_root is not None:
        result.save(run_root / "results")
    return result


def domain_gap(config: ExperimentConfig | None = None, splits: Splits | None = None, **overrides):
    """How much a plain U-Net trained on the source domain loses on each test set (mean ± CI over seeds).

    Shares trained baselines with :func:`run_task` (same settings → same run folder).
    """
    result = run_task(config, splits, methods=("baseline",), **overrides)
    table = result.comparison.copy()
    source = table.loc[table["family"] == "clean", "dice"]
    table["gap"] = table["dice"] - (float(source.iloc[0]) if len(source) else float("nan"))
    return table
