"""Command line: the book's pipeline without Jupyter (installed as the ``sikd`` command).

    %(prog)s run --task cardiac --epochs 20 --seeds 0 1 2
    %(prog)s run --task all --image-size 128 --base-channels 64 --epochs 100 --device cuda
    %(prog)s gap --task all            # how much a plain U-Net loses under each shift
    %(prog)s train --task fundus --roles teacher baseline student   # train only (the models `run` reuses)
    %(prog)s train --task fundus --backbone swin_unetr --base-channels 24 --roles teacher   # MONAI's SwinUNETR
    torchrun --nproc_per_node=2 -m sikd_utils train --task fundus --roles baseline --device cuda  # 2 GPUs, one run
    %(prog)s reproduce --preset gpu --max-minutes 9 --workers 8   # the evidence run
    %(prog)s ablate --preset gpu --tasks fundus abdomen --workers 10 --max-minutes 9   # why SIKD works
    %(prog)s calibrate --preset gpu --levels 0 1 2 3 4 --seeds 0 1 --workers 10 --max-minutes 9   # difficulty
    %(prog)s fetch kvasir data/kvasir  # download where public, else print instructions
    # real data: the task's real source dataset, and target datasets to test on
    %(prog)s run --task cardiac --source-root data/ACDC/database --target mnms=data/MnM

Errors are one line on stderr (``sikd: error: …``); the exit status is 2 for a wrong command line, 1
for anything else, 130 when interrupted. ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from . import __version__
from .data.tasks import TASKS

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """A command line that cannot work (exit status 2), found after argparse's own checks."""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the examples' line breaks and show every flag's default."""


class _Parser(argparse.ArgumentParser):
    """argparse with our error line (``sikd: error: …``) and no prefix matching of flags."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"sikd: error: {message}\n")


def _prog() -> str:
    """``python -m sikd_utils`` when run as a module, else the command's own name (``sikd``)."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if name in ("__main__.py", "-c", ""):
        return "python -m sikd_utils"
    return name if name.startswith("sikd") else "sikd"


