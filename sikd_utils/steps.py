"""One optimiser step of each kind ``train()`` takes: supervised (teacher, baseline), the idle step of a DDP
rank left without items, and the whole step compiled; plus the optimiser's set-up and learning-rate updates.
The SIKD step itself is :func:`sikd_utils.distill.sikd_step`, the one notebook 04 teaches."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from .averaging import class_wise_mean
from .distill import SIKDLoss, check_finite, sikd_step

__all__ = []  # the steps train() takes; none is called from outside

if TYPE_CHECKING:
    from .train import TrainConfig


def _idle_step(model, optimizer, images, autocast, scaler) -> None:
    """The step of a rank with an empty share: it runs what every rank must run together (global
    batch-norm statistics in the forward pass, DDP's gradient average in the backward pass) and
    contributes a zero gradient, so the other ranks' weighted losses make the step alone."""
    with autocast():
        logits, _ = model(images)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(logits.float().sum() * 0).backward()
    scaler.step(optimizer)
    scaler.update()


def _supervised_step(model, optimizer, images, labels, num_classes: int, inputs, autocast, scaler,
                     check_values: bool = True) -> SIKDLoss:
    """One cross-entropy step: the teacher's (on ``inputs(images, labels, num_classes)``, the class-wise
    mean images for SIKD) or, with ``inputs=None``, the baseline's (raw images). ``check_values=False``
    skips the loss's finiteness check, as sikd_step's does (train()'s compiled step checks outside it)."""
    with autocast():
        if inputs is not None:
            images = inputs(images, labels, num_classes)
        logits, _ = model(images)
        ce = F.cross_entropy(logits.float(), labels)
        loss = SIKDLoss(ce, ce, torch.zeros((), device=images.device))
    if check_values:
        check_finite(loss)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss.total).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


# torch.compile's backend for compile_step; tests swap in "aot_eager" to check the plumbing without
# inductor's C++ compilation (minutes on a small CPU)
_COMPILE_BACKEND = "inductor"


def _compiled_step(config: TrainConfig, model, teacher, optimizer, num_classes: int, inputs, autocast,
                   scaler) -> Callable:
    """The step train() runs uncompiled — sikd_step for a distilled role, _supervised_step otherwise — with
    everything but (images, labels) bound, compiled as ``config.compile_step`` says. It runs without the
    checks that read values back (host syncs: torch.compile would break the graph at each, and CUDA graphs
    cannot hold them): train() checks the labels before each batch is copied and the loss once per epoch.
    Shapes are static: a smaller last batch compiles (and, with CUDA graphs, records) a second graph."""
    if inputs is class_wise_mean:  # the labels are checked before the step
        inputs = functools.partial(class_wise_mean, check_values=False)
    if teacher is not None:
        step = functools.partial(sikd_step, model, teacher, optimizer, weight=config.distill_weight,
                                 autocast=autocast, teacher_input=inputs, scaler=scaler,
                                 method=config.distill_method, layer=config.distill_layer,
                                 temperature=config.kd_temperature, check_values=False)
    else:
        step = functools.partial(_supervised_step, model, optimizer, num_classes=num_classes, inputs=inputs,
                                 autocast=autocast, scaler=scaler, check_values=False)
    mode = "reduce-overhead" if config.compile_step == "cuda_graphs" else None
    return torch.compile(lambda images, labels: step(images=images, labels=labels), backend=_COMPILE_BACKEND,
                         mode=mode, dynamic=False)


def _adam(model, config: TrainConfig, fused: bool, tensor_lr: bool) -> torch.optim.Adam:
    """The run's Adam. ``fused``: one kernel for all parameters (fused=None keeps torch's default, foreach
    on CUDA). ``tensor_lr``: the learning rate as a tensor, so a compiled step sees each epoch's rate
    without compiling again (a Python float is a constant of the graph); torch accepts a tensor rate
    with fused or single-tensor Adam only."""
    lr = torch.tensor(config.lr, device=next(model.parameters()).device) if tensor_lr else config.lr
    options = {"fused": True} if fused else {"foreach": False} if tensor_lr else {}  # none: torch's default
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=config.weight_decay, **options)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)  # in place: the compiled step reads this very tensor
        else:
            group["lr"] = lr


def _load_optimizer(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a checkpoint's optimizer state but keep this run's implementation (fused or not, float or
    tensor learning rate): the saved state is the same whichever wrote it, and load_state_dict would
    otherwise take the writer's flags along with its hyper-parameters."""
    own = ("lr", "fused", "foreach", "capturable", "differentiable")
    groups = [{**saved, **{k: group[k] for k in own if k in group}}
              for saved, group in zip(state["param_groups"], optimizer.param_groups)]
    optimizer.load_state_dict({**state, "param_groups": groups})
