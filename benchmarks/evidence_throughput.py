"""Images per second of the evidence workload — every role of several seeds (teacher, baseline, student,
raw teacher, control), with validation every epoch and testing on the shift benchmark — on one device.

Reference, measured in the same run: today's ``reproduce`` path in one process, what ``reproduce.run_job``
does for each (task, seed): ``orchestration.train_roles`` one network after another, then
``evaluate_methods`` (HD95 on the clean and target sets, as run_job asks). Compared with the packed path
(:mod:`sikd_utils.packed`): ``train_roles_packed`` trains all seeds' teachers as one batched computation,
then all seeds' baselines, students and controls as another, and the same ``evaluate_methods`` tests them.
Neither writes checkpoints; the shift benchmark's data is made once, before the clock starts (reproduce
caches it on disk). ``reproduce``'s worker pool (several processes sharing a GPU under MPS) is not run here.

"Images" are training slices, counted once per role and epoch (a distilled step's teacher forward is part
of its image); the wall time includes validation and testing. FLOPs are counted by
``torch.utils.flop_counter`` on the meta device (multiply-adds count 2): training steps (forward and
backward, plus the frozen teacher's forward for distilled roles), validation and test forwards. The peak
is the card's dense bf16 tensor-core rate from NVIDIA's data sheets (H100 SXM and H200: 989 TFLOP/s);
``--peak-tflops`` names another. The projection scales each path's measured seconds per image to the
training images of the full evidence run (5 tasks x the preset's seeds; each task's slices counted from
its generated training cases), testing included in proportion.

    python benchmarks/evidence_throughput.py --quick                       # CPU check: tiny preset, fundus
    python benchmarks/evidence_throughput.py --device cuda --preset gpu --task fundus --seeds 0 1 2 3 4 \
        --epochs 2 --teacher-epochs 2     # the gpu preset's sizes; ~10 min on one H100 or H200 (estimated)

The preset's own epochs (80/160 for the teachers) take over an hour in today's path; ``--epochs`` and
``--teacher-epochs`` shorten the measured run (each path's first epoch, with cuDNN's autotuning, then weighs
more than in a full run) while the projection keeps the preset's epochs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sikd_utils.configuration import benchmark_splits, preset_config
from sikd_utils.data.slices import SliceDataset
from sikd_utils.data.synthetic import make_cases
from sikd_utils.data.tasks import TASKS
from sikd_utils.evaluation import evaluate_cases
from sikd_utils.models import UNet
from sikd_utils.orchestration import METHOD_ROLES, evaluate_methods, train_roles
from sikd_utils.packed import train_roles_packed
from sikd_utils.presets import preset_settings
from sikd_utils.reproduce import DISTANCE_FAMILIES, EVIDENCE_METHODS, ROLES
from sikd_utils.runtime import resolve_device, set_seed

#: dense bf16 tensor-core TFLOP/s by device-name fragment (NVIDIA data sheets, SXM parts)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


def flops(model: UNet, batch: int, size: int, backward: bool) -> float:
    """FLOPs of one forward (and backward) pass of ``model`` on ``batch`` images, counted on the meta device."""
    meta = copy.deepcopy(model).to("meta")
    x = torch.zeros(batch, model.in_channels, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        if backward:
            meta.train()
            logits, features = meta(x)
            (logits.sum() + features.sum()).backward()
        else:
            meta.eval()
            with torch.no_grad():
                meta(x)
    return float(counter.get_total_flops())


def workload(config, train_images: int, val_images: int, test_slices: int, seeds: int) -> dict:
    """Training images and FLOPs of one task's evidence workload over ``seeds`` seeds."""
    student = config.build_model("baseline", seed=0)
    teacher = config.build_model("teacher", seed=0)
    size, batch = config.image_size, config.batch_size
    step = {"plain": flops(student, batch, size, True) / batch,
            "teacher": flops(teacher, batch, size, True) / batch,
            "teacher_forward": flops(teacher, batch, size, False) / batch,
            "forward": flops(student, batch, size, False) / batch}
    per_role = {"teacher": step["teacher"], "raw_teacher": step["teacher"], "baseline": step["plain"],
                "student": step["plain"] + step["teacher_forward"], "control": step["plain"] + step["teacher_forward"]}
    images = total = 0.0
    for role in ROLES:
        epochs = config.train_config(role, 0).epochs
        images += epochs * train_images
        total += epochs * (train_images * per_role[role] + val_images * step["forward"])
    total += len(EVIDENCE_METHODS) * test_slices * step["forward"]
    return {"images": images * seeds, "flops": total * seeds, "step": step}


def slices_of(cases) -> int:
    return sum(case.image.shape[-1] if case.image.ndim == 4 else 1 for case in cases)


def run_today(config, splits, seeds) -> dict:
    """reproduce.run_job's work for each seed, one after another (no files)."""
    scores, testing = {}, 0.0
    for seed in seeds:
        results = train_roles(config, splits, ROLES, seed)
        scores.update({(seed, role): r.best_val_dice for role, r in results.items()})
        models = {m: results[METHOD_ROLES[m]].model for m in EVIDENCE_METHODS}
        testing += timed_testing(models, splits, config, seed)
    return scores, testing


def run_packed(config, splits, seeds, pack_size) -> dict:
    """All seeds' roles trained packed, then the same testing."""
    results = train_roles_packed(config, splits, ROLES, seeds, pack_size)
    testing = 0.0
    for seed in seeds:
        models = {m: results[(seed, METHOD_ROLES[m])].model for m in EVIDENCE_METHODS}
        testing += timed_testing(models, splits, config, seed)
    return {key: r.best_val_dice for key, r in results.items()}, testing