def _experiment_args(parser: argparse.ArgumentParser, test_sets: bool = True) -> None:
    """The experiment's flags; ``test_sets=False`` leaves out those of testing (``train`` makes no test sets)."""
    from .backbones import BACKBONES
    from .experiment import ExperimentConfig
    from .runtime import PRECISIONS

    d = ExperimentConfig()
    parser.add_argument("--task", default=d.task, choices=sorted(TASKS) + ["all"], help="which task (or all five)")
    parser.add_argument("--image-size", type=int, default=d.image_size, help="training size in pixels (H = W)")
    parser.add_argument("--base-channels", type=int, default=d.base_channels,
                        help="network width (U-Net: 64 = the paper's; swin_unetr: a multiple of 12)")
    parser.add_argument("--backbone", default=d.backbone, choices=BACKBONES,
                        help="the network of every role; a teacher is the same network without its skips")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="epochs of the baseline and the student")
    parser.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs,
                        help="epochs of the teacher (default: --epochs)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="slices per batch")
    parser.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    parser.add_argument("--teacher-lr", type=float, default=d.teacher_lr,
                        help="Adam learning rate of the teachers (default: --lr)")
    parser.add_argument("--distill-weight", type=float, default=d.distill_weight,
                        help="λ, the weight of the feature MSE (paper: 2.0)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds), help="training seeds")
    parser.add_argument("--n-train", type=int, default=None, help="synthetic training cases (default: the task's)")
    parser.add_argument("--n-val", type=int, default=None, help="synthetic validation cases (default: the task's)")
    if test_sets:
        parser.add_argument("--n-test", type=int, default=None,
                            help="synthetic source test cases (default: the task's)")
        parser.add_argument("--n-target", type=int, default=None,
                            help="synthetic cases per shifted test set (default: the task's)")
        parser.add_argument("--severities", type=float, nargs="+", default=list(d.severities),
                            help="strengths of the synthetic target shift (0 none, 1 default, 2 severe)")
        parser.add_argument("--no-shape-shift", dest="shape_shift", action="store_false",
                            help="skip the synthetic shape-shift test set")
    parser.add_argument("--data-seed", type=int, default=d.data_seed, help="seed of the synthetic data")
    from .reproduce import difficulty_arg

    parser.add_argument("--difficulty", type=difficulty_arg, default=d.difficulty,
                        help="level of the synthetic suite, 0 (the original phantoms) to 4")
    parser.add_argument("--device", default=d.device, help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                        help="auto: bf16 on GPUs of compute capability >= 8.0, fp16 below, fp32 on CPU")
    parser.add_argument("--out-dir", default=d.out_dir,
                        help="folder keeping trained models and results (checked for writing before training)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    if test_sets:
        parser.add_argument("--summary-csv", default=None, help="also write all tasks' tables to this CSV file")
    parser.add_argument("--source-root", default=None,
                        help="real data: folder of the task's real source dataset (e.g. ACDC for cardiac)")
    if test_sets:
        parser.add_argument("--target", action="append", default=[], metavar="DATASET=FOLDER",
                            help="real data: a target dataset of the task to test on, e.g. mnms=/data/MnM "
                                 "(repeatable)")


def _dataset_key(text: str) -> str:
    from .data.real import _check_dataset

    try:
        return _check_dataset(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    """The ``sikd`` argument parser (also used to document the command line)."""
    prog = _prog()
    parser = _Parser(prog=prog, description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="on errors, show the full traceback")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on errors, show the full traceback")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,gap,train,reproduce,ablate,calibrate,fetch}",
                                parser_class=_Parser)
    run = sub.add_parser("run", parents=[common], help="teacher, baseline and SIKD student on one task (or all)",
                         description="Train teacher, baseline and SIKD student for every seed and score them "
                                     "on every test set.")
    _experiment_args(run)
    gap = sub.add_parser("gap", parents=[common], help="baseline U-Net only: Dice on source vs shifted test sets",
                         description="How much a plain U-Net loses on each shifted test set.")
    _experiment_args(gap)
    fit = sub.add_parser("train", parents=[common], help="train roles only, into the run folders `run` reuses; "
                                                         "data-parallel under torchrun",
                         description="Train the given roles for every seed into the run folder that `run` reads "
                                     "(so `run` then only tests). Launched by torchrun "
                                     "(torchrun --nproc_per_node=N -m sikd_utils train ...), each run is one "
                                     "DistributedDataParallel run over the N processes, one GPU each, at the same "
                                     "global --batch-size (sikd_utils.distributed).")
    _experiment_args(fit, test_sets=False)
    from .train import ROLES

    fit.add_argument("--roles", nargs="+", default=["teacher", "baseline", "student"], choices=ROLES,
                     metavar="ROLE", help=f"roles to train, in order (a distilled role after its teacher): "
                                          f"{', '.join(ROLES)}")
    evidence = sub.add_parser("reproduce", parents=[common],
                              help="the evidence run: all tasks x seeds x baseline, SIKD, control on the shift "
                                   "benchmark (resumable, time-limited)",
                              description="The evidence run: every task and seed, baseline, SIKD and the "
                                          "control, on the shift benchmark; resumable and time-limited.")
    from .reproduce import add_arguments as _reproduce_arguments

    _reproduce_arguments(evidence)
    ablation = sub.add_parser("ablate", parents=[common],
                              help="the ablations of 'Why does SIKD work?' (notebook 07): variants x seeds on a 2D "
                                   "and a 3D task (resumable, time-limited)",
                              description="Every ablation variant of sikd_utils.ablations (teacher skips, λ, layer, "
                                          "teacher input, distillation method, backbone) against its baseline and "
                                          "SIKD; resumable and time-limited.")
    from .ablate import add_arguments as _ablate_arguments

    _ablate_arguments(ablation)
    calibration = sub.add_parser("calibrate", parents=[common],
                                 help="baselines only at each difficulty level: the suite's calibration to the "
                                      "paper's baselines (resumable, time-limited)",
                                 description="Train and test the plain U-Net baseline only (never SIKD) at each "
                                             "difficulty level, and write calibration.csv.")
    from .calibrate import add_arguments as _calibrate_arguments

    _calibrate_arguments(calibration)
    fetch = sub.add_parser("fetch", parents=[common], help="download a public dataset, or print how to get a gated one",
                           description="Download and verify a public dataset, or print how to obtain a gated one.")
    fetch.add_argument("dataset", type=_dataset_key, help="dataset key, e.g. kvasir, acdc, busi")
    fetch.add_argument("root", help="folder to unpack into (load(dataset, root) then finds it)")
    return parser


def _configs(args) -> list:
    from .experiment import ExperimentConfig

    names = {f.name for f in dataclasses.fields(ExperimentConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    tasks = sorted(TASKS) if args.task == "all" else [args.task]
    try:
        return [ExperimentConfig(**{**values, "task": task}) for task in tasks]
    except (ValueError, TypeError) as err:  # a flag's value out of range: a usage error
        raise UsageError(str(err)) from err


def _targets(args) -> dict:
    """``--target DATASET=FOLDER`` items, each a dataset of the task; checked before any data is read."""
    from .data import real

    targets = {}
    for item in args.target:
        dataset, sep, folder = item.partition("=")
        if not sep or not dataset or not folder:
            raise UsageError(f"--target takes DATASET=FOLDER, e.g. --target mnms=/data/MnM; got {item!r}")
        try:
            key = real._check_dataset(dataset)
        except ValueError as err:
            raise UsageError(f"--target {item!r}: {err}") from None
        if real.task_of(key) != args.task:
            raise UsageError(f"--target {key!r} belongs to task {real.task_of(key)!r}, not {args.task!r}; "
                             f"targets of {args.task!r}: {list(TASKS[args.task].real_targets) or 'none listed'}")
        if key in targets:
            raise UsageError(f"--target {key!r} given twice")
        targets[key] = folder
    return targets


def _check_synthetic_only(args) -> None:
    if args.source_root and args.difficulty:
        raise UsageError(f"--difficulty {args.difficulty} sets the synthetic suite's level; real data "
                         f"(--source-root) is as hard as it is")


def _check_outputs(args) -> None:
    """Every place we will write to, checked before training starts (OSError: exit status 1)."""
    from .checks import check_output_file, check_writable_dir

    if args.out_dir:
        check_writable_dir("--out-dir", args.out_dir)
    if getattr(args, "summary_csv", None):
        check_output_file("--summary-csv", args.summary_csv)


def _run(args) -> int:
    import pandas as pd

    pd.set_option("display.width", 160)
    if args.command in ("reproduce", "ablate"):
        from .reproduce import fill_result_dirs
        from .run_guard import writable_folder

        fill_result_dirs(args)
        writable_folder(args.out_dir, "--out-dir")  # checked, not made: a refused run leaves nothing behind
        writable_folder(args.results_dir, "--results-dir")
        if args.command == "ablate":
            from .ablate import main as ablate_main

            return ablate_main(args)
        from .reproduce import main as reproduce_main

        return reproduce_main(args)
    if args.command == "calibrate":
        from .calibrate import main as calibrate_main

        return calibrate_main(args)
    if args.command == "fetch":
        from .data.real import fetch as fetch_dataset

        fetch_dataset(args.dataset, args.root)
        return 0
    if args.command == "train":
        return _train(args)
    if (args.source_root or args.target) and args.task == "all":
        raise UsageError("--source-root and --target need a single --task (each task has its own real datasets)")
    if args.target and not args.source_root:
        raise UsageError("--target needs --source-root (the real source dataset to train on)")
    _check_synthetic_only(args)
    targets = _targets(args)
    configs = _configs(args)
    _check_outputs(args)
    from .experiment import domain_gap, real_splits, run_task

    splits = real_splits(args.task, args.source_root, targets) if args.source_root else None
    tables = []
    for config in configs:
        print(f"\n=== {config.task} ===", flush=True)
        if args.command == "run":
            result = run_task(config, splits)
            table = result.comparison
            print(result.training.groupby("role", sort=False)["best_val_dice"].agg(["mean", "min", "max"])
                  .round(3).rename(columns=lambda c: f"val Dice {c}").to_string(), flush=True)
            if config.out_dir:
                print(f"models and results under {config.out_dir}/{config.task}/<settings hash>/")
        else:
            table = domain_gap(config, splits)
        print(table.round(4).to_string(index=False), flush=True)
        tables.append(table.assign(task=config.task))
    if args.summary_csv:
        pd.concat(tables, ignore_index=True).to_csv(args.summary_csv, index=False)
        print(f"summary written to {args.summary_csv}")
    return 0


def _train(args) -> int:
    """``train``: each role of each seed trained (or reused) in its run folder; rank 0 reports."""
    import dataclasses

    from .configuration import real_splits, synthetic_splits
    from .distributed import world
    from .orchestration import train_roles

    if args.source_root and args.task == "all":
        raise UsageError("--source-root needs a single --task (each task has its own real dataset)")
    _check_synthetic_only(args)
    configs = _configs(args)
    _check_outputs(args)
    say = print if world()[0] == 0 else (lambda *a, **k: None)
    for config in configs:
        say(f"\n=== {config.task} ===", flush=True)
        # no test sets are made: the run folder and data identity depend on the training data only
        splits = (real_splits(args.task, args.source_root) if args.source_root else
                  synthetic_splits(dataclasses.replace(config, severities=(), shape_shift=False)))
        for seed in config.seeds:
            results = train_roles(config, splits, args.roles, seed)
            for role, result in results.items():
                say(f"seed {seed} {role}: best validation Dice {result.best_val_dice:.3f} at epoch "
                    f"{result.best_epoch} of {len(result.history)}", flush=True)
        if config.out_dir:
            say(f"models under {config.run_root(splits.tag)}/seed<k>/<role>/")
    return 0


def _start_distributed(args) -> bool:
    """Join torchrun's process group for ``train``; refuse other commands under torchrun (they would
    run N times over). Returns whether a group was started (and must be ended)."""
    from .distributed import init_from_environment, launched_by_torchrun

    if not launched_by_torchrun():
        return False
    if args.command != "train":
        raise UsageError(f"only `train` runs data-parallel under torchrun, not {args.command!r}; run it as one "
                         "process (`reproduce --gpus N` spreads the evidence run over N GPUs)")
    return init_from_environment()


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    if not isinstance(err, (ValueError, TypeError, OSError, KeyError, UsageError)):
        text = f"{type(err).__name__}: {text}"
    first, _, rest = text.partition("\n")
    return first + (" (more with --debug)" if rest.strip() else "")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 error, 2 wrong command line, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or argparse's own usage error (already printed)
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    started = False
    try:
        started = _start_distributed(args)
        return _run(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("sikd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if args.debug:
            raise
        if isinstance(err, UsageError):
            parser.print_usage(sys.stderr)
        print(f"sikd: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, UsageError) else EXIT_ERROR
    finally:
        if started:
            import torch.distributed

            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
