"""How far does training longer take the skip-free teacher? Evidence for the teacher gate's rule.

Trains SIKD's teacher (class-wise mean images) and the control's raw teacher at the evidence preset's
settings for several lengths (``--teacher-epochs``; the learning-rate milestones scale with the length,
as in every run) on the evidence run's own training and validation cases, and writes every epoch's
validation Dice, one row at a time, so a run stopped at a deadline keeps what it measured:

    python scripts/teacher_scan.py --task fundus --role teacher --epochs 80 --out runs/scan/fundus-80.csv

Run one process per (task, role, length) side by side on a GPU; ``book/results/teacher_scan.csv`` is
the concatenation of their outputs (with the device and commit in ``teacher_scan.json``).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from sikd_utils.configuration import preset_config
from sikd_utils.data.slices import SliceDataset
from sikd_utils.data.synthetic import make_cases
from sikd_utils.data.tasks import get_task
from sikd_utils.train import build_model, train

FIELDS = ["task", "role", "seed", "teacher_epochs", "epoch", "val_dice", "loss", "seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--role", default="teacher", choices=["teacher", "raw_teacher", "baseline"])
    parser.add_argument("--epochs", type=int, required=True, help="the teacher's training length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="gpu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    config = preset_config(args.preset, args.task, teacher_epochs=args.epochs)
    n = config.counts()
    cases = make_cases(args.task, "source", n["n_train"] + n["n_val"], config.image_size, seed=config.data_seed)
    train_ds = SliceDataset(cases[:n["n_train"]], config.image_size, augment=True, seed=config.data_seed)
    val_ds = SliceDataset(cases[n["n_train"]:], config.image_size)
    spec = get_task(args.task)
    model = build_model(args.role, spec.in_channels, spec.num_classes, config.base_channels, seed=args.seed)
    train_config = config.train_config(args.role, args.seed)
    train_config.progress = False
    if args.role == "baseline":
        train_config.epochs = args.epochs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()

        def record(row: dict) -> None:
            writer.writerow({"task": args.task, "role": args.role, "seed": args.seed, "teacher_epochs": args.epochs,
                             "epoch": row["epoch"], "val_dice": row["val_dice"], "loss": row["loss"],
                             "seconds": row["seconds"]})
            fh.flush()

        began = time.time()
        result = train(model, train_ds, train_config, val_ds, callbacks=(record,))
    print(f"{args.task} {args.role} {args.epochs} epochs: best validation Dice {result.best_val_dice:.4f} "
          f"at epoch {result.best_epoch} ({time.time() - began:.0f} s, {len(train_ds)} slices)")


if __name__ == "__main__":
    main()
