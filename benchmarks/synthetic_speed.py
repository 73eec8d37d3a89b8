"""Generation speed of the synthetic suite: cases per second for each task.

Usage: python benchmarks/synthetic_speed.py [image_size] [n_source] [n_target]
Default: 60 source + 20 target cases at 128 px, the book's usual dataset. Prints wall-clock and
CPU time (CPU time is the fairer number on a shared machine).
"""

from __future__ import annotations

import sys
import time

from sikd_utils.data.synthetic import make_cases
from sikd_utils.data.tasks import TASKS


def main(image_size: int = 128, n_source: int = 60, n_target: int = 20) -> None:
    make_cases("cardiac", n_cases=1, image_size=32)  # imports and caches warm
    print(f"{n_source} source + {n_target} target cases at {image_size} px")
    print(f"{'task':<10} {'wall s':>7} {'cpu s':>7} {'cases/s (wall)':>15} {'cases/s (cpu)':>14}")
    total_wall = total_cpu = 0.0
    for task in TASKS:
        w0, c0 = time.perf_counter(), time.process_time()
        make_cases(task, "source", n_cases=n_source, image_size=image_size, seed=0)
        make_cases(task, "target", n_cases=n_target, image_size=image_size, seed=0, severity=1.0)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        n = n_source + n_target
        print(f"{task:<10} {wall:7.2f} {cpu:7.2f} {n / wall:15.1f} {n / cpu:14.1f}")
    print(f"{'all':<10} {total_wall:7.2f} {total_cpu:7.2f}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
