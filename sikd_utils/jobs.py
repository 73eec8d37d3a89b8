"""The job runner that ``reproduce``, ``ablate`` and ``calibrate`` share: independent jobs run here or side by side
in worker processes, each stopped cleanly before a deadline (:class:`Deadline`), with atomic result files and one
closing line that says whether the run is done, unfinished or failed (and whether a rerun can help).

Built for machines lent for minutes as well as a workstation: a run given ``max_minutes`` stops between epochs
or test sets, and the same command continues from its checkpoints and part files.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from .gpu_usage import GpuUsage

__all__ = ["EXIT_DONE", "EXIT_UNFINISHED", "TimeUp", "Unfinishable", "Deadline", "write_atomic", "run_jobs",
           "closing_status", "rerun_advice", "outcome_detail", "minimum_minutes", "mps_hint"]

#: Exit status when everything is done.
EXIT_DONE = 0
#: Exit status when stopped at the time limit (or a job failed), so run the same command again.
EXIT_UNFINISHED = 3


class TimeUp(Exception):
    """Raised inside a job when the next epoch or test set would not finish before the deadline."""


class Unfinishable(TimeUp):
    """A ``--finish-only`` stop: the job's work left was estimated to end past the deadline. The estimate is made
    from epochs timed beside the other jobs of the moment, which may end soon, so such a job may deserve
    another try once they have (``ablate`` gives it :data:`sikd_utils.ablate.SECOND_CHANCES`)."""


def write_atomic(path: Path, write) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it over ``path``: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise




#: seconds a test set is assumed to take before this process has timed one (test sets of the gpu preset took
#: 0.5-3 s on one CPU thread, see book/results/RUNLOG.md); only ``finish_only`` uses it
TEST_SECONDS_GUESS = 2.0
# per process (a pool's worker keeps them from one job to the next): test sets timed, the last epoch's seconds
_measured = {"test_seconds": 0.0, "tests": 0, "epoch_seconds": None}


class Deadline:
    """Stops a job between epochs or test sets when the next one would end past ``deadline``.

    With ``finish_only`` it also stops a job after an epoch once the work it still has (``plan``: the epochs
    left in the run training now and in its later runs, and the test sets) would end past the deadline: for a
    session's last piece, whose unfinished checkpoints are lost with the machine, so a job that cannot finish
    should give the GPU to those that can rather than train on in vain. The estimate takes the slowest of the
    run's last three epochs (× 1.1) and this process's mean test set (``TEST_SECONDS_GUESS`` before it has
    timed one). A run is judged only once it has trained two epochs in this piece, from the second on: its
    first pays cuDNN's autotuning for its network and, when a piece's workers all start at once, their crowding,
    and can take several times as long as the next (cases in ``book/results/RUNLOG.md``). A run that has not
    trained an epoch yet is estimated from the last epoch this process trained, if any, so a job that cannot
    finish is not begun.
    """

    def __init__(self, deadline: float | None, finish_only: bool = False):
        self.deadline = deadline
        self.finish_only = finish_only
        self.eval_seconds = 0.0
        self._eval_started = None
        self._plan = None  # (epochs of the run training now, epochs of later runs, test sets)
        self._epoch_times = []  # seconds of each epoch this job trained in this piece
        self._run_times = []  # those of the run training now
        self._steady_times = []  # those of every run but its first epoch (for a run not timed yet)

    def _check(self, next_seconds: float, what: str) -> None:
        if self.deadline is not None and time.time() + 1.5 * next_seconds + 5 > self.deadline:
            raise TimeUp(what)

    def plan(self, epochs: int, later_epochs: int, tests: int, begun: bool = False) -> None:
        """What the job has left as a run starts: its ``epochs``, the ``later_epochs`` of the runs after it, and
        the ``tests`` (test sets) to run once they are trained. ``begun``: the run resumes a checkpoint, so how
        many of its epochs are left is known only after its first epoch here (no estimate before)."""
        self._plan = (int(epochs), int(later_epochs), int(tests))
        self._run_times = []
        if self.finish_only and not begun and not self._epoch_times and _measured["epoch_seconds"]:
            self._refuse_unfinishable("start", 0, _measured["epoch_seconds"])

    def _refuse_unfinishable(self, what: str, epoch: int, epoch_seconds: float | None) -> None:
        needed = self.seconds_left_needed(epoch, epoch_seconds)
        if needed is not None and self.deadline is not None and time.time() + needed > self.deadline:
            raise Unfinishable(f"{what}: cannot finish (~{needed / 60:.1f} min of work left, "
                         f"{max(0.0, self.deadline - time.time()) / 60:.1f} min to the deadline; --finish-only)")

    def seconds_left_needed(self, epoch: int, epoch_seconds: float | None = None) -> float | None:
        """The estimated seconds of work left after ``epoch`` of the current run (None without a plan), at
        ``epoch_seconds`` per epoch (default: the slowest of the run's last three epochs, its first left out)."""
        if self._plan is None:
            return None
        epochs, later, tests = self._plan
        timed = _measured["tests"]
        test_seconds = _measured["test_seconds"] / timed if timed else TEST_SECONDS_GUESS
        recent = self._recent_epochs()
        per_epoch = (max(recent) if recent else 0.0) if epoch_seconds is None else epoch_seconds
        return 1.1 * per_epoch * (max(0, epochs - epoch) + later) + tests * test_seconds

    def _recent_epochs(self) -> list[float]:
        """The last three epoch times of the run training now, its first in this piece left out; for a run with
        no other yet, those of the job's earlier runs (each one's first left out), else whatever was timed."""
        return (self._run_times[1:] or self._steady_times or self._run_times or self._epoch_times)[-3:]

    def after_epoch(self, record: dict) -> None:
        seconds = float(record.get("seconds", 0.0))
        self._epoch_times.append(seconds)
        if self._run_times:
            self._steady_times.append(seconds)
        self._run_times.append(seconds)
        _measured["epoch_seconds"] = self._recent_epochs()[-1] or _measured["epoch_seconds"]
        self._check(max(self._epoch_times), f"epoch {record.get('epoch')}")
        if self.finish_only and len(self._run_times) >= 2:
            self._refuse_unfinishable(f"epoch {record.get('epoch')}", int(record.get("epoch", 0)), None)

    def summary(self) -> str:
        """What this piece did, for calibrating the next one."""
        if not self._epoch_times:
            return "nothing trained in this piece"
        epochs = len(self._epoch_times)
        return f"{epochs} epochs trained in this piece, {sum(self._epoch_times) / epochs:.1f} s/epoch"

    def check_start(self) -> None:
        """Refuse to start a job with less than ~a minute and a half left."""
        self._check(60.0, "start")

    def before_eval(self, method, key) -> None:
        now = time.time()
        if self._eval_started is not None:
            self.eval_seconds = max(self.eval_seconds, now - self._eval_started)
            _measured["test_seconds"] += now - self._eval_started
            _measured["tests"] += 1
        self._check(self.eval_seconds, f"testing {method} on {key}")
        self._eval_started = time.time()




def mps_hint(workers: int, gpus: int, cuda: bool, mps_running: bool) -> str | None:
    """A line for the log when several workers share one GPU without the CUDA MPS daemon: the GPU then
    runs one process at a time, and the workers add little (on an H200, ten workers ran 1.7× faster with MPS)."""
    if workers > 1 and cuda and max(gpus, 1) < workers and not mps_running:
        return (f"note: {workers} workers share {max(gpus, 1)} GPU(s) without the CUDA MPS daemon, so the GPU "
                "time-slices them; start it first (nvidia-cuda-mps-control -d) to run their kernels side by side")
    return None


def _mps_running() -> bool:
    """Whether an MPS control daemon listens where CUDA clients look for it."""
    pipe = os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")
    return os.path.exists(os.path.join(pipe, "control"))


#: seconds a job must have before the deadline to start (see ``run_job``), and what a piece spends on stopping
_START_SECONDS, _STOP_MARGIN_SECONDS = 1.5 * 60.0 + 5, 20


def minimum_minutes() -> float:
    """The shortest ``max_minutes`` in which a job can start at all."""
    return (_START_SECONDS + _STOP_MARGIN_SECONDS) / 60


def _print(message: str) -> None:
    print(message, flush=True)


def outcome_detail(outcome: dict) -> str:
    """What a job's log line adds after its status: its error, where it stopped, or that it was reused."""
    detail = outcome.get("error") or outcome.get("at") or ("reused" if outcome.get("reused") else "")
    return f" ({detail})" if detail else ""


def run_jobs(run, jobs: list[tuple], workers: int, collect, log=None) -> None:
    """``run(*job)`` for every job — here, or side by side in ``workers`` spawned processes — handing each
    outcome to ``collect`` as it arrives (shared by ``reproduce`` and ``ablate``); then ``log`` gets how
    busy the jobs kept the GPU (:mod:`sikd_utils.gpu_usage`; nothing on a CPU).

    ``collect`` may return further jobs (those that needed the finished one, e.g. students of a teacher just
    trained): they start before the jobs still waiting, so work that was begun is finished first — what a
    time-limited piece leaves unfinished is then as little as possible."""
    with GpuUsage() as usage:
        _run_all(run, jobs, workers, collect)
    if log is not None and usage.line():
        log(usage.line())


def _run_all(run, jobs: list[tuple], workers: int, collect) -> None:
    waiting = deque(jobs)
    if workers == 1:
        while waiting:
            waiting.extendleft(reversed(collect(run(*waiting.popleft())) or ()))
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        running = set()
        while waiting or running:
            while waiting and len(running) < workers:  # never more in flight than workers: the rest can wait
                running.add(pool.submit(run, *waiting.popleft()))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                waiting.extendleft(reversed(collect(future.result()) or ()))


def rerun_advice(error: str) -> str:
    """Whether running the same command again can help a job that failed with ``error`` ("Type: message")."""
    kind = error.partition(":")[0]
    if "out of memory" in error.lower():
        return "a rerun may help with fewer --workers (the GPU ran out of memory)"
    if kind in ("ValueError", "TypeError", "KeyError", "ResultsFileError", "FileNotFoundError", "UnknownNameError"):
        return "a rerun will fail the same way until the cause above is fixed"
    return "a rerun may help if the cause was passing (see --debug for the traceback)"


def closing_status(outcomes: list[dict], unfinished: list[str], start: float, log, done: str,
                   debug: bool = False) -> int:
    """Log each failed job (what failed, whether a rerun can help; the traceback with ``debug``) and the run's
    last line; :data:`EXIT_DONE` or :data:`EXIT_UNFINISHED`."""
    failed = [o for o in outcomes if o["status"] == "failed"]
    for outcome in failed:
        what = f"{outcome.get('task')} seed {outcome.get('seed')}"
        if outcome.get("group"):
            what += f" [{', '.join(outcome['group'])}]"
        log(f"FAILED {what}: {outcome['error']} — {rerun_advice(outcome['error'])}")
        if debug:
            log(outcome["traceback"])
    minutes = (time.time() - start) / 60
    if unfinished:
        if failed and len(failed) == len(outcomes):
            log(f"UNFINISHED after {minutes:.1f} min: {', '.join(unfinished)} — every job FAILED (see above)")
        else:
            log(f"UNFINISHED after {minutes:.1f} min: {', '.join(unfinished)} — run the same command again to "
                "continue" + (f"; {len(failed)} job(s) FAILED (see above)" if failed else ""))
        return EXIT_UNFINISHED
    log(f"DONE after {minutes:.1f} min: {done}")
    return EXIT_DONE
