"""Command line: the book's pipeline without Jupyter.

    python -m sikd_utils run --task cardiac --epochs 20 --seeds 0 1 2
    python -m sikd_utils run --task all --image-size 128 --base-channels 64 --epochs 100 --device cuda
    python -m sikd_utils gap --task all            # how much a plain U-Net loses under each shift
    python -m sikd_utils reproduce --preset gpu --max-minutes 9 --workers 8   # the evidence run
    python -m sikd_utils fetch kvasir data/kvasir  # download where public, else print instructions
    # real data: the task's real source dataset, and target datasets to test on
    python -m sikd_utils run --task cardiac --source-root data/ACDC/database --target mnms=data/MnM
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .data.tasks import TASKS


def _experiment_args(parser: argparse.ArgumentParser) -> None:
    from .experiment import ExperimentConfig
    from .runtime import PRECISIONS

    d = ExperimentConfig()
    parser.add_argument("--task", default=d.task, choices=sorted(TASKS) + ["all"])
    parser.add_argument("--image-size", type=int, default=d.image_size)
    parser.add_argument("--base-channels", type=int, default=d.base_channels, help="64 = the paper's U-Net")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--distill-weight", type=float, default=d.distill_weight, help="λ (paper: 2.0)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds))
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-val", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--n-target", type=int, default=None)
    parser.add_argument("--severities", type=float, nargs="+", default=list(d.severities))
    parser.add_argument("--no-shape-shift", dest="shape_shift", action="store_false")
    parser.add_argument("--data-seed", type=int, default=d.data_seed)
    parser.add_argument("--device", default=d.device)
    parser.add_argument("--precision", default=d.precision, choices=PRECISIONS, help="auto: bf16 on GPUs of compute capability >= 8.0, fp16 below, fp32 on CPU (default: %(default)s)")
    parser.add_argument("--out-dir", default=d.out_dir)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--summary-csv", default=None, help="also write all tasks' tables to this CSV file")
    parser.add_argument("--source-root", default=None,
                        help="real data: folder of the task's real source dataset (e.g. ACDC for cardiac)")
    parser.add_argument("--target", action="append", default=[], metavar="DATASET=FOLDER",
                        help="real data: a target dataset to test on, e.g. mnms=/data/MnM (repeatable)")


def _configs(args) -> list:
    from .experiment import ExperimentConfig

    names = {f.name for f in dataclasses.fields(ExperimentConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    tasks = sorted(TASKS) if args.task == "all" else [args.task]
    return [ExperimentConfig(**{**values, "task": task}) for task in tasks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sikd_utils", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="teacher, baseline and SIKD student on one task (or all), several seeds")
    _experiment_args(run)
    gap = sub.add_parser("gap", help="baseline U-Net only: Dice on source vs shifted test sets")
    _experiment_args(gap)
    evidence = sub.add_parser("reproduce", help="the evidence run: all tasks x seeds x baseline, SIKD, control "
                              "on the shift benchmark (resumable, time-limited)")
    from .reproduce import add_arguments as _reproduce_arguments

    _reproduce_arguments(evidence)
    fetch = sub.add_parser("fetch", help="download a public dataset, or print how to obtain a gated one")
    fetch.add_argument("dataset")
    fetch.add_argument("root")
    args = parser.parse_args(argv)

    import pandas as pd

    pd.set_option("display.width", 160)
    if args.command == "reproduce":
        from .reproduce import main as reproduce_main

        return reproduce_main(args)
    if args.command == "fetch":
        from .data.real import fetch as fetch_dataset

        fetch_dataset(args.dataset, args.root)
        return 0
    from .experiment import domain_gap, real_splits, run_task

    splits = None
    if args.source_root:
        if args.task == "all":
            parser.error("--source-root needs a single --task (each task has its own real dataset)")
        targets = dict(item.split("=", 1) for item in args.target if "=" in item)
        if len(targets) != len(args.target):
            parser.error("--target takes DATASET=FOLDER, e.g. --target mnms=/data/MnM")
        splits = real_splits(args.task, args.source_root, targets)
    tables = []
    for config in _configs(args):
        print(f"\n=== {config.task} ===", flush=True)
        if args.command == "run":
            result = run_task(config, splits)
            table = result.comparison
            print(result.training.groupby("role", sort=False)["best_val_dice"].agg(["mean", "min", "max"])
                  .round(3).rename(columns=lambda c: f"val Dice {c}").to_string(), flush=True)
            if config.out_dir:
                print(f"models and results under {config.out_dir}/{config.task}/<settings hash>/")
        else:
            table = domain_gap(config, splits)
        print(table.round(4).to_string(index=False), flush=True)
        tables.append(table.assign(task=config.task))
    if args.summary_csv:
        pd.concat(tables, ignore_index=True).to_csv(args.summary_csv, index=False)
        print(f"summary written to {args.summary_csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
