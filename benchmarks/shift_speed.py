"""Speed of the shift benchmark: every family × severities 0-5 for one task's test cases.

Usage: python benchmarks/shift_speed.py [n_cases] [image_size] [task ...]
Default: 20 cases at 128 px for every task (target: ≤ 30 s per task on 2 CPU cores).

Reference, measured in the same run on the first task: the same sets rendered with the scene and
clean-image caches of ``sikd_utils.data.synthetic.core`` bypassed (every case generated from scratch,
as ``make_cases`` would). The ratio is reference time / our time; both give bit-identical cases.
"""

from __future__ import annotations

import sys
import time
from unittest import mock

from sikd_utils.data import shifts
from sikd_utils.data.synthetic import core
from sikd_utils.data.tasks import TASKS


def all_sets(task: str) -> list[tuple[str, int]]:
    sets = [("clean", 0)]
    for family in shifts.shift_families(task):
        sets += [(family, s) for s in shifts.SEVERITIES[1:]]
    return sets


def run(task: str, n_cases: int, image_size: int) -> tuple[float, float, int]:
    for cached in (core._scene, core._clean):
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()
    w0, c0 = time.perf_counter(), time.process_time()
    sets = all_sets(task)
    for family, severity in sets:
        shifts.shift_cases(task, family, severity, n_cases, image_size)
    return time.perf_counter() - w0, time.process_time() - c0, len(sets)


def main(n_cases: int = 20, image_size: int = 128, tasks: list[str] | None = None) -> None:
    tasks = tasks or list(TASKS)
    w0 = time.perf_counter()
    import monai.transforms  # noqa: F401  (MONAI's first import costs seconds; timed apart)

    print(f"importing MONAI: {time.perf_counter() - w0:.1f} s (once per process, not counted below)")
    shifts.shift_cases(tasks[0], "clean", 0, 1, 32)
    print(f"all families x severities 0-5, {n_cases} cases at {image_size} px")
    print(f"{'task':<10} {'sets':>5} {'cases':>6} {'wall s':>7} {'cpu s':>7}")
    timings = {}
    for task in tasks:
        wall, cpu, n_sets = run(task, n_cases, image_size)
        timings[task] = wall
        print(f"{task:<10} {n_sets:5d} {n_sets * n_cases:6d} {wall:7.1f} {cpu:7.1f}")
    task = tasks[0]
    uncached_scene = core._scene.__wrapped__
    uncached_clean = core._clean.__wrapped__
    with mock.patch.object(core, "_scene", uncached_scene), mock.patch.object(core, "_clean", uncached_clean):
        wall_ref, cpu_ref, _ = run(task, n_cases, image_size)
    print(f"reference for {task} (no caches): {wall_ref:.1f} s wall, {cpu_ref:.1f} s cpu; "
          f"ratio reference / ours = {wall_ref / timings[task]:.2f}x")


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(args[0]) if args else 20
    size = int(args[1]) if len(args) > 1 else 128
    main(n, size, args[2:] or None)
