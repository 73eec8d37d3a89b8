import os

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

if os.environ.get("PYTEST_XDIST_WORKER"):
    # workers run side by side on a small machine: one thread each avoids oversubscription, which
    # slows OpenMP-parallel torch ops down by an order of magnitude
    torch.set_num_threads(1)


class ToySlices(Dataset):
    """Tiny 2D segmentation set: noisy squares (class 1) and discs (class 2) on a dark background."""

    def __init__(self, n=12, size=16, channels=1, seed=0):
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[:size, :size]
        self.items = []
        for _ in range(n):
            label = np.zeros((size, size), np.int64)
            x0, y0 = rng.integers(1, size // 2, 2)
            label[y0 : y0 + size // 3, x0 : x0 + size // 3] = 1
            cx, cy = rng.integers(size // 2, size - 3, 2)
            label[(yy - cy) ** 2 + (xx - cx) ** 2 <= 4] = 2
            image = 0.1 + 0.4 * (label == 1) + 0.8 * (label == 2) + 0.1 * rng.standard_normal((channels, size, size))
            self.items.append({"image": torch.tensor(image, dtype=torch.float32),
                               "label": torch.tensor(label)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.fixture
def toy_data():
    return ToySlices(n=12, seed=0), ToySlices(n=4, seed=1)
