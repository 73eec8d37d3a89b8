"""How busy the GPU was during a run: ``nvidia-smi`` sampled in a background thread.

The evidence and ablation runs pack many small trainings onto one GPU (processes side by side under
CUDA MPS); whether that fills the GPU is a measurement, not an assumption, so both commands end each
piece with a line such as ``GPU busy: mean 94 % over 52 samples (100 % in 47); memory peak 61.2 GiB``.
``nvidia-smi`` sees every process on the GPU, which ``torch.cuda`` in one process does not. Where there
is no ``nvidia-smi`` (a CPU run), nothing is sampled and nothing is said.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable

__all__ = ["GpuUsage", "parse_query", "QUERY"]

#: what is asked of ``nvidia-smi``: per GPU, its index, busy % (a kernel running) and memory used
QUERY = ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"]


def _nvidia_smi() -> str:
    return subprocess.run(QUERY, capture_output=True, text=True, timeout=20, check=True).stdout


def parse_query(text: str) -> list[tuple[int, float, float]]:
    """``(gpu index, busy %, memory used MiB)`` per line of :data:`QUERY`'s output; unreadable lines (e.g.
    ``[N/A]`` on some virtual GPUs) are skipped rather than guessed."""
    rows = []
    for line in text.strip().splitlines():
        try:
            index, busy, memory = (field.strip() for field in line.split(","))
            rows.append((int(index), float(busy), float(memory)))
        except ValueError:
            continue
    return rows


class GpuUsage:
    """Context manager sampling the GPUs every ``interval`` seconds while its block runs.

    ``query`` returns text in :data:`QUERY`'s format (a stand-in for tests); by default ``nvidia-smi``
    is asked, and when it is missing or fails the sampler stays silent."""

    def __init__(self, interval: float = 10.0, query: Callable[[], str] | None = None):
        self.interval = interval
        self.query = query
        self.samples: list[tuple[int, float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "GpuUsage":
        if self.query is None and shutil.which("nvidia-smi"):
            self.query = _nvidia_smi
        if self.query is not None:
            self._thread = threading.Thread(target=self._sample, name="gpu-usage", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples += parse_query(self.query())
            except (OSError, subprocess.SubprocessError):
                return  # no readable GPU after all: say nothing rather than something wrong
            self._stop.wait(self.interval)

    def summary(self) -> dict | None:
        """Mean busy %, share of samples at 100 % and peak memory over every GPU sampled; None if none was."""
        if not self.samples:
            return None
        busy = [b for _, b, _ in self.samples]
        return {"gpus": len({i for i, _, _ in self.samples}), "samples": len(busy),
                "mean_busy_percent": sum(busy) / len(busy), "samples_at_100": sum(b >= 100 for b in busy),
                "peak_memory_gib": max(m for _, _, m in self.samples) / 1024}

    def line(self) -> str | None:
        """The log line (see the module docstring), or None where nothing was sampled."""
        s = self.summary()
        if s is None:
            return None
        gpus = f" on {s['gpus']} GPUs" if s["gpus"] > 1 else ""
        return (f"GPU busy{gpus}: mean {s['mean_busy_percent']:.0f} % over {s['samples']} samples "
                f"(100 % in {s['samples_at_100']}); memory peak {s['peak_memory_gib']:.1f} GiB")
