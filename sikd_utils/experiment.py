"""One task end to end: data → teacher → baseline and SIKD student → per-case scores → seed statistics.

The same pipeline serves notebook 06 and the command line (``python -m sikd_utils run ...``), so a GPU
machine can run it at paper scale without Jupyter. Trained weights are kept under
``out_dir/<task>/<settings hash>/seed<k>/<role>/``: rerunning with the same settings reuses them (and
an interrupted run resumes), which is also how notebooks 03–06 share models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


from .data.case import Case
from .data.tasks import get_task
from .train import TrainConfig, build_model, resolve_device, train

__all__ = ["ExperimentConfig", "Splits", "ExperimentResult", "synthetic_splits", "run_task", "domain_gap",
           "compare_methods", "method_summary", "severity_table", "train_roles", "real_splits", "METHODS"]

METHODS = ("baseline", "sikd")  # "sikd" is the distilled student
# default synthetic case counts (train, validation, source test, target test): a volume holds 6-12
# slices, so 2D tasks get proportionally more images for a similar number of training slices
VOLUME_COUNTS = (6, 3, 6, 6)
IMAGE_COUNTS = (32, 8, 12, 12)
COUNT_FIELDS = ("n_train", "n_val", "n_test", "n_target")


@dataclass
class ExperimentConfig:
    """Everything that defines one task's experiment. CPU-sized defaults; raise them on a GPU."""

    task: str = "cardiac"
    image_size: int = 64
    base_channels: int = 8  # 64 = the paper's U-Net
    epochs: int = 20
    teacher_epochs: int | None = None  # default: same as epochs
    batch_size: int = 8
    lr: float = 1e-3
    distill_weight: float = 2.0
    seeds: tuple[int, ...] = (0, 1, 2)
    # synthetic data (ignored when splits are given); None = the task's default below
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    n_target: int | None = None
    severities: tuple[float, ...] = (1.0,)
    shape_shift: bool = True
    data_seed: int = 0
    augment: bool = True
    device: str = "auto"
    out_dir: str | None = "runs"
    progress: bool = True

    def __post_init__(self):
        get_task(self.task)  # unknown task: a clear error now, not later
        # The case counts stay None when not given, so that dataclasses.replace(config, task=...) (and
        # run_task(task=...)) picks the new task's defaults; counts() resolves them.
        for name in COUNT_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"{name} must be a positive integer or None (the task's default), got {value!r}")
        self.seeds = tuple(int(s) for s in self.seeds)
        self.severities = tuple(float(s) for s in self.severities)
        if not self.seeds:
            raise ValueError("at least one seed is needed")

    def counts(self) -> dict[str, int]:
        """Synthetic case counts (train, val, test, target), the task's defaults where not given."""
        defaults = VOLUME_COUNTS if get_task(self.task).spatial_dims == 3 else IMAGE_COUNTS
        return {name: int(default if getattr(self, name) is None else getattr(self, name))
                for name, default in zip(COUNT_FIELDS, defaults)}

    def train_config(self, role: str, seed: int) -> TrainConfig:
        epochs = self.teacher_epochs if role == "teacher" and self.teacher_epochs else self.epochs
        return TrainConfig(role=role, epochs=epochs, batch_size=self.batch_size, lr=self.lr,
                           distill_weight=self.distill_weight, seed=seed, device=self.device,
                           progress=self.progress)

    def run_root(self, data_tag: str) -> Path | None:
        """Folder holding this configuration's trained models (None when nothing is saved)."""
        if self.out_dir is None:
            return None
        return Path(self.out_dir) / self.task / self.run_key(data_tag)

    def run_key(self, data_tag: str) -> str:
        """Short hash of the settings that change trained weights (not seeds, test sets or device)."""
        keys = ("task", "image_size", "base_channels", "epochs", "teacher_epochs", "batch_size", "lr",
                "distill_weight", "augment")
        payload = json.dumps({k: getattr(self, k) for k in keys} | {"data": data_tag}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:10]


@dataclass
class Splits:
    """Training, validation and named test sets of Cases (test set "source" is the intra-domain one)."""

    train: list[Case]
    val: list[Case]
    tests: dict[str, list[Case]]
    tag: str  # identifies the data for the run hash (e.g. "synthetic:n=24,6,seed=0")


def synthetic_splits(config: ExperimentConfig) -> Splits:
    """Source cases split into train/val/test, plus one target test set per severity and a shape shift."""
    from .data.synthetic import make_cases

    n = config.counts()
    n_train, n_val = n["n_train"], n["n_val"]
    source = make_cases(config.task, "source", n_train + n_val + n["n_test"], config.image_size,
                        seed=config.data_seed)
    train_cases = source[:n_train]
    val_cases = source[n_train : n_train + n_val]
    tests = {"source": source[n_train + n_val :]}
    for severity in config.severities:
        tests[f"target@{severity:g}"] = make_cases(config.task, "target", n["n_target"], config.image_size,
                                                  seed=config.data_seed, severity=severity)
    if config.shape_shift:
        tests["shape_shift@1"] = make_cases(config.task, "shape_shift", n["n_target"], config.image_size,
                                            seed=config.data_seed, severity=1.0)
    tag = f"synthetic:{n_train},{n_val},seed={config.data_seed}"
    return Splits(train_cases, val_cases, tests, tag)


