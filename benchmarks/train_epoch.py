"""Images per second of whole training epochs through ``train()``: batches augmented on the device
(``TrainConfig(batched_augmentation=True)``) against the reference measured in the same run, the
per-item DataLoader path (each slice resampled on the CPU, then copied to the device).

    python benchmarks/train_epoch.py                                   # CPU: 64 px, base 8, 200 slices
    python benchmarks/train_epoch.py --device cuda --size 128 --base 32 --batch 32 --images 1500
                                                                       # the evidence preset's setting

The first epoch (cuDNN autotuning, the device copy of the slices) is not timed.
"""

from __future__ import annotations

import argparse
import time

import torch

from sikd_utils.data.slices import SliceDataset
from sikd_utils.data.synthetic import make_cases
from sikd_utils.train import TrainConfig, build_model, train


def epoch_rate(data, role, teacher, args, batched: bool) -> tuple[float, float]:
    """(images per second of the timed epochs, peak device memory in GiB)."""
    model = build_model(role, data.in_channels, 3, args.base, seed=0)
    config = TrainConfig(role=role, epochs=1 + args.epochs, batch_size=args.batch, seed=0, device=args.device,
                         batched_augmentation=batched, progress=False)
    times = []
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def clock(record):
        times.append(record["seconds"])

    train(model, data, config, teacher=teacher, callbacks=(clock,))
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return len(data) * args.epochs / sum(times[1:]), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--base", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one untimed)")
    parser.add_argument("--roles", nargs="+", default=["baseline", "student"])
    args = parser.parse_args()

    cases = make_cases("fundus", n_cases=args.images, image_size=args.size, seed=0)
    data = SliceDataset(cases, args.size, augment=True, seed=0)
    teacher = build_model("teacher", data.in_channels, 3, args.base, seed=1)
    print(f"{len(data)} fundus slices, {args.size} px, base {args.base}, batch {args.batch}, on {args.device} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    for role in args.roles:
        distilled = teacher if role == "student" else None
        reference, _ = epoch_rate(data, role, distilled, args, batched=False)
        ours, peak = epoch_rate(data, role, distilled, args, batched=True)
        print(f"{role:9s} per-item DataLoader (reference) {reference:8.0f} img/s | batched on device "
              f"{ours:8.0f} img/s | ratio {ours / reference:5.2f}x | peak memory {peak:.2f} GiB")


if __name__ == "__main__":
    main()
