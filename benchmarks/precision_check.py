"""Does fp16 autocast + GradScaler train as well as bf16? Validation Dice side by side, same data and seeds.

Why: GPUs below compute capability 8.0 (Colab's T4) get fp16 + GradScaler by default
(`sikd_utils.runtime.choose_precision`), newer ones bf16. Both paths are forced here on one GPU for
one synthetic task at a small scale (default: the baseline U-Net on cardiac, 128 px, base 32, about
400 optimiser steps per run, three seeds; sized to stay under four minutes on one H200, an
estimate from the data-loading speed on a CPU: the script prints its own time). "Same within noise"
means: the fp16-minus-bf16 difference of the means is no larger than the spread between seeds of one
precision. Needs torch, numpy, scipy and tqdm (not MONAI).

    PYTHONPATH=. python benchmarks/precision_check.py          # from the repository root, on CUDA
    PYTHONPATH=. python benchmarks/precision_check.py --precisions fp16 bf16 fp32 \\
        --roles teacher baseline student                        # all roles, fp32 reference (longer)
    PYTHONPATH=. python benchmarks/precision_check.py --device cpu --image-size 32 --base-channels 4 --epochs 2 \\
        --n-train 3 --n-val 2 --roles baseline   # a smoke test of the script on a CPU (seconds)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from sikd_utils.experiment import ExperimentConfig, synthetic_splits, train_roles
from sikd_utils.runtime import choose_precision, cuda_capability, resolve_device


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="cardiac", help="default: %(default)s")
    parser.add_argument("--device", default="auto", help="default: %(default)s")
    parser.add_argument("--precisions", nargs="+", default=["fp16", "bf16"],
                        choices=["fp16", "bf16", "fp32"], help="default: %(default)s")
    parser.add_argument("--roles", nargs="+", default=["baseline"],
                        choices=["teacher", "baseline", "student"], help="default: %(default)s")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default: %(default)s")
    parser.add_argument("--image-size", type=int, default=128, help="default: %(default)s")
    parser.add_argument("--base-channels", type=int, default=32, help="default: %(default)s")
    parser.add_argument("--epochs", type=int, default=15, help="default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=16, help="default: %(default)s")
    parser.add_argument("--n-train", type=int, default=40, help="training cases (default: %(default)s)")
    parser.add_argument("--n-val", type=int, default=8, help="validation cases (default: %(default)s)")
    args = parser.parse_args(argv)
    if "student" in args.roles and "teacher" not in args.roles:
        parser.error("--roles student needs teacher before it")
    roles = [r for r in ("teacher", "baseline", "student") if r in args.roles]

    device = resolve_device(args.device)
    config = ExperimentConfig(task=args.task, image_size=args.image_size, base_channels=args.base_channels,
                              epochs=args.epochs, batch_size=args.batch_size, n_train=args.n_train,
                              n_val=args.n_val, n_test=1, n_target=1, shape_shift=False,
                              device=str(device), out_dir=None, progress=False)
    began = time.perf_counter()
    splits = synthetic_splits(config)
    print(f"data: {args.n_train}+{args.n_val} {args.task} cases at {args.image_size} px "
          f"in {time.perf_counter() - began:.0f} s", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    cap = cuda_capability(device)
    print(f"{name}{' (compute capability %d.%d)' % cap if cap else ''}; auto precision here: "
          f"{choose_precision(device)}; torch {torch.__version__}", flush=True)

    dice: dict[tuple[str, str], list[float]] = {}
    for precision in args.precisions:
        for seed in args.seeds:
            t0 = time.perf_counter()
            trained = train_roles(dataclasses.replace(config, precision=precision), splits, roles, seed)
            for role in roles:
                dice.setdefault((role, precision), []).append(float(trained[role].best_val_dice))
            print(f"  {precision} seed {seed}: " + ", ".join(f"{r} {trained[r].best_val_dice:.4f}" for r in roles)
                  + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)

    print(f"\nbest validation Dice, mean over seeds {args.seeds} (± standard deviation between seeds)")
    print(f"{'role':<9}" + "".join(f"{p:>18}" for p in args.precisions)
          + ("   fp16 - bf16   within noise?" if {"fp16", "bf16"} <= set(args.precisions) else ""))
    verdicts = {}
    for role in roles:
        line = f"{role:<9}"
        for p in args.precisions:
            values = dice[(role, p)]
            line += f"{statistics.fmean(values):>11.4f} ± {_spread(values):.4f}"
        if {"fp16", "bf16"} <= set(args.precisions):
            a, b = dice[(role, "fp16")], dice[(role, "bf16")]
            diff = statistics.fmean(a) - statistics.fmean(b)
            noise = max(_spread(a), _spread(b))
            verdict = "yes" if abs(diff) <= noise else ("no" if noise == noise else "n/a (one seed)")
            verdicts[role] = (diff, noise, verdict)
            line += f"   {diff:+.4f}      {verdict}"
        print(line)
    print(f"total {time.perf_counter() - began:.0f} s")
    return {"dice": dice, "verdicts": verdicts}


if __name__ == "__main__":
    main()
