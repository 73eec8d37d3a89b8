"""sikd_utils.runtime: every precision branch (by `capability`), and the fp16 + GradScaler path on CPU.

What these tests do NOT show: speed or accuracy of fp16/bf16 on a real GPU. That is
benchmarks/precision_check.py, run on a CUDA machine (the figures go in the book's notes).
"""

from __future__ import annotations

import pytest
import torch

from sikd_utils import runtime
from sikd_utils.experiment import ExperimentConfig
from sikd_utils.models import UNet
from sikd_utils.train import TrainConfig, build_model, train, validation_dice


@pytest.mark.parametrize("capability, expected", [
    ((7, 5), "fp16"),   # T4 (Colab's free GPU): bf16 only emulated
    ((7, 0), "fp16"),   # V100
    ((6, 1), "fp16"),   # P100 class
    ((8, 0), "bf16"),   # A100
    ((8, 6), "bf16"),   # RTX 30xx
    ((8, 9), "bf16"),   # L4
    ((9, 0), "bf16"),   # H100 / H200
    ((10, 0), "bf16"),  # later generations
])
def test_auto_precision_on_cuda_follows_compute_capability(capability, expected):
    # a CUDA *device object* needs no GPU as long as the capability is given
    assert runtime.choose_precision("cuda", capability=capability) == expected
    assert runtime.choose_precision(torch.device("cuda:1"), capability=capability) == expected
    assert runtime.resolve_precision("auto", "cuda", capability=capability) == expected


@pytest.mark.parametrize("capability", [None, (7, 5), (9, 0)])
def test_cpu_is_always_fp32(capability):
    assert runtime.choose_precision("cpu", capability=capability) == "fp32"
    assert runtime.resolve_precision("auto", "cpu", capability=capability) == "fp32"


def test_auto_device_uses_the_hardware_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        assert runtime.choose_precision("auto") == "fp32"
        assert runtime.cuda_capability("auto") is None


@pytest.mark.parametrize("forced", ["fp32", "fp16", "bf16"])
def test_forced_precision_wins_over_the_hardware(forced):
    for device, cap in (("cpu", None), ("cuda", (7, 5)), ("cuda", (9, 0))):
        assert runtime.resolve_precision(forced, device, capability=cap) == forced


def test_unknown_precision_and_device_are_clear_errors():
    with pytest.raises(ValueError, match=r"precision must be one of .*got 'fp8'"):
        runtime.resolve_precision("fp8", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="half")
    with pytest.raises(ValueError, match="precision must be one of"):
        ExperimentConfig(precision="float16")
    with pytest.raises(ValueError, match="autocast needs a resolved precision"):
        runtime.autocast("cpu", "auto")
    with pytest.raises(ValueError, match="device must be"):
        runtime.resolve_device("gpu")


