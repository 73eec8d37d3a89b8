#!/usr/bin/env bash
# Does the skip-free SwinUNETR teacher leave background at a lower learning rate? (issue 13)
# At the U-Net's Adam lr 1e-3, most fundus SwinUNETR teachers of the gpu-preset ablation never predicted
# foreground on validation (book/results/RUNLOG.md). This trains the fundus teacher (gpu-preset data and width)
# for 20 epochs at each of LRS and SEEDS, all side by side on one GPU, and writes one line per run to OUT/probe.txt:
#   probe-<lr> seed<k> <epochs> <validation Dice per epoch ...> s/ep <last epoch's seconds> loss <every 4th epoch's loss>
# (the format of book/results/ablations/swin_teacher_lr_probe.txt). Needs monai (scripts/gpu_piece.sh installs the
# carried wheels into /tmp/sikd-site). Each process gets CORES / processes threads: at torch's default of one
# thread per core each, a dozen processes on a 16-core machine spend minutes starting before they reach the GPU.
#
#   bash scripts/swin_teacher_lr_probe.sh OUT [LRS] [SEEDS]      # defaults: "1e-3 3e-4 1e-4" "1 2"
set -uo pipefail
out=$1 lrs=${2:-1e-3 3e-4 1e-4} seeds=${3:-1 2}
mkdir -p "$out"
n=$(( $(wc -w <<< "$lrs") * $(wc -w <<< "$seeds") ))
threads=$(( $(nproc) / n )); [ "$threads" -ge 1 ] || threads=1
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads PYTHONPATH=/tmp/sikd-site:$PWD PYTHONUNBUFFERED=1
# the gpu preset's data and batch, the ablation's SwinUNETR width: read from where they are defined
read -r size batch n_train n_val width < <(python3 -c "
from sikd_utils.ablations import SWIN_WIDTH
from sikd_utils.presets import PRESETS
g = PRESETS['gpu']
print(g['image_size'], g['batch_size'], *g['n_images'][:2], SWIN_WIDTH)") || exit 1
for lr in $lrs; do
    for s in $seeds; do
        python3 -m sikd_utils train --task fundus --backbone swin_unetr --base-channels "$width" --image-size "$size" \
            --batch-size "$batch" --epochs 20 --n-train "$n_train" --n-val "$n_val" --lr "$lr" --roles teacher --seeds "$s" \
            --device "${SIKD_DEVICE:-cuda}" --out-dir "runs/probe-$lr" --no-progress > "$out/probe_${lr}_$s.log" 2>&1 &
    done
done
wait
python3 - "$lrs" > "$out/probe.txt" <<'PY'
import glob
import sys

import torch

for lr in sys.argv[1].split():
    for f in sorted(glob.glob(f"runs/probe-{lr}/**/last.pt", recursive=True)):
        h = torch.load(f, weights_only=True, map_location="cpu")["history"]
        print(f"probe-{lr}", f.split("/")[-3], len(h), " ".join(f"{r['val_dice']:.2f}" for r in h),
              "s/ep", f"{h[-1]['seconds']:.1f}", "loss", " ".join(f"{r['loss']:.2f}" for r in h[::4]))
PY
cat "$out/probe.txt"
