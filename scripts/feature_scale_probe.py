"""How large does each backbone's skip-free teacher's last-decoder feature scale grow as it trains? (issue 13)

In the ablation, the SwinUNETR students' training loss stayed high while the BasicUNet student's fell: the
feature MSE did not come down (book/results/RUNLOG.md). sikd_utils.feature_scale says why it cannot: no SwinUNETR student's features pass a mean square of 4 per channel, and nothing bounds its teacher's.
This trains each backbone's teacher (by default on CPU at the ``cpu`` preset on abdomen; SwinUNETR at the
ablations' width and teacher rate) and writes its feature scale every few epochs, with provenance, to the file
notebook 07 reads:

    python scripts/feature_scale_probe.py            # about 4 minutes on 2 cores
    python scripts/feature_scale_probe.py --preset gpu --device cuda --epochs 160 --every 10   # the runs' scale
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from sikd_utils import feature_scale as fs
from sikd_utils.configuration import preset_config
from sikd_utils.orchestration import provenance

OUT = Path(__file__).resolve().parents[1] / "book" / "results" / "ablations" / fs.PROBE_FILE


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--task", default="abdomen")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--backbones", nargs="+", default=["unet", "basic_unet", "swin_unetr"])
    parser.add_argument("--runs", default="runs/feature-scale", help="checkpoints (removed first: the probe trains afresh)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    shutil.rmtree(args.runs, ignore_errors=True)
    command = "python scripts/feature_scale_probe.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    made = provenance(preset_config(args.preset, args.task, device=args.device), command=command.strip())
    frame = fs.probe(task=args.task, backbones=args.backbones, epochs=args.epochs, every=args.every,
                     preset=args.preset, out_dir=args.runs, device=args.device)
    path = fs.write_probe(frame, args.out, {**made, "preset": args.preset, "task": args.task, "seed": 0})
    print("\n".join(fs.probe_sentences(frame)))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
