"""Data-parallel training (``sikd_utils.distributed``): images per second and validation Dice of one GPU
against N GPUs at the same global batch, each run through ``train()`` exactly as ``torchrun … train`` runs it.

    python benchmarks/ddp_throughput.py --gpus 2 --size 128 --base 32 --batch 32 --images 1500 --seeds 0 1 2
                                                         # on a machine with >= 2 GPUs (issue 12: >= 1.8x)
    python benchmarks/ddp_throughput.py --cpu --size 32 --base 4 --batch 8 --images 24 --epochs 1
                                                         # the same code path on the CPU (gloo), as a check

Each setting runs in fresh processes (one per rank, torch.multiprocessing, a file:// rendezvous; nccl on
GPUs, gloo with ``--cpu``). The first epoch (cuDNN autotuning, device copies) is not timed; a rank's
epoch time is the slowest rank's. Dice is the best validation Dice of each seed, so the two settings can
be compared against the spread over seeds (same validation Dice "within seed noise").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sikd_utils.data.slices import SliceDataset
from sikd_utils.data.synthetic import make_cases
from sikd_utils.train import TrainConfig, build_model, train


def datasets(args) -> tuple[SliceDataset, SliceDataset]:
    """The same synthetic fundus slices in every process (a pure function of the seeds)."""
    train_cases = make_cases("fundus", n_cases=args.images, image_size=args.size, seed=0)
    val_cases = make_cases("fundus", n_cases=max(4, args.images // 5), image_size=args.size, seed=1)
    return SliceDataset(train_cases, args.size, augment=True, seed=0), SliceDataset(val_cases, args.size)


def one_run(args, seed: int, device: str) -> dict:
    """One training run on this rank: images/s over the timed epochs and the best validation Dice."""
    train_ds, val_ds = datasets(args)
    teacher = build_model("teacher", train_ds.in_channels, 3, args.base, seed=99) if args.role == "student" else None
    config = TrainConfig(role=args.role, epochs=1 + args.epochs, batch_size=args.batch, seed=seed, device=device,
                         precision=args.precision, progress=False)
    times = []
    result = train(build_model(args.role, train_ds.in_channels, 3, args.base, seed=seed), train_ds, config, val_ds,
                   teacher=teacher, callbacks=(lambda record: times.append(record["seconds"]),))
    return {"images_per_s": len(train_ds) * args.epochs / sum(times[1:]), "val_dice": result.best_val_dice,
            "seconds_per_epoch": sum(times[1:]) / args.epochs}


def rank_main(rank: int, world_size: int, args, folder: str) -> None:
    """One process: join the group (when there are several), run every seed, rank 0 writes the results."""
    if args.cpu:  # the cores shared out, not oversubscribed
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    if world_size > 1:
        backend = "gloo" if args.cpu else "nccl"
        if not args.cpu:
            torch.cuda.set_device(rank)
        dist.init_process_group(backend, init_method=f"file://{folder}/rendezvous", rank=rank,
                                world_size=world_size)
    device = "cpu" if args.cpu else "cuda" if world_size > 1 else "cuda:0"
    try:
        runs = {seed: one_run(args, seed, device) for seed in args.seeds}
        if rank == 0:
            Path(folder, "results.json").write_text(json.dumps(runs))
    finally:
        if world_size > 1:
            dist.destroy_process_group()


def measure(world_size: int, args) -> dict:
    """Results of every seed with ``world_size`` processes (seed -> images/s, Dice)."""
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(rank_main, args=(world_size, args, folder), nprocs=world_size, join=True)
        return {int(seed): run for seed, run in json.loads(Path(folder, "results.json").read_text()).items()}


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{mean:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=2, help="processes of the data-parallel run (one GPU each)")
    parser.add_argument("--cpu", action="store_true", help="run both settings on the CPU over gloo (a check)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--base", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32, help="the global batch of both settings")
    parser.add_argument("--images", type=int, default=1500, help="synthetic training slices")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one untimed)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (for the Dice spread)")
    parser.add_argument("--role", default="baseline", choices=["baseline", "teacher", "student"],
                        help="student: distilled from an untrained teacher (throughput only)")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    if not args.cpu and torch.cuda.device_count() < args.gpus:
        parser.error(f"--gpus {args.gpus} needs {args.gpus} GPUs, torch sees {torch.cuda.device_count()}; "
                     "use --cpu to check the code path on the CPU")
    where = "CPU (gloo)" if args.cpu else f"{torch.cuda.get_device_name(0)} (nccl)"
    print(f"{args.role}: {args.images} fundus slices, {args.size} px, base {args.base}, global batch {args.batch}, "
          f"{args.epochs} timed epochs, seeds {args.seeds}, on {where}, torch {torch.__version__}", flush=True)
    results = {}
    for world_size in (1, args.gpus):
        results[world_size] = measure(world_size, args)
        rates = [run["images_per_s"] for run in results[world_size].values()]
        dice = [run["val_dice"] for run in results[world_size].values()]
        print(f"{world_size} process(es): {statistics.fmean(rates):8.1f} images/s | best validation Dice "
              f"{spread(dice)} (per seed: {', '.join(f'{d:.4f}' for d in dice)})", flush=True)
    ratio = (statistics.fmean(r["images_per_s"] for r in results[args.gpus].values())
             / statistics.fmean(r["images_per_s"] for r in results[1].values()))
    print(f"throughput {args.gpus} vs 1: {ratio:.2f}x (scaling efficiency {ratio / args.gpus:.0%})")


if __name__ == "__main__":
    main()
