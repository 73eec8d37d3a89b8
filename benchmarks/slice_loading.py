"""How fast SliceDataset serves training slices, against the naive per-item MONAI pipeline.

    PYTHONPATH=. python benchmarks/slice_loading.py [--slices 3000 --size 128 --raw 192 160]

Builds synthetic ACDC-like volumes (non-square raw slices, three classes, a few empty slices), then
times, in the same run:

* ``SliceDataset`` construction (the one-off resize of every slice),
* one epoch of ``SliceDataset`` items without and with augmentation (single process),
* one epoch through a ``DataLoader`` (batch 8, ``--workers`` processes),
* the named reference: the per-item MONAI pipeline in the official order (``RandAffined`` →
  ``RandRotated`` → ``Resized``, dict-based, see ``monai_reference_transform``) on the raw slices,
  reseeded per item like ours, on ``--reference-items`` items (it is slow).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sikd_utils.data import Case
from sikd_utils.data.slices import SliceDataset, case_slices, monai_reference_transform


def synthetic_cases(n_slices: int, raw: tuple[int, int], depth: int = 12, seed: int = 0) -> list[Case]:
    """Ellipses of three classes whose size changes along the volume; the first slice of each is empty."""
    rng = np.random.default_rng(seed)
    h, w = raw
    yy, xx = np.mgrid[:h, :w]
    cases = []
    n_cases = int(np.ceil(n_slices / (depth - 1)))
    for k in range(n_cases):
        cy, cx = h / 2 + rng.normal(0, h / 12), w / 2 + rng.normal(0, w / 12)
        label = np.zeros((h, w, depth), np.uint8)
        for z in range(1, depth):
            r = min(h, w) * (0.12 + 0.15 * z / depth)
            d2 = ((yy - cy) / 1.2) ** 2 + (xx - cx) ** 2
            label[..., z][d2 < r**2] = 1
            label[..., z][d2 < (0.75 * r) ** 2] = 2
            label[..., z][d2 < (0.45 * r) ** 2] = 3
        image = (label * 0.25 + rng.normal(0.1, 0.05, label.shape)).clip(0, 1).astype(np.float32)[None]
        cases.append(Case(image, label, (1.5, 1.5, 8.0), f"syn{k:03d}"))
    return cases


def per_item(fn, n: int, repeat: int) -> float:
    """Seconds per call of fn(i) over i in range(n): the fastest of ``repeat`` passes (shared machines
    are noisy; the minimum is the least disturbed estimate)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=3000, help="about this many foreground slices")
    parser.add_argument("--size", type=int, default=128, help="training image size")
    parser.add_argument("--raw", type=int, nargs=2, default=(192, 160), help="raw slice height width")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the loader line")
    parser.add_argument("--reference-items", type=int, default=300, help="items timed for the MONAI reference")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the fastest is reported")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    cases = synthetic_cases(args.slices, tuple(args.raw))

    start = time.perf_counter()
    plain = SliceDataset(cases, args.size, augment=False)
    build_s = time.perf_counter() - start
    augmented = SliceDataset(cases, args.size, augment=True, seed=0)
    augmented.set_epoch(1)
    n = len(plain)
    print(f"{plain!r}\n  built in {build_s:.2f} s ({build_s / n * 1e3:.3f} ms/slice, once)")

    plain_s = per_item(plain.__getitem__, n, args.repeat)
    aug_s = per_item(augmented.__getitem__, n, args.repeat)

    loader = torch.utils.data.DataLoader(
        augmented, batch_size=8, shuffle=True, num_workers=args.workers, generator=torch.Generator().manual_seed(0)
    )
    loader_s = per_item(lambda i: [None for _ in loader], 1, args.repeat) / n

    # the named reference: per-item MONAI on the raw slice (slicing and dict building included)
    reference = monai_reference_transform(args.size, tuple(args.raw), augment=True)
    slices = [(case, z) for case in cases for z in range(case.label.shape[-1]) if case.label[..., z].any()]
    m = min(args.reference_items, len(slices))

    def reference_item(i: int):
        case, z = slices[i]
        images, labels = case_slices(case)
        reference.set_random_state(seed=i)
        return reference({"image": images[z], "label": labels[z][None].long()})

    reference_item(0)  # first call imports and warms up
    ref_s = per_item(reference_item, m, args.repeat)

    print(f"\n{'pipeline':<66}{'ms/item':>9}{'items/s':>10}{'vs ref':>8}")
    for name, sec in (
        ("SliceDataset, augment=False", plain_s),
        ("SliceDataset, augment=True", aug_s),
        (f"SliceDataset, augment=True, DataLoader {args.workers} workers", loader_s),
        (f"reference: per-item MONAI RandAffined+RandRotated+Resized ({m} items)", ref_s),
    ):
        print(f"{name:<66}{sec * 1e3:>9.3f}{1 / sec:>10.0f}{ref_s / sec:>7.1f}×")


if __name__ == "__main__":
    main()
