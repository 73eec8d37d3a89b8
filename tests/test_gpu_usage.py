"""The GPU-busy line of the evidence and ablation runs, from canned ``nvidia-smi`` output."""

import subprocess
import time

from sikd_utils.gpu_usage import GpuUsage, parse_query


def test_parse_query_reads_each_gpu_and_skips_unreadable_lines():
    text = "0, 94, 61234\n1, 100, 2048\n2, [N/A], [N/A]\n"
    assert parse_query(text) == [(0, 94.0, 61234.0), (1, 100.0, 2048.0)]


def test_summary_and_line_over_the_samples_taken():
    answers = iter(["0, 100, 1024\n", "0, 80, 3072\n"] + ["0, 100, 2048\n"] * 1000)
    with GpuUsage(interval=0.001, query=lambda: next(answers)) as usage:
        while len(usage.samples) < 3:
            time.sleep(0.001)
    s = usage.summary()
    assert s["gpus"] == 1 and s["samples"] >= 3 and s["peak_memory_gib"] == 3.0
    assert s["samples_at_100"] == s["samples"] - 1 and 80 < s["mean_busy_percent"] < 100
    assert usage.line().startswith("GPU busy: mean ") and "memory peak 3.0 GiB" in usage.line()


def test_silent_without_a_readable_gpu():
    def broken():
        raise subprocess.CalledProcessError(9, "nvidia-smi")

    with GpuUsage(interval=0.001, query=broken) as usage:
        time.sleep(0.01)
    assert usage.summary() is None and usage.line() is None
    with GpuUsage(interval=0.001, query=lambda: "") as empty:
        time.sleep(0.01)
    assert empty.line() is None
