"""Where an evidence run stands: per (task, seed, role) run folder under ``runs/``, epochs done and the
median seconds per epoch (the throughput figure when several jobs share one GPU).

    python scripts/run_progress.py [runs]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch


def main(root: str = "runs") -> None:
    rows = []
    for last in sorted(Path(root).glob("*/*/seed*/*/last.pt")):
        ckpt = torch.load(last, map_location="cpu", weights_only=True)
        seconds = [h["seconds"] for h in ckpt["history"]]
        rows.append((last.parts[-5], last.parts[-3], last.parts[-2], ckpt["epoch"], ckpt["config"]["epochs"],
                     statistics.median(seconds) if seconds else float("nan"), ckpt["best_val_dice"]))
    print(f"{'task':10s} {'seed':6s} {'role':12s} epochs  s/epoch  best val Dice")
    for task, seed, role, done, total, sec, best in rows:
        print(f"{task:10s} {seed:6s} {role:12s} {done:3d}/{total:<3d} {sec:7.2f}  {best:.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
