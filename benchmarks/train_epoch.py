"""Images per second of whole training epochs through ``train()``: batches augmented on the device
(``TrainConfig(batched_augmentation=True)``) against the reference measured in the same run, the
per-item DataLoader path (each slice resampled on the CPU, then copied to the device). Further rows add
the faster step of issue 12 to the batched path: Adam with and without the fused kernel
(``fused_optimizer``) and the whole step compiled (``compile_step="whole"``, and on CUDA
``"cuda_graphs"``); ``--no-compile`` leaves the compiled rows out (on a CPU they compile for minutes).
Each row says how long its untimed first epoch took, where a compiled step pays its compilation: a
preset's short runs (20-epoch students) may not earn it back. A row that fails is reported, and the
others still run.

    python benchmarks/train_epoch.py                                   # CPU: 64 px, base 8, 200 slices
    python benchmarks/train_epoch.py --device cuda --size 128 --base 32 --batch 32 --images 1500
                                                                       # the evidence preset's setting

The first epoch (cuDNN autotuning, the device copy of the slices, compilation) is not timed.
"""

from __future__ import annotations

import argparse
import time

import torch

from sikd_utils.data.slices import SliceDataset
from sikd_utils.data.synthetic import make_cases
from sikd_utils.train import TrainConfig, build_model, train


def epoch_rate(data, role, teacher, args, batched: bool, **settings) -> tuple[float, float, float]:
    """(images per second of the timed epochs, peak device memory in GiB, seconds of the untimed first epoch,
    which pays autotuning and any compilation); ``settings`` go to TrainConfig."""
    model = build_model(role, data.in_channels, 3, args.base, seed=0)
    config = TrainConfig(role=role, epochs=1 + args.epochs, batch_size=args.batch, seed=0, device=args.device,
                         batched_augmentation=batched, progress=False, **settings)
    times = []
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def clock(record):
        times.append(record["seconds"])

    train(model, data, config, teacher=teacher, callbacks=(clock,))
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return len(data) * args.epochs / sum(times[1:]), peak, times[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--base", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one untimed)")
    parser.add_argument("--roles", nargs="+", default=["baseline", "student"])
    parser.add_argument("--no-compile", action="store_true", help="leave out the compile_step rows")
    args = parser.parse_args()
    cuda = torch.device(args.device).type == "cuda"
    # (label, TrainConfig settings) of the batched rows; fused_optimizer=None is fused on CUDA only
    rows = [("batched on device", {"fused_optimizer": False}), ("+ fused Adam", {"fused_optimizer": True})]
    if not args.no_compile:
        rows.append(("+ fused, whole step compiled", {"fused_optimizer": True, "compile_step": "whole"}))
        if cuda:
            rows.append(("+ fused, whole step, CUDA graphs", {"fused_optimizer": True, "compile_step": "cuda_graphs"}))

    cases = make_cases("fundus", n_cases=args.images, image_size=args.size, seed=0)
    data = SliceDataset(cases, args.size, augment=True, seed=0)
    teacher = build_model("teacher", data.in_channels, 3, args.base, seed=1)
    print(f"{len(data)} fundus slices, {args.size} px, base {args.base}, batch {args.batch}, on {args.device} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    for role in args.roles:
        distilled = teacher if role == "student" else None
        reference, peak, first = epoch_rate(data, role, distilled, args, batched=False, fused_optimizer=False)
        print(f"{role:9s} {'per-item DataLoader (reference)':34s} {reference:8.0f} img/s | peak memory {peak:.2f} GiB"
              f" | first epoch {first:.0f} s", flush=True)
        for label, settings in rows:
            try:
                ours, peak, first = epoch_rate(data, role, distilled, args, batched=True, **settings)
            except Exception as error:  # noqa: BLE001 - a compiler failure is this row's result; the rest still run
                first_line = str(error).splitlines()[0][:80] if str(error) else ""
                print(f"{role:9s} {label:34s} failed: {type(error).__name__}: {first_line}", flush=True)
                continue
            # the first epoch is where a compiled step pays its compilation: weigh it against a run's epochs
            print(f"{role:9s} {label:34s} {ours:8.0f} img/s | ratio {ours / reference:5.2f}x | "
                  f"peak memory {peak:.2f} GiB | first epoch {first:.0f} s", flush=True)


if __name__ == "__main__":
    main()
