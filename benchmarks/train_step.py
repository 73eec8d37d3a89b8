"""Images per second of one SIKD student step (student forward/backward + frozen teacher forward).

Reference, measured in the same run: fp32, default memory format, no compilation — how the official
code runs. Compared with what `sikd_utils.train` does on CUDA by default (bf16 autocast +
channels-last) and with `TrainConfig(compile=True)` added.

    python benchmarks/train_step.py                      # CPU-sized: base 8, 64 px, batch 8
    python benchmarks/train_step.py --device cuda --base 64 --size 256 --batch 20   # the paper's setting
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from sikd_utils.averaging import class_wise_mean
from sikd_utils.distill import sikd_loss
from sikd_utils.models import UNet


def step_rate(device, base, size, batch, classes, amp, channels_last, compile_, steps, warmup):
    torch.manual_seed(0)
    student = UNet(1, classes, base).to(device)
    teacher = UNet(1, classes, base, skip_connections=False).to(device).eval().requires_grad_(False)
    if channels_last:
        student = student.to(memory_format=torch.channels_last)
        teacher = teacher.to(memory_format=torch.channels_last)
    step_model = torch.compile(student) if compile_ else student
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, size, size, device=device)
    y = torch.randint(0, classes, (batch, size, size), device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()

    def one():
        with autocast:
            logits, feats = step_model(x)
            with torch.no_grad():
                _, t_feats = teacher(class_wise_mean(x, y, classes))
            loss = sikd_loss(logits, feats, t_feats, y).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--base", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    warmup = 5 if cuda else 2
    common = dict(device=device, base=args.base, size=args.size, batch=args.batch, classes=args.classes,
                  steps=args.steps, warmup=warmup)
    rows = [("reference: fp32, NCHW (official code)", step_rate(amp=False, channels_last=False, compile_=False, **common))]
    if cuda:
        rows.append(("sikd_utils default: bf16 + channels-last", step_rate(amp=True, channels_last=True, compile_=False, **common)))
        if not args.no_compile:
            rows.append(("+ torch.compile", step_rate(amp=True, channels_last=True, compile_=True, **{**common, "warmup": 15})))
    else:
        rows.append(("channels-last (CPU)", step_rate(amp=False, channels_last=True, compile_=False, **common)))
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}; U-Net base {args.base}, {args.size}x{args.size}, batch {args.batch}, torch {torch.__version__}")
    reference = rows[0][1]
    for label, rate in rows:
        print(f"{label:45s} {rate:9.1f} images/s   x{rate / reference:.2f}")
    if cuda:
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