def test_autocast_dtype_per_precision():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with runtime.autocast("cpu", "fp32"):
        assert layer(x).dtype == torch.float32
    with runtime.autocast("cpu", "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with runtime.autocast("cpu", "fp16"):
        assert layer(x).dtype == torch.float16


def test_grad_scaler_only_for_fp16():
    assert runtime.grad_scaler("cpu", "fp16").is_enabled()
    for precision in ("fp32", "bf16"):
        assert not runtime.grad_scaler("cpu", precision).is_enabled()


def test_set_seed_repeats_random_draws():
    runtime.set_seed(7)
    a = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    runtime.set_seed(7)
    b = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_train_keeps_the_old_names_importable():
    from sikd_utils.train import resolve_device, set_seed

    assert resolve_device is runtime.resolve_device and set_seed is runtime.set_seed


def test_experiment_and_cli_pass_precision_through():
    config = ExperimentConfig(precision="fp16")
    assert config.train_config("baseline", 0).precision == "fp16"
    from sikd_utils.__main__ import _configs, _experiment_args
    import argparse

    parser = argparse.ArgumentParser()
    _experiment_args(parser)
    assert _configs(parser.parse_args(["--precision", "bf16"]))[0].precision == "bf16"
    assert _configs(parser.parse_args([]))[0].precision == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp8"])


def test_fp16_training_with_grad_scaler_runs_on_cpu(toy_data, tmp_path, monkeypatch):
    """Forced fp16 on the CPU: the same loop as fp16 on a T4 (autocast to float16, GradScaler scaling
    the loss, unscaling and checking gradients before the step, the scaler saved for resuming).

    CPU fp16 autocast is slow and covers fewer ops than CUDA's, so this shows the wiring runs and
    learns, not that fp16 matches bf16 on a GPU.
    """
    calls = {"scale": 0, "step": 0, "update": 0}
    real = torch.amp.GradScaler

    class Counting(real):
        def scale(self, outputs):
            calls["scale"] += 1
            return super().scale(outputs)

        def step(self, optimizer, *args, **kwargs):
            calls["step"] += 1
            return super().step(optimizer, *args, **kwargs)

        def update(self, new_scale=None):
            calls["update"] += 1
            return super().update(new_scale)

    monkeypatch.setattr(torch.amp, "GradScaler", Counting)
    train_ds, val_ds = toy_data
    model = build_model("baseline", 1, 3, 4, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(role="baseline", epochs=2, batch_size=4, seed=3, progress=False, device="cpu",
                         precision="fp16")
    result = train(model, train_ds, config, val_ds, checkpoint_dir=tmp_path / "fp16")
    steps = 2 * 3  # 12 slices in batches of 4, two epochs
    assert calls == {"scale": steps, "step": steps, "update": steps}
    assert result.history[-1]["loss"] < result.history[0]["loss"] or result.history[-1]["val_dice"] > 0
    changed = [k for k, v in result.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "fp16 steps must change the weights (a scaler that skips every step would not)"
    saved = torch.load(tmp_path / "fp16" / "last.pt", weights_only=True)
    assert saved["scaler"]["scale"] > 0 and saved["config"]["precision"] == "fp16"
    # resuming the finished run reads the scaler state back without error
    again = train(build_model("baseline", 1, 3, 4, seed=0), train_ds, config, val_ds,
                  checkpoint_dir=tmp_path / "fp16")
    assert again.best_epoch == result.best_epoch


def test_bf16_and_fp32_steps_do_not_scale(toy_data):
    train_ds, _ = toy_data
    for precision in ("fp32", "bf16"):
        config = TrainConfig(role="baseline", epochs=1, batch_size=6, progress=False, device="cpu",
                             precision=precision)
        result = train(build_model("baseline", 1, 3, 4, seed=0), train_ds, config)
        assert result.history[0]["loss"] > 0


def test_validation_and_inference_follow_precision(toy_data):
    _, val_ds = toy_data
    model = UNet(1, 3, 4).eval()
    full = validation_dice(model, val_ds, device="cpu", precision="fp32")
    assert validation_dice(model, val_ds, device="cpu") == full  # auto on CPU is fp32
    assert 0.0 <= validation_dice(model, val_ds, device="cpu", precision="bf16") <= 1.0


def test_env_report_names_the_precision():
    from sikd_utils import env

    info = env.report()
    assert info["precision"] == runtime.choose_precision(info["device"])
    if info["cuda"]:
        major, minor = runtime.cuda_capability("cuda")
        assert info["gpu_capability"] == f"{major}.{minor}"


def test_precision_check_script_runs_on_cpu(capsys):
    """The GPU comparison script at toy scale on the CPU: it must not fail on a GPU for a
    reason a CPU can catch (arguments, plumbing); its figures only mean something on a GPU."""
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "precision_check.py"))
    out = script["main"](["--device", "cpu", "--image-size", "32", "--base-channels", "4", "--epochs", "1",
                          "--batch-size", "8", "--n-train", "2", "--n-val", "1", "--roles", "baseline",
                          "--seeds", "0", "1", "--precisions", "fp16", "bf16"])
    assert set(out["dice"]) == {("baseline", "fp16"), ("baseline", "bf16")}
    assert all(0.0 <= d <= 1.0 for values in out["dice"].values() for d in values)
    assert "fp16 - bf16" in capsys.readouterr().out