def timed_testing(models, splits, config, seed) -> float:
    """Seconds of run_job's testing of one seed's three methods (HD95 on the clean and target sets)."""
    start = time.perf_counter()
    evaluate_methods(models, splits, config, seed, distances=lambda key: key.family in DISTANCE_FAMILIES)
    return time.perf_counter() - start


def training_slices(preset: str, task: str) -> int:
    """Foreground training slices of ``task`` at ``preset`` (what one epoch of one role trains on)."""
    config = preset_config(preset, task, out_dir=None)
    cases = make_cases(task, n_cases=config.counts()["n_train"], image_size=config.image_size, seed=config.data_seed)
    return len(SliceDataset(cases, config.image_size, foreground_only=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (preset 'tiny', seeds 0 1 2) on the CPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--preset", default="gpu")
    parser.add_argument("--task", default="fundus")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the preset's")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of every role instead of the preset's (a rate needs fewer; the projection "
                             "still uses the preset's)")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="epochs of the two teachers, likewise")
    parser.add_argument("--pack-size", type=int, default=None, help="networks per pack (default: all of a stage)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for %% of peak")
    parser.add_argument("--no-projection", action="store_true", help="skip projecting the full evidence run")
    args = parser.parse_args()
    preset = "tiny" if args.quick else args.preset
    device = "cpu" if args.quick else str(resolve_device(args.device))
    seeds = tuple(args.seeds or ((0, 1, 2) if args.quick else preset_settings(preset)["seeds"]))
    config = preset_config(preset, args.task, device=device, out_dir=None, progress=False, seeds=seeds)
    shorter = {k: v for k, v in (("epochs", args.epochs), ("teacher_epochs", args.teacher_epochs)) if v}
    config = dataclasses.replace(config, **shorter)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else \
        f"CPU, {torch.get_num_threads()} threads"
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    print(f"{name}; task {args.task}, preset {preset} ({config.image_size} px, base {config.base_channels}, batch "
          f"{config.batch_size}, epochs {config.epochs}/{config.teacher_epochs}), seeds {list(seeds)}, "
          f"torch {torch.__version__}", flush=True)

    began = time.perf_counter()
    splits = benchmark_splits(config, None, tuple(int(s) for s in preset_settings(preset)["severities"]))
    train_n = len(SliceDataset(splits.train, config.image_size, foreground_only=True))
    val_n = len(SliceDataset(splits.val, config.image_size, foreground_only=True))
    test_n = sum(slices_of(cases) for cases in splits.tests.values())
    work = workload(config, train_n, val_n, test_n, len(seeds))
    print(f"data made in {time.perf_counter() - began:.0f} s (not timed): {train_n} training, {val_n} validation "
          f"slices, {test_n} test slices in {len(splits.tests)} test sets; {work['images']:.0f} training images, "
          f"{work['flops'] / 1e12:.3g} TFLOP (a plain step {work['step']['plain'] / 1e9:.3g} GFLOP/image, "
          f"distilled {(work['step']['plain'] + work['step']['teacher_forward']) / 1e9:.3g})", flush=True)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def measure(label, run):
        set_seed(0)
        sync()
        start = time.perf_counter()
        scores, testing = run()
        sync()
        seconds = time.perf_counter() - start
        rate = work["images"] / seconds
        achieved = work["flops"] / seconds / 1e12
        share = f"{100 * achieved / peak:5.2f} % of {peak:.0f} TFLOP/s bf16" if peak else "peak n/a (--peak-tflops)"
        print(f"{label:44s} {seconds:8.1f} s (testing {testing:.1f}) {rate:9.1f} images/s  {achieved:8.4f} TFLOP/s"
              f"  {share}", flush=True)
        return seconds, scores, seconds - testing

    # one-time costs (imports, first calls of the metrics) are paid here, not by whichever path runs first
    warm = config.build_model("baseline", seed=0)
    first_set = next(iter(splits.tests.values()))
    evaluate_cases(warm, first_set[:2], args.task, config.image_size, device=device, progress=False)
    train_roles(dataclasses.replace(config, epochs=1, teacher_epochs=1), splits, ("baseline",), seeds[0])
    today, today_scores, today_training = measure("reference: today's reproduce path, 1 process",
                                  lambda: run_today(config, splits, seeds))
    packed, packed_scores, packed_training = measure(f"packed (sikd_utils.packed, pack size {args.pack_size or 'all'})",
                                    lambda: run_packed(config, splits, seeds, args.pack_size))
    print(f"ratio packed / reference: x{today / packed:.2f} images/s (training alone, testing left out: "
          f"x{today_training / packed_training:.2f})")
    for role in ROLES:  # the same networks, trained two ways: their validation Dice should agree within noise
        a = [today_scores[(s, role)] for s in seeds]
        b = [packed_scores[(s, role)] for s in seeds]
        print(f"  best validation Dice, {role:11s} reference {sum(a) / len(a):.4f}  packed {sum(b) / len(b):.4f}")
    if args.no_projection:
        return
    per_image = {"reference": today / work["images"], "packed": packed / work["images"]}
    full_images = 0.0
    full_seeds = len(preset_settings(preset)["seeds"])
    for task in TASKS:
        task_config = preset_config(preset, task, out_dir=None)
        epochs = sum(task_config.train_config(role, 0).epochs for role in ROLES)
        full_images += epochs * training_slices(preset, task) * full_seeds
    print(f"projected full evidence run ({len(TASKS)} tasks x {full_seeds} seeds, preset {preset}, "
          f"{full_images:.0f} training images, at this task's seconds per image):")
    for label, seconds in per_image.items():
        print(f"  {label:9s} {seconds * full_images / 60:8.1f} min of this device")


if __name__ == "__main__":
    main()
