"""Why does SIKD work? The ablations of issue 13 as named variants of the SIKD student.

Each variant is a small dict of :class:`~sikd_utils.configuration.ExperimentConfig` overrides for the
SIKD student and its teacher, the question it answers, and the two methods it is compared with: its
*baseline* (the plain network it must beat; the backbone variants have their own) and a *reference*
(SIKD as published, for the variants that change one thing of SIKD's recipe).

Trained networks are shared wherever the settings that define them are identical: :func:`role_config`
resets the settings a role ignores (a teacher does not know λ, a baseline has no teacher), so the λ,
layer and method variants reuse SIKD's teacher and all U-Net variants reuse one baseline — the run
folders are keyed by ``run_key``, and equal settings mean one folder. ``python -m sikd_utils ablate``
(:mod:`sikd_utils.ablate`) runs them; :mod:`sikd_utils.why` turns the results into notebook 07.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

from .configuration import ExperimentConfig

__all__ = ["Variant", "VARIANTS", "BASELINES", "QUESTIONS", "check_variants", "methods_for", "not_gathered", "units",
           "role_config", "student_role", "compared_with", "SWIN_WIDTH", "SWIN_TEACHER_LR"]

#: The width of SwinUNETR, a multiple of 12 (MONAI's attention heads). 24 is MONAI's default and, with 6.3 M
#: parameters, the multiple of 12 closest in size to the base-32 U-Net of the gpu preset (8.6 M; 36 has 14.2 M).
SWIN_WIDTH = 24
#: The Adam learning rate of the skip-free SwinUNETR teacher in variant ``swin_unetr_lr3e-4``. At the U-Net's
#: 1e-3 four of five fundus teachers never left background (validation Dice 0.0 for 80 epochs); in the probe of
#: ``scripts/swin_teacher_lr_probe.sh`` (``book/results/ablations/swin_teacher_lr_probe.txt``: 20 epochs, seeds
#: 1 and 2, which had failed) 1e-3 stayed at 0.00 on both, 3e-4 reached 0.875 and 0.879, 1e-4 0.863 and 0.421.
SWIN_TEACHER_LR = 3e-4

#: The plain networks the variants are compared with (``method -> ExperimentConfig overrides``).
BASELINES: dict[str, dict] = {
    "baseline": {},
    "baseline_swin_unetr": {"backbone": "swin_unetr", "base_channels": SWIN_WIDTH},
    "baseline_basic_unet": {"backbone": "basic_unet"},
}

#: the questions of issue 13, in the order notebook 07 answers them
QUESTIONS: dict[str, str] = {
    "reference": "Does SIKD beat its baseline in these runs?",
    "skips": "Does the teacher need to be skip-free?",
    "lambda": "How much does the weight λ matter?",
    "layer": "Which layer should be distilled?",
    "teacher_input": "Intensity or shape: what should the teacher see?",
    "method": "Feature, logit or attention distillation?",
    "backbone": "Does SIKD carry over to other backbones?",
}


@dataclass(frozen=True)
class Variant:
    """One ablation: ``overrides`` of the student's (and its teacher's) settings and what it asks.

    ``roles`` are the teacher and student roles trained (``("raw_teacher", "control")`` is the evidence
    run's control); ``reference`` is the method it is compared with besides ``baseline`` (None: only the
    baseline); ``answers`` phrases the conclusion for each outcome against that comparison (see
    :mod:`sikd_utils.why`).
    """

    name: str
    question: str
    what: str
    overrides: dict = field(default_factory=dict)
    baseline: str = "baseline"
    reference: str | None = "sikd"
    roles: tuple[str, str] = ("teacher", "student")
    answers: dict = field(default_factory=dict)


def _lambda(value: float) -> Variant:
    return Variant(f"lambda_{value:g}", "lambda", f"λ = {value:g} instead of 2", {"distill_weight": float(value)},
                   answers={"better": f"λ = {value:g} beats the paper's λ = 2",
                            "worse": f"λ = {value:g} is worse than the paper's λ = 2",
                            "tie": f"λ = {value:g} and λ = 2 are not detectably different"})


_VARIANTS = (
    Variant("sikd", "reference", "SIKD as published: a skip-free teacher on class-wise mean images, λ = 2, "
            "feature MSE on the last decoder block", reference=None,
            answers={"better": "SIKD beats the baseline", "worse": "SIKD is worse than the baseline",
                     "tie": "SIKD and the baseline are not detectably different"}),
    Variant("teacher_skips", "skips", "the teacher keeps its skip connections", {"teacher_skips": True},
            answers={"worse": "removing the teacher's skips matters: a teacher with skips helps less",
                     "better": "a teacher with skips does better: skip-freeness is not what helps",
                     "tie": "no detectable difference: the skips are not what decides"}),
    _lambda(0.5), _lambda(1), _lambda(4),
    Variant("bottleneck", "layer", "distil the bottleneck instead of the last decoder block",
            {"distill_layer": "bottleneck"},
            answers={"worse": "the last decoder block is the better layer to distil",
                     "better": "distilling the bottleneck does better than the last decoder block",
                     "tie": "the layer makes no detectable difference"}),
    Variant("teacher_onehot", "teacher_input", "the teacher sees one-hot label maps (shape, no intensity)",
            {"teacher_input": "label_onehot"},
            answers={"worse": "the mean image's intensities add to the shape: one-hot labels help less",
                     "better": "shape alone does better: one-hot labels beat the class-wise mean image",
                     "tie": "shape alone does as well: the intensities add nothing detectable"}),
    Variant("teacher_raw", "teacher_input", "the teacher sees raw images (the evidence run's control: "
            "no shape prior)", roles=("raw_teacher", "control"),
            answers={"worse": "the shape prior matters: a teacher on raw images helps less",
                     "better": "a teacher on raw images does better: the mean image is not what helps",
                     "tie": "a teacher on raw images does as well: the mean image adds nothing detectable"}),
    Variant("logit_kd", "method", "Hinton-style KD on the logits (T = 4) instead of feature MSE",
            {"distill_method": "logit_kd"},
            answers={"worse": "feature MSE beats logit KD", "better": "logit KD beats feature MSE",
                     "tie": "logit KD and feature MSE are not detectably different"}),
    Variant("attention_transfer", "method", "attention transfer (normalised activation maps) instead of "
            "feature MSE", {"distill_method": "attention_transfer"},
            answers={"worse": "feature MSE beats attention transfer", "better": "attention transfer beats feature MSE",
                     "tie": "attention transfer and feature MSE are not detectably different"}),
    Variant("swin_unetr", "backbone", f"SIKD on MONAI's SwinUNETR (width {SWIN_WIDTH})",
            BASELINES["baseline_swin_unetr"], baseline="baseline_swin_unetr", reference=None,
            answers={"better": "SIKD helps SwinUNETR too", "worse": "SIKD hurts SwinUNETR",
                     "tie": "SIKD makes no detectable difference to SwinUNETR"}),
    Variant("swin_unetr_lr3e-4", "backbone", f"SIKD on SwinUNETR (width {SWIN_WIDTH}), its skip-free teacher "
            f"at Adam lr {SWIN_TEACHER_LR:g} (student and baseline at {ExperimentConfig.lr:g})",
            {**BASELINES["baseline_swin_unetr"], "teacher_lr": SWIN_TEACHER_LR},
            baseline="baseline_swin_unetr", reference=None,
            answers={"better": f"SIKD helps SwinUNETR when its teacher trains at lr {SWIN_TEACHER_LR:g}",
                     "worse": f"SIKD with its teacher at lr {SWIN_TEACHER_LR:g} hurts SwinUNETR",
                     "tie": f"SIKD with its teacher at lr {SWIN_TEACHER_LR:g} makes no detectable difference "
                            "to SwinUNETR"}),
    Variant("swin_unetr_projected", "backbone", "as swin_unetr_lr3e-4, its teacher's decoder blocks with the "
            "student's 1×1 residual projections (bounded features, see sikd_utils.feature_scale)",
            {**BASELINES["baseline_swin_unetr"], "teacher_lr": SWIN_TEACHER_LR, "teacher_residual_projection": True},
            baseline="baseline_swin_unetr", reference=None,
            answers={"better": "SIKD helps SwinUNETR once its teacher's features are bounded like its student's",
                     "worse": "SIKD with its teacher's features bounded like its student's hurts SwinUNETR",
                     "tie": "SIKD with a teacher bounded like its student makes no detectable difference to "
                            "SwinUNETR"}),
    Variant("basic_unet", "backbone", "SIKD on MONAI's BasicUNet", BASELINES["baseline_basic_unet"],
            baseline="baseline_basic_unet", reference=None,
            answers={"better": "SIKD helps BasicUNet too", "worse": "SIKD hurts BasicUNet",
                     "tie": "SIKD makes no detectable difference to BasicUNet"}),
)
#: every variant by name, in the order of the questions
VARIANTS: dict[str, Variant] = {v.name: v for v in _VARIANTS}
# settings a role ignores, reset so that equal networks share one run folder
_STUDENT_ONLY = ("distill_weight", "distill_method", "kd_temperature", "distill_layer")
_TEACHER_ONLY = ("teacher_input", "teacher_skips", "teacher_lr", "teacher_residual_projection")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ExperimentConfig)}


def check_variants(names: Sequence[str] | None) -> tuple[str, ...]:
    """The variant names (all of them for None); an unknown name is a ValueError naming the valid ones."""
    if names is None:
        return tuple(VARIANTS)
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ValueError(f"unknown ablation variant(s) {unknown or list(names)}; choose from {list(VARIANTS)}")
    return tuple(dict.fromkeys(names))


def methods_for(variants: Sequence[str] | None) -> list[str]:
    """Every method to train and test for ``variants``: those, SIKD (the reference) and their baselines."""
    chosen = set(check_variants(variants)) | {"sikd"}
    baselines = {VARIANTS[v].baseline for v in chosen}
    return [b for b in BASELINES if b in baselines] + [v for v in VARIANTS if v in chosen]


def not_gathered(entry: dict) -> tuple[list[str], list[int]]:
    """``(methods, seeds)`` of the full ablation that a task's gathered provenance ``entry`` lacks (both empty:
    it is complete). ``ablate --variants`` or ``--seeds`` gathers a task as soon as the chosen part finishes, so a
    gathered file alone does not mean the task is done (a two-seed gather once listed every method). An entry of
    a preset this package does not define is a ValueError: its seeds cannot be checked."""
    from .presets import preset_settings

    try:
        wanted = preset_settings(entry.get("preset", "gpu"))["seeds"]
    except ValueError as error:
        raise ValueError(f"the provenance entry: {error}; which seeds it needs is unknown") from error
    methods = [m for m in methods_for(None) if m not in entry.get("methods", {})]
    seeds = [s for s in wanted if s not in set(entry.get("seeds", ()))]
    return methods, seeds


def compared_with(method: str) -> tuple[str | None, str | None]:
    """``(baseline, reference)`` of a method (a baseline has neither)."""
    if method in BASELINES:
        return None, None
    variant = VARIANTS[check_variants([method])[0]]
    return variant.baseline, variant.reference


def student_role(method: str) -> str:
    """The role whose network is tested as ``method``."""
    return "baseline" if method in BASELINES else VARIANTS[method].roles[1]


def units(method: str) -> list[tuple[str, dict]]:
    """``(role, overrides)`` to train for ``method``, in dependency order (teacher before student)."""
    if method in BASELINES:
        return [("baseline", BASELINES[method])]
    variant = VARIANTS[check_variants([method])[0]]
    return [(role, variant.overrides) for role in variant.roles]


def role_config(config: ExperimentConfig, role: str, overrides: dict) -> ExperimentConfig:
    """``config`` with ``overrides``, the settings ``role`` ignores reset to their defaults.

    A teacher ignores how it is distilled (λ, method, layer), a baseline also what a teacher would see:
    so every variant that differs only there trains the same networks into the same run folder.
    """
    reset = () if role in ("student", "control") else _STUDENT_ONLY
    if role == "baseline":
        reset += _TEACHER_ONLY
    return dataclasses.replace(config, **{**overrides, **{k: _DEFAULTS[k] for k in reset}})
