"""Shift benchmark: named appearance and shape shifts, severities 0-5, for every task.

SIKD's claim is robustness to a change of device. Which *kind* of change it protects against is the
open question, so this registry names them one cause at a time, in the spirit of ImageNet-C and
ROOD-MRI (a corruption × five severities), on top of the synthetic suite:

* **device** families move one group of the generator's own appearance parameters (what another
  scanner, camera or probe changes: contrast curve, noise, blur, bias field, colour balance, …), so
  the change happens where the physics puts it, before noise and normalisation;
* **corruption** families are applied to the clean image, then the image is normalised again exactly as
  real data is (artefacts: Gibbs ringing, k-space spikes, motion ghosts, compression, haze, rings, …);
* **shape** families move the anatomy (a different patient population); they change the label.

``"target"`` is each task's realistic "new device" mixture, i.e. all device families together (it is
the ``target`` domain of :func:`sikd_utils.data.synthetic.make_cases`, rendered on the benchmark's
cases). Several appearance families joined by ``+`` are applied together at the same severity.

Every family and severity renders the *same* cases (same anatomy, same noise draws): severity 0 is the
clean source test set, identical whatever the family, and level ``s`` of a device or shape family moves
its parameters by ``s / 2`` units of the synthetic suite's severity (level 2 = ``target`` severity 1,
level 4 = severity 2).
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from functools import reduce
from typing import Callable

import numpy as np
from scipy import ndimage

from .case import Case
from .synthetic import render_cases, task_module
from .synthetic.core import _check_int
from .synthetic.difficulty import check_difficulty
from .tasks import TASKS, get_task

__all__ = ["ShiftFamily", "SEVERITIES", "TEST_INDEX_OFFSET", "shift_families", "shift_cases",
           "benchmark_families", "parse_family"]

SEVERITIES = (0, 1, 2, 3, 4, 5)
TEST_INDEX_OFFSET = 10_000  # benchmark cases are source cases 10000, 10001, ...: never a training case
LEVEL_UNITS = 0.5  # synthetic-suite severity per benchmark level for device and shape families
CLEAN, TARGET = "clean", "target"


@dataclass(frozen=True)
class ShiftFamily:
    """One named shift: what kind it is, the real-world cause it models, and how it is produced."""

    name: str
    kind: str  # "appearance" or "shape"
    description: str
    group: str  # contrast, noise, blur, field, artefact, colour, anatomy, mixture
    parameters: tuple[str, ...] = ()  # generator parameters moved (device and shape families)
    corruption: Callable | None = field(default=None, repr=False)  # (image, label, spacing, rng, level) -> image

    @property
    def mechanism(self) -> str:
        if self.kind == "shape":
            return "anatomy"
        return "device" if self.parameters else "corruption"


# ---------------------------------------------------------------------------------------------
# corruptions: functions of (image in [0, 1], label, spacing, rng, level 1..5) -> image
# ---------------------------------------------------------------------------------------------


def _per_slice(fn, image: np.ndarray) -> np.ndarray:
    """Apply a 2D function of a (C, H, W) array to every slice of (C, H, W, D) (2D acquisitions)."""
    if image.ndim == 3:
        return fn(image)
    return np.stack([fn(image[..., k]) for k in range(image.shape[-1])], axis=-1)


def _class_contrast(image, label, spacing, rng, level):
    # Another sequence / phase / gain setting brings tissue classes closer together: every pixel moves
    # toward the image mean by a fraction of its class's offset. Ordering of class means is kept.
    a = 0.13 * level
    flat_label = label.reshape(-1)
    counts = np.maximum(np.bincount(flat_label), 1)
    out = np.empty_like(image)
    for ch in range(image.shape[0]):
        x = image[ch].reshape(-1)
        class_means = np.bincount(flat_label, weights=x) / counts
        out[ch] = (x - a * (class_means[flat_label] - x.mean())).reshape(image.shape[1:])
    return out


@contextlib.contextmanager
def _one_torch_thread():
    # MONAI's k-space transforms run small FFTs through torch; on a busy 2-core machine extra threads
    # make them 5-7x slower, so they run on one thread and the setting is restored after.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _slices_as_channels(fn, image: np.ndarray) -> np.ndarray:
    """Apply ``fn`` to a (N, H, W) stack holding every channel of every slice (one batched 2D call)."""
    with _one_torch_thread():
        if image.ndim == 3:
            return np.asarray(fn(image), dtype=np.float32)
        c, h, w, d = image.shape
        stack = np.ascontiguousarray(np.moveaxis(image, -1, 1).reshape(c * d, h, w))
        out = np.asarray(fn(stack), dtype=np.float32).reshape(c, d, h, w)
    return np.moveaxis(out, 1, -1)


def _gibbs(image, label, spacing, rng, level):
    from monai.transforms import GibbsNoise

    alpha = (0.0, 0.45, 0.55, 0.65, 0.75, 0.85)[level]  # fraction of k-space truncated
    return _slices_as_channels(GibbsNoise(alpha=alpha), image)


def _spike(image, label, spacing, rng, level):
    from monai.transforms import KSpaceSpikeNoise

    h, w = image.shape[1], image.shape[2]
    dy, dx = rng.integers(3, max(4, h // 5)), rng.integers(3, max(4, w // 5))
    loc = (h // 2 + int(dy), w // 2 + int(dx))

    def spike(stack):
        k_max = np.log(np.abs(np.fft.fft2(stack[0])).max() + 1e-6)
        return KSpaceSpikeNoise(loc=loc, k_intensity=float(k_max - 3.2 + 0.55 * level))(stack)

    return _slices_as_channels(spike, image)


def _ghosting(image, label, spacing, rng, level):
    # Periodic motion (breathing, heartbeat) modulates every other phase-encoding line: a copy of the
    # anatomy appears shifted by half the field of view.
    a = 0.16 * level

    def one(s):
        k = np.fft.fft2(s, axes=(1, 2))
        k[:, 1::2, :] *= 1.0 - a
        return np.real(np.fft.ifft2(k, axes=(1, 2)))

    return _per_slice(one, image)


def _low_resolution(image, label, spacing, rng, level):
    # A coarser acquisition matrix or a lower-resolution sensor, interpolated back to the grid.
    factor = (1.0, 1.6, 2.0, 2.5, 3.2, 4.0)[level]

    def one(s):
        small = ndimage.zoom(s, (1, 1 / factor, 1 / factor), order=1, grid_mode=True, mode="nearest")
        back = ndimage.zoom(small, (1, s.shape[1] / small.shape[1], s.shape[2] / small.shape[2]), order=1,
                            grid_mode=True, mode="nearest")
        return back[:, : s.shape[1], : s.shape[2]]

    return _per_slice(one, image)


def _display_gamma(image, label, spacing, rng, level):
    from monai.transforms import AdjustContrast

    gamma = 1.0 + 0.3 * level
    with _one_torch_thread():
        return np.asarray(AdjustContrast(gamma=gamma)(np.clip(image, 0, 1)), dtype=np.float32)


def _rings(image, label, spacing, rng, level):
    # A miscalibrated detector element traces concentric rings around the rotation centre.
    h, w = image.shape[1], image.shape[2]
    y, x = np.mgrid[0:h, 0:w]
    r = np.hypot(y - (h - 1) / 2, x - (w - 1) / 2) * float(spacing[0])  # mm
    period = 12.0 + 6.0 * rng.uniform()
    rings = np.cos(2 * np.pi * r / period) * np.exp(-r / 150.0)
    rings = rings.astype(np.float32)[None]
    if image.ndim == 4:
        rings = rings[..., None]
    return image + 0.045 * level * rings


def _jpeg(image, label, spacing, rng, level):
    from PIL import Image

    quality = (95, 55, 35, 22, 14, 8)[level]

    def one(s):
        arr = np.clip(s * 255 + 0.5, 0, 255).astype(np.uint8)
        pil = Image.fromarray(arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1))
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255.0
        return out[None] if out.ndim == 2 else np.moveaxis(out, -1, 0)

    return _per_slice(one, image)


def _haze(image, label, spacing, rng, level):
    # Media opacity (cataract) or a fogged lens: a bright, blurred veil over a lower-contrast image.
    a = 0.14 * level
    sigma = image.shape[1] / 12
    veil = ndimage.gaussian_filter(image, (0, sigma, sigma)) * 0.5 + 0.5
    return (1 - a) * image + a * veil


def _motion_blur(image, label, spacing, rng, level):
    # The scope moves during the exposure: a straight blur along one direction.
    length = (1, 3, 5, 7, 10, 14)[level] * image.shape[1] / 128
    angle = rng.uniform(0, np.pi)
    n = max(3, int(math.ceil(length)) | 1)
    t = np.linspace(-0.5, 0.5, 4 * n) * length
    kernel = np.zeros((n, n), np.float32)
    c = (n - 1) / 2
    np.add.at(kernel, (np.clip(np.round(c + t * math.sin(angle)).astype(int), 0, n - 1),
                       np.clip(np.round(c + t * math.cos(angle)).astype(int), 0, n - 1)), 1.0)
    kernel /= kernel.sum()
    return np.stack([ndimage.convolve(ch, kernel, mode="nearest") for ch in image])


# ---------------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------------


def _device(name, group, parameters, description):
    return ShiftFamily(name, "appearance", description, group, tuple(parameters))


def _corrupt(name, group, fn, description):
    return ShiftFamily(name, "appearance", description, group, (), fn)


def _shape(name, parameters, description):
    return ShiftFamily(name, "shape", description, "anatomy", tuple(parameters))


_CLASS_CONTRAST = "tissue classes closer in intensity (another sequence, phase or gain), their order kept"
_REGISTRY: dict[str, tuple[ShiftFamily, ...]] = {
    "cardiac": (
        _device("contrast_curve", "contrast", ["gamma"],
                "another bSSFP sequence setting: a different tissue contrast curve (dark tissues pressed together)"),
        _device("coil_bias", "field", ["bias"], "another receive coil: a stronger smooth multiplicative bias field"),
        _device("rician_noise", "noise", ["noise"], "lower SNR (field strength, faster acquisition): more Rician noise"),
        _device("resolution", "blur", ["blur_mm"], "a coarser acquisition matrix: a wider point-spread function"),
        _corrupt("gibbs", "artefact", _gibbs, "truncated k-space: Gibbs ringing along sharp edges"),
        _corrupt("kspace_spike", "artefact", _spike, "a spike in k-space (RF interference): a stripe pattern over the image"),
        _corrupt("ghosting", "artefact", _ghosting, "periodic motion (breathing): a ghost shifted by half the field of view"),
        _corrupt("class_contrast", "contrast", _class_contrast, _CLASS_CONTRAST),
        _shape("hypertrophy", ["myo_thickness_mm", "lv_radius_mm"],
               "hypertrophic cardiomyopathy: thicker myocardium, smaller LV cavity"),
        _shape("rv_enlargement", ["rv_scale", "lv_ellipticity"],
               "right-heart overload: a larger RV and a more elliptical LV"),
    ),
    "abdomen": (
        _device("contrast_phase", "contrast", ["enhancement"],
                "another contrast phase or tube voltage: weaker iodine enhancement of the organs"),
        _device("dose", "noise", ["noise_hu"], "a lower dose: more quantum noise"),
        _device("kernel", "blur", ["noise_grain_mm", "blur_mm"],
                "a softer reconstruction kernel: blurrier edges and blotchier, correlated noise"),
        _device("beam_hardening", "field", ["cupping_hu"], "beam hardening: a cupping artefact, the body centre darker"),
        _corrupt("rings", "artefact", _rings, "a miscalibrated detector element: concentric ring artefacts"),
        _corrupt("display_gamma", "contrast", _display_gamma, "another display curve (window/level and gamma)"),
        _corrupt("low_resolution", "blur", _low_resolution, "a larger reconstruction pixel, interpolated back"),
        _corrupt("class_contrast", "contrast", _class_contrast, _CLASS_CONTRAST),
        _shape("organomegaly", ["liver_scale", "spleen_scale", "gallbladder_scale", "fat_mm"],
               "portal hypertension: enlarged liver and spleen, distended gallbladder, more abdominal fat"),
        _shape("organ_atrophy", ["kidney_scale", "pancreas_scale"], "smaller kidneys and a thinner pancreas"),
    ),
    "fundus": (
        _device("colour_balance", "colour", ["gain_r", "gain_g", "gain_b"],
                "another camera sensor: less red, more green and blue"),
        _device("tone_curve", "contrast", ["gamma"], "another tone curve (gamma) of the camera"),
        _device("illumination", "field", ["vignetting", "uneven"], "stronger vignetting and uneven flash illumination"),
        _device("defocus", "blur", ["blur_px"], "a camera slightly out of focus: softer edges everywhere"),
        _device("sensor_noise", "noise", ["noise"], "a noisier sensor (higher ISO)"),
        _corrupt("jpeg", "artefact", _jpeg, "stronger JPEG compression when the image is stored or shared"),
        _corrupt("haze", "contrast", _haze, "media opacity (cataract): a bright blurred veil, lower contrast"),
        _corrupt("low_resolution", "blur", _low_resolution, "a lower-resolution camera, interpolated back"),
        _corrupt("class_contrast", "contrast", _class_contrast, _CLASS_CONTRAST),
        _shape("cupping", ["cup_disc_ratio"], "glaucomatous cupping: a larger cup-to-disc ratio"),
        _shape("disc_size", ["disc_diameter", "disc_aspect"], "larger, more oval optic discs (another population)"),
    ),
    "polyp": (
        _device("white_balance", "colour", ["gain_r", "gain_g", "gain_b"], "another video processor: a warmer white balance"),
        _device("tone_curve", "contrast", ["gamma"], "another tone curve of the video processor"),
        _device("light_falloff", "field", ["light_falloff", "vignetting"],
                "a weaker light source: faster fall-off with depth, stronger vignetting"),
        _device("blur", "blur", ["blur_px"], "an older, lower-resolution endoscope: blur"),
        _device("sensor_noise", "noise", ["noise"], "a noisier sensor"),
        _corrupt("jpeg", "artefact", _jpeg, "video compression artefacts (blocking)"),
        _corrupt("motion_blur", "blur", _motion_blur, "the scope moving during the exposure: directional blur"),
        _corrupt("class_contrast", "contrast", _class_contrast, _CLASS_CONTRAST),
        _shape("small_flat_polyps", ["polyp_radius", "polyp_aspect", "lobulation"],
               "smaller, flatter, more irregular polyps (a screening population)"),
        _shape("multiple_polyps", ["second_polyp"], "a second polyp in a growing share of frames"),
    ),
    "breast_us": (
        _device("transducer_frequency", "blur", ["speckle_scale"], "a lower-frequency transducer: larger speckle"),
        _device("grey_map", "contrast", ["grey_map"], "another grey map (display curve after log compression)"),
        _device("tgc", "field", ["tgc_tilt_db"], "another time-gain-compensation setting: brightness tilts with depth"),
        _device("electronic_noise", "noise", ["noise_floor"], "more electronic noise"),
        _device("speckle_reduction", "blur", ["smoothing_px"], "a stronger speckle-reduction filter"),
        _corrupt("jpeg", "artefact", _jpeg, "JPEG compression of exported frames"),
        _corrupt("low_resolution", "blur", _low_resolution, "a lower line density, interpolated back"),
        _corrupt("class_contrast", "contrast", _class_contrast, _CLASS_CONTRAST),
        _shape("lesion_size", ["lesion_width"], "larger lesions (a symptomatic, later-stage population)"),
        _shape("malignant_morphology", ["aspect_add", "irregularity", "malignant_prob"],
               "more malignant-like lesions: taller than wide, irregular, spiculated"),
    ),
}


def _target_family(task: str) -> ShiftFamily:
    devices = [f for f in _REGISTRY[task] if f.mechanism == "device"]
    params = tuple(p for f in devices for p in f.parameters)
    return ShiftFamily(TARGET, "appearance", task_module(task).DESCRIPTIONS["target"], "mixture", params)


def shift_families(task: str) -> dict[str, ShiftFamily]:
    """The named shift families of ``task`` (appearance and shape), plus ``"target"``, by name."""
    spec = get_task(task)
    families = {f.name: f for f in _REGISTRY[spec.key]}
    families[TARGET] = _target_family(spec.key)
    return families


def benchmark_families(task: str) -> list[str]:
    """What the benchmark reports for ``task``: every single family, fixed pairs and triples, ``all``.

    Pairs and triples take the first family of fixed groups (contrast + noise, blur + noise, field +
    contrast; contrast + blur + noise, field + contrast + noise), so every task gets the same recipe.
    ``"all"`` is every appearance family together (the device families and every corruption).
    """
    families = shift_families(task)
    singles = [name for name in families]
    by_group: dict[str, str] = {}
    for f in _REGISTRY[get_task(task).key]:
        by_group.setdefault(f.group, f.name)
    combos = []
    for groups in (("contrast", "noise"), ("blur", "noise"), ("field", "contrast"),
                   ("contrast", "blur", "noise"), ("field", "contrast", "noise")):
        if all(g in by_group for g in groups):
            combos.append("+".join(by_group[g] for g in groups))
    return singles + combos + ["all"]


def parse_family(task: str, family: str) -> list[ShiftFamily]:
    """The registry families that ``family`` names (``"a+b"``, ``"all"``); a clear error otherwise."""
    families = shift_families(task)
    if not isinstance(family, str) or not family:
        raise ValueError(f"family must be a non-empty string, got {family!r}")
    if family == CLEAN:
        return []
    if family == "all":
        return [f for f in _REGISTRY[get_task(task).key] if f.kind == "appearance"]
    names = family.split("+")
    unknown = [n for n in names if n not in families]
    if unknown:
        raise ValueError(f"unknown shift family {unknown[0]!r} for task {task!r}; choose one of "
                         f"{[CLEAN, 'all', *families]} or appearance families joined by '+'")
    chosen = [families[n] for n in names]
    if len(chosen) > 1:
        shapes = [f.name for f in chosen if f.kind == "shape"]
        if shapes:
            raise ValueError(f"only appearance families can be combined with '+'; {shapes[0]!r} is a shape family")
        if len(set(names)) != len(names):
            raise ValueError(f"family {family!r} names a family twice")
    return chosen


def shift_cases(task: str, family: str, severity: int, n_cases: int, image_size: int, seed: int = 0,
                difficulty: int = 0) -> list[Case]:
    """The benchmark's test cases of ``task`` under ``family`` at ``severity`` (0 = clean, 1..5).

    The same ``n_cases`` source cases for every family and severity; ``Case.domain`` is the family
    name (``"clean"`` at severity 0) and ``Case.meta`` records family and severity. ``difficulty`` is
    the synthetic suite's level (0 = the original phantoms): the shifts act on the harder cases.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    chosen = parse_family(task, family)
    severity = _check_int("severity", severity, 0, SEVERITIES[-1])
    n_cases = _check_int("n_cases", n_cases, 0)
    image_size = _check_int("image_size", image_size, 32)
    seed = _check_int("seed", seed, 0)
    difficulty = check_difficulty(difficulty)
    if family == CLEAN and severity != 0:
        raise ValueError(f"family 'clean' has severity 0 only, got {severity}")
    indices = range(TEST_INDEX_OFFSET, TEST_INDEX_OFFSET + n_cases)
    if severity == 0 or not chosen:
        return render_cases(task, "source", indices, image_size, seed, name=CLEAN,
                            meta={"family": CLEAN, "severity": 0}, difficulty=difficulty)
    units = severity * LEVEL_UNITS
    shape = {p: units for f in chosen if f.kind == "shape" for p in f.parameters}
    appearance = {p: units for f in chosen if f.kind == "appearance" for p in f.parameters}
    corruptions = [f.corruption for f in chosen if f.corruption is not None]
    transform = None
    if corruptions:
        def transform(image, label, spacing, rng):
            return reduce(lambda img, fn: fn(img, label, spacing, rng, severity), corruptions, image)
    return render_cases(task, "source", indices, image_size, seed, shape_severity=shape,
                        appearance_severity=appearance, transform=transform, name=family,
                        meta={"family": family, "severity": severity}, difficulty=difficulty)
