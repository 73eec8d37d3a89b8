"""Images per second of one SIKD student step (student forward/backward + frozen teacher forward).

Reference, measured in the same run: fp32, default memory format, no compilation — how the official
code runs. Compared with what `sikd_utils.train` does on CUDA by default (the precision
`sikd_utils.runtime.choose_precision` picks: bf16 autocast from compute capability 8.0, fp16 autocast +
GradScaler below; and channels-last), with the other half precision forced, and with
`TrainConfig(compile=True)` added.

    python benchmarks/train_step.py                      # CPU-sized: base 8, 64 px, batch 8
    python benchmarks/train_step.py --device cuda --base 64 --size 256 --batch 20   # the paper's setting
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from sikd_utils.averaging import class_wise_mean
from sikd_utils.distill import sikd_loss
from sikd_utils.models import UNet
from sikd_utils.runtime import autocast, choose_precision, grad_scaler, resolve_device, set_seed


def step_rate(device, base, size, batch, classes, precision, channels_last, compile_, steps, warmup,
              fused=False, deterministic=False):
    """Images/s of the SIKD step. ``compile_``: False, True (the student model, as TrainConfig(compile=True)),
    "step" (the whole step: class-wise mean, teacher forward, student forward/backward, Adam) or
    "step-graphs" (the whole step with CUDA graphs, torch.compile(mode="reduce-overhead"))."""
    set_seed(0)
    if device.type == "cuda":  # the official code's cuDNN settings for the reference, ours otherwise
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
    student = UNet(1, classes, base).to(device)
    teacher = UNet(1, classes, base, skip_connections=False).to(device).eval().requires_grad_(False)
    if channels_last:
        student = student.to(memory_format=torch.channels_last)
        teacher = teacher.to(memory_format=torch.channels_last)
    step_model = torch.compile(student) if compile_ is True else student
    opt = torch.optim.Adam(student.parameters(), lr=1e-3, fused=fused or None)
    x = torch.rand(batch, 1, size, size, device=device)
    y = torch.randint(0, classes, (batch, size, size), device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    scaler = grad_scaler(device, precision)

    whole = compile_ in ("step", "step-graphs")  # no host syncs inside: the labels here are valid by construction

    def one():
        with autocast(device, precision):
            logits, feats = step_model(x)
            with torch.no_grad():
                _, t_feats = teacher(class_wise_mean(x, y, classes, check_values=not whole))
            loss = sikd_loss(logits, feats, t_feats, y, check_values=not whole).total
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    if whole:
        one = torch.compile(one, mode="reduce-overhead" if compile_ == "step-graphs" else None)
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
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--base", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compiled", choices=("all", "step", "none"), default="all",
                        help="compiled rows on CUDA: all three, only the whole-step ones (each compile takes "
                             "a minute or two), or none (default: %(default)s)")
    parser.add_argument("--no-compile", action="store_true", help="the same as --compiled none")
    args = parser.parse_args()
    compiled = "none" if args.no_compile else args.compiled
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    warmup = 5 if cuda else 2
    common = dict(device=device, base=args.base, size=args.size, batch=args.batch, classes=args.classes,
                  steps=args.steps, warmup=warmup)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    if cuda:
        name += " (compute capability {}.{})".format(*torch.cuda.get_device_capability(device))
    print(f"{name}; U-Net base {args.base}, {args.size}x{args.size}, batch {args.batch}, torch {torch.__version__}",
          flush=True)
    reference = step_rate(precision="fp32", channels_last=False, compile_=False, deterministic=cuda, **common)

    def row(label, rate):  # printed as measured: a compile that fails or runs out of time keeps the rows before it
        text = f"{rate:9.1f} images/s   x{rate / reference:.2f}" if isinstance(rate, float) else rate
        print(f"{label:60s} {text}", flush=True)

    row("reference: fp32, NCHW, deterministic cuDNN (official code)", reference)
    rows = []
    if cuda:
        auto = choose_precision(device)
        other = "fp16" if auto == "bf16" else "bf16"
        rows += [(f"sikd_utils default: {auto} + channels-last", dict(precision=auto, compile_=False)),
                 (f"forced {other} + channels-last", dict(precision=other, compile_=False)),
                 ("default + fused Adam", dict(precision=auto, compile_=False, fused=True))]
        slow = {"warmup": 15}
        if compiled == "all":
            rows.append(("default + torch.compile (student)", dict(precision=auto, compile_=True, **slow)))
        if compiled != "none":
            rows += [("default + whole step compiled, fused Adam",
                      dict(precision=auto, compile_="step", fused=True, **slow)),
                     ("default + whole step, CUDA graphs, fused Adam",
                      dict(precision=auto, compile_="step-graphs", fused=True, **slow))]
    else:
        rows.append(("channels-last (CPU)", dict(precision="fp32", compile_=False)))
    for label, options in rows:
        options = {**common, "channels_last": True, **options}
        started = time.perf_counter()
        try:
            rate = step_rate(**options)
        except Exception as error:  # noqa: BLE001 - a compiler failure is a result to report, not a crash
            rate = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''}"
        if options["compile_"]:
            label += f" [{time.perf_counter() - started:.0f} s with compiling]"
        row(label, rate)
    if cuda:
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