@dataclass
class ExperimentResult:
    config: ExperimentConfig
    per_case: "pd.DataFrame"  # seed, method, test_set, case, class, dice, hd95_mm, hd95_vox, empty  # noqa: F821
    seed_scores: "pd.DataFrame"  # one row per (seed, method, test_set): mean Dice and HD95  # noqa: F821
    comparison: "pd.DataFrame"  # one row per test_set: baseline, SIKD, paired difference with 95 % CI  # noqa: F821
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


def _provenance(config: ExperimentConfig) -> dict:
    import torch

    commit = os.environ.get("SIKD_COMMIT")  # for copies of the tree without .git
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
        except (OSError, subprocess.SubprocessError):
            commit = "unknown"
    device = resolve_device(config.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {"commit": commit, "device": name, "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": f"python -m sikd_utils run --task {config.task} ..."}


def compare_methods(seed_scores, metric: str = "dice") -> "pd.DataFrame":  # noqa: F821
    """Per test set: mean ± 95 % CI over seeds for baseline and SIKD, and of their paired difference."""
    import pandas as pd

    from .metrics import mean_ci

    rows = []
    for test_set, group in seed_scores.groupby("test_set", sort=False):
        wide = group.pivot(index="seed", columns="method", values=metric)
        row = {"test_set": test_set, "n_seeds": len(wide)}
        for method in METHODS:
            row[method], row[f"{method}_ci"] = mean_ci(wide[method].tolist())
        diff = (wide["sikd"] - wide["baseline"]).tolist()
        row["delta"], row["delta_ci"] = mean_ci(diff)
        row["sikd_wins"] = int(sum(d > 0 for d in diff))
        rows.append(row)
    return pd.DataFrame(rows)


def train_roles(config: ExperimentConfig, splits: Splits, roles: Sequence[str], seed: int, bar=None) -> dict:
    """Train (or reload, when the run folder already holds them) the given roles for one seed.

    Roles are trained in the order given; "student" needs "teacher" earlier in the list or already
    trained in the run folder. Returns ``role -> TrainResult``. With a tqdm ``bar`` (see
    :func:`run_task`), epochs advance that bar instead of each run drawing its own.
    """
    from .data.slices import SliceDataset

    spec = get_task(config.task)
    train_ds = SliceDataset(splits.train, config.image_size, augment=config.augment, foreground_only=True,
                            seed=config.data_seed)
    val_ds = SliceDataset(splits.val, config.image_size, augment=False, foreground_only=True)
    run_root = config.run_root(splits.tag)
    results = {}
    for role in roles:
        folder = run_root / f"seed{seed}" / role if run_root else None
        teacher = None
        if role == "student":
            if "teacher" in results:
                teacher = results["teacher"].model
            elif run_root is not None and (run_root / f"seed{seed}" / "teacher" / "best.pt").exists():
                teacher = run_root / f"seed{seed}" / "teacher"
            else:
                raise ValueError("the student needs a teacher: put 'teacher' before 'student' in roles")
        model = build_model(role, spec.in_channels, spec.num_classes, config.base_channels, seed=seed)
        train_config = config.train_config(role, seed)
        callbacks = ()
        if bar is not None:
            train_config = dataclasses.replace(train_config, progress=False)
            bar.set_postfix_str(f"seed {seed}, {role}")
            done = bar.n
            callbacks = (lambda record: bar.update(),)
        results[role] = train(model, train_ds, train_config, val_ds, teacher=teacher,
                              checkpoint_dir=folder, callbacks=callbacks)
        if bar is not None:  # a run reloaded from its folder reports no epochs: count it as done
            bar.update(max(0, done + train_config.epochs - bar.n))
    return results


def method_summary(seed_scores, metric: str = "dice") -> "pd.DataFrame":  # noqa: F821
    """Per (test set, method): mean ± 95 % CI over seeds."""
    import pandas as pd

    from .metrics import mean_ci

    rows = []
    for (test_set, method), group in seed_scores.groupby(["test_set", "method"], sort=False):
        mean, half = mean_ci(group[metric].tolist())
        rows.append({"test_set": test_set, "method": method, metric: mean, f"{metric}_ci": half,
                     "n_seeds": len(group)})
    return pd.DataFrame(rows)


def domain_gap(config: ExperimentConfig | None = None, splits: Splits | None = None, **overrides):
    """How much a plain U-Net trained on the source domain loses on each test set (mean ± CI over seeds).

    Shares trained baselines with :func:`run_task` (same settings → same run folder).
    """
    result = run_task(config, splits, methods=("baseline",), **overrides)
    table = result.comparison.copy()
    source = table.loc[table["test_set"] == "source", "dice"]
    table["gap"] = table["dice"] - (float(source.iloc[0]) if len(source) else float("nan"))
    return table


def run_task(config: ExperimentConfig | None = None, splits: Splits | None = None,
             methods: Sequence[str] = METHODS, **overrides) -> ExperimentResult:
    """Train teacher, baseline and SIKD student for every seed; evaluate both on every test set.

    Keyword overrides update ``config`` (e.g. ``run_task(task="polyp", epochs=5)``).
    ``methods=("baseline",)`` trains and scores the baseline only (see :func:`domain_gap`).
    """
    import pandas as pd

    from .evaluation import evaluate_cases

    config = dataclasses.replace(config or ExperimentConfig(), **overrides)
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {tuple(methods)}")
    roles = ["baseline"] if "baseline" in methods else []
    if "sikd" in methods:
        roles = ["teacher", *roles, "student"]
    spec = get_task(config.task)
    splits = splits or synthetic_splits(config)
    run_root = config.run_root(splits.tag)

    from tqdm.auto import tqdm

    # One bar per task, counted in epochs over all seeds and roles (one widget in a notebook).
    total = len(config.seeds) * sum(config.train_config(role, 0).epochs for role in roles)
    bar = tqdm(desc=config.task, total=total, unit="epoch", disable=not config.progress)
    frames, histories, models, training = [], {}, {}, []
    for seed in config.seeds:
        results = train_roles(config, splits, roles, seed, bar=bar)
        trained = {role: r.model for role, r in results.items()}
        training += [{"seed": seed, "role": role, "best_epoch": r.best_epoch, "best_val_dice": r.best_val_dice,
                      "validated_on": "mean images" if role == "teacher" else "raw images"}
                     for role, r in results.items()]
        histories.update({(seed, role): r.history for role, r in results.items()})
        models = {(seed, role): m for role, m in trained.items()}
        for method, role in (("baseline", "baseline"), ("sikd", "student")):
            if method not in methods:
                continue
            for test_set, cases in splits.tests.items():
                bar.set_postfix_str(f"seed {seed}, testing {method} on {test_set}")
                table = evaluate_cases(trained[role], cases, spec, config.image_size, device=config.device,
                                       progress=False)
                frames.append(table.per_case.assign(seed=seed, method=method, test_set=test_set))
    bar.set_postfix_str("done")
    bar.close()

    per_case = pd.concat(frames, ignore_index=True)
    lead = ["seed", "method", "test_set"]
    per_case = per_case[lead + [c for c in per_case.columns if c not in lead]]
    # one number per (seed, method, test set): mean over classes of the per-class mean over cases
    class_means = per_case.groupby(lead + ["class"], sort=False)[["dice", "hd95_mm"]].mean()
    seed_scores = class_means.groupby(level=[0, 1, 2], sort=False).mean().reset_index()
    comparison = compare_methods(seed_scores) if len(methods) == 2 else method_summary(seed_scores)
    result = ExperimentResult(config, per_case, seed_scores, comparison, pd.DataFrame(training), histories,
                              _provenance(config), models)
    if run_root is not None:
        result.save(run_root / "results")
    return result


def severity_table(results: Sequence[ExperimentResult]) -> "pd.DataFrame":  # noqa: F821
    """Stack the comparison tables of several results (e.g. one per task), tagged by task."""
    import pandas as pd

    return pd.concat([r.comparison.assign(task=r.config.task) for r in results], ignore_index=True)


def real_splits(task: str, source_root, target_roots: dict | None = None, val_fraction: float = 0.15,
                test_fraction: float = 0.15) -> Splits:
    """Train/val/test Cases from a task's real source dataset, plus its real target datasets as tests.

    Uses the dataset's official splits where it has them (ACDC train/val/test; Synapse and Kvasir
    train/test, with the last ``val_fraction`` of train held out for validation); otherwise a
    deterministic split in the loader's order. ``target_roots`` maps a target dataset key (e.g.
    ``"mnms"``) to its folder; each becomes a test set named after it. All cases are read into memory.
    """
    from .data import real

    spec = get_task(task)
    source = spec.real_source
    known = set(real.splits_of(source))
    if {"train", "val", "test"} <= known:
        parts = [list(real.load(source, source_root, split=s)) for s in ("train", "val", "test")]
    elif {"train", "test"} <= known:
        train_all = list(real.load(source, source_root, split="train"))
        n_val = max(1, round(val_fraction * len(train_all)))
        parts = [train_all[:-n_val], train_all[-n_val:], list(real.load(source, source_root, split="test"))]
    else:
        cases = list(real.load(source, source_root))
        n_val = max(1, round(val_fraction * len(cases)))
        n_test = max(1, round(test_fraction * len(cases)))
        parts = [cases[: len(cases) - n_val - n_test], cases[len(cases) - n_val - n_test : len(cases) - n_test],
                 cases[len(cases) - n_test :]]
    if not all(parts):
        raise ValueError(f"{source} under {source_root}: not enough cases for train/val/test ({[len(p) for p in parts]})")
    tests = {"source": parts[2]}
    for dataset, root in (target_roots or {}).items():
        tests[dataset] = list(real.load(dataset, root))
    tag = f"real:{source}:{len(parts[0])},{len(parts[1])}"
    return Splits(parts[0], parts[1], tests, tag)
