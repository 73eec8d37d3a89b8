"""Synthetic suite: procedural phantoms for the five SIKD tasks, with controllable domain shifts.

No real dataset can be downloaded where this book is built, so every notebook runs by default on
these phantoms. They are made to carry what SIKD is about: each case has an anatomy (a label map
whose shapes vary from case to case) and an appearance (how a particular scanner, camera or probe
turns that anatomy into pixels). Domains change one of the two and leave the other alone.

Public entry point::

    make_cases(task, domain="source", n_cases=20, image_size=128, seed=0, severity=1.0) -> list[Case]

Domains
-------
``source``
    The training distribution. Anatomy and appearance are both drawn at random around a default, so
    that no two cases look the same (mild scanner-to-scanner and patient-to-patient variability).
``target``
    The same anatomy distribution rendered by a different device: the appearance parameters move
    away from the source range by ``severity`` times a fixed step, while every change is monotone
    in tissue signal, so the *ordering* of class mean intensities stays. This is the shift SIKD's
    shape-intensity prior is meant to survive (a new scanner vendor, a new camera, a new probe).
``shape_shift``
    Source appearance, but the anatomy distribution moves by ``severity`` times a fixed step (a
    different patient population). A shape prior learnt on the source is not expected to help here
    (it may even hurt); the book uses this domain as the honest control.

``severity`` is a float >= 0. 0 means no shift at all (the domain is then statistically the same as
the source, only with other random cases); 1 is the default shift, clearly outside the source's own
spread; about 2 is severe. Severity scales each shifted parameter linearly (in log units for scale
parameters), and the random numbers that drive a case do not depend on it: ``target`` cases at
severities 0, 1 and 2 share their anatomy and their noise, and differ only by the shift (likewise
``shape_shift`` cases share their appearance). ``source`` ignores severity (it is only recorded).

What each task models, and why
------------------------------
``cardiac`` -- short-axis cine MRI (bSSFP), volumes (1, H, W, D), D = 6..12 slices 7-10 mm apart,
    field of view about 190-220 mm (so about 1.6 mm pixels at 128 px). A base-to-apex stack: a left
    ventricle whose bright blood pool narrows toward the apex (the last slices hold only the apical
    myocardial cap), a dark myocardial ring, a right-ventricular crescent that ends before the apex,
    papillary muscles inside the LV cavity (labelled LV, as in ACDC), epicardial fat, lungs, chest
    wall fat and muscle, spine, descending aorta and, in apical slices, the liver. Cases differ in
    size, cardiac phase (between end-diastole and end-systole), position, orientation and slice count.
    *target*: another vendor/site. MRI intensities have no absolute scale and depend on sequence
    settings, so the tissue contrast curve changes (a power law on tissue signal: the dark tissues --
    myocardium, muscle, lung -- are pressed together while blood and fat stay bright); the
    receive-coil sensitivity gives a stronger smooth multiplicative bias field; lower SNR gives more
    Rician noise; a coarser acquisition matrix gives more blur.
    *shape_shift*: a hypertrophic population -- thicker myocardium, smaller LV cavity, larger and
    rounder-shaped RV, more elliptical LV.
``abdomen`` -- contrast-enhanced abdominal CT at the portal-venous phase, volumes (1, H, W, D),
    D = 6..12 slices of 3-5 mm, field of view about 310-360 mm (so about 2.6 mm pixels at 128 px,
    0.65 mm at 512 px).
    A slab around the level of the pancreas, where all eight organs can show: liver, gallbladder,
    stomach (with wall, contents and sometimes an air pocket), pancreas, spleen, both kidneys
    (cortex, medulla, hilum), aorta, plus IVC, vertebra, ribs, muscles, subcutaneous and visceral fat
    and bowel loops. Organs grow, shrink, appear and disappear from slice to slice. Intensities are
    produced in Hounsfield units (a base value plus an iodine-enhancement term), clipped to the
    [-125, 275] HU window of the TransUNet protocol, then percentile-normalised.
    *target*: another scanner and protocol. CT numbers are calibrated, so the shift is in what the
    calibration does not fix: a later contrast phase or a different tube voltage scales the iodine
    enhancement (all enhanced organs move toward soft tissue but keep their order); a lower dose and
    another reconstruction kernel give stronger, blotchier (more correlated) noise and a softer
    point-spread function; beam hardening adds a cupping artefact (the centre of the body darker).
    *shape_shift*: a portal-hypertension-like population -- enlarged liver and spleen, distended
    gallbladder, smaller kidneys, thinner pancreas, more abdominal fat.
``fundus`` -- colour fundus photograph (3, H, W). Circular field of view on black, orange-red
    retina with choroidal mottling, a darker macula with a foveal reflex, an optic disc (label 1 =
    neuroretinal rim) holding a paler cup (label 2) with a soft sloping edge, sometimes a
    peripapillary atrophy crescent, and vessel trees (arcades curving around the macula, nasal
    branches) radiating from the disc. Left or right eye at random.
    *target*: another fundus camera. The sensor's colour balance changes (a per-channel gain:
    less red, more green and blue), so does its tone curve (gamma), vignetting and uneven
    illumination grow, focus is softer and sensor noise stronger. Each effect is monotone per colour
    channel, so the per-channel ordering of class means survives.
    *shape_shift*: a glaucoma-like population -- larger cup-to-disc ratio, larger and more oval discs.
``polyp`` -- colonoscopy frame (3, H, W). Pink mucosa with a fine vessel network, haustral folds
    arranged around a dark lumen (light from the scope tip falls off with depth), one polyp -- a
    lobulated dome nearer to the camera, hence brighter, shaded at its edges, with a pit-pattern
    texture -- specular highlights on wet surfaces, and often the black octagonal corners of the
    endoscope video frame.
    *target*: another endoscope and video processor: white balance (a warmer, more orange-yellow
    cast), tone curve, stronger light fall-off and vignetting, blur (older, lower-resolution video)
    and sensor noise.
    *shape_shift*: smaller, flatter, more irregular polyps, and a second polyp in a growing share of
    frames.
``breast_us`` -- B-mode breast ultrasound from a linear probe (1, H, W), rectangular frame, about
    0.3 mm pixels at 128 px. Layered anatomy (skin, subcutaneous fat with Cooper's ligaments,
    fibroglandular tissue with fat lobules, retromammary fat, pectoral muscle with striations,
    sometimes a rib with its shadow) and one hypoechoic lesion: benign-like (oval, smooth,
    wider-than-tall, posterior enhancement) or malignant-like (irregular, spiculated, echogenic halo,
    posterior acoustic shadowing). The image is simulated the way a scanner forms it: tissue
    reflectivity times fully developed speckle (complex Gaussian scatterers convolved with the
    point-spread function, envelope detected), depth attenuation with time-gain compensation,
    electronic noise, then log compression to a dynamic range.
    *target*: another scanner and transducer. A lower centre frequency gives larger speckle
    (wider PSF); another grey map (the display curve applied after log compression) changes the
    contrast between echo levels; a different TGC setting tilts brightness with depth; more
    electronic noise and a stronger speckle-reduction (smoothing) filter.
    *shape_shift*: larger, more irregular, taller-than-wide lesions and more malignant-like ones.

How large the gap is
--------------------
What a plain U-Net trained on ``source`` loses on each shifted test set, at the book's CPU defaults
(64 px, 8-channel U-Net, 20 epochs, 32/8/12/12 images or 6/3/6/6 volumes for train/validation/source
test/target test, 3 seeds; Dice averaged over foreground classes, mean over seeds). Measured on 2 CPU
cores on 2026-11-26 with::

    python -m sikd_utils gap --task all --severities 1 2 --summary-csv gap.csv

=========  ============  ========  ========  =============  ===================
task       source Dice   target@1  target@2  shape_shift@1  95 % CI of source
=========  ============  ========  ========  =============  ===================
cardiac    0.62          -0.07     -0.15     +0.00          ±0.21
abdomen    0.24          +0.01     -0.02     -0.01          ±0.17
fundus     0.43          -0.02     -0.22     -0.06          ±0.18
polyp      0.78          -0.00     -0.16     -0.25          ±0.17
breast_us  0.73          +0.00     -0.15     +0.01          ±0.09
=========  ============  ========  ========  =============  ===================

Columns after the first are Dice differences from the source test set. Read with the intervals in
mind: at this small scale three seeds vary by about ±0.1-0.2. Severity 1 costs little except on the
cardiac task; severity 2 costs 0.15-0.22 Dice on four tasks. The abdomen baseline barely learns at
this scale (it segments the liver and stomach, not the small organs), so its gap cannot show; the
``shape_shift`` control hurts the polyp and fundus models most. ``tests/test_domain_gap.py`` (``make
slow-test``) checks at a somewhat larger scale that every task loses Dice on its target domain once the
shift is strong.

Every case then goes through ``sikd_utils.data.preprocess.normalize_percentile`` (2nd-98th
percentile clip, rescale to [0, 1], over the whole volume and all channels), exactly like real data,
so a global gain or offset change is removed and only the shifts that matter remain.

Spacing is physical: in-plane spacing = field of view / ``image_size`` (each case draws its own field
of view), so HD95 in millimetres means the same thing at every image size. Colonoscopy frames have no
physical scale; their spacing is (1, 1), i.e. pixels.

Reproducibility: case ``i`` of a (task, domain, seed) is drawn from its own random streams, seeded
from (seed, task, domain, i), so it does not depend on ``n_cases`` (the first 20 cases are the same
whether 20 or 60 are asked for) and different domains never share an anatomy. Anatomy parameters are
expressed in millimetres or fractions of the field of view, so the same case at a different
``image_size`` shows the same anatomy. ``Case.meta`` records the seed, severity, index and the
anatomy and appearance parameters that were drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .case import Case
from .preprocess import normalize_percentile
from .tasks import get_task

__all__ = ["DOMAINS", "make_cases", "describe"]

DOMAINS: tuple[str, ...] = ("source", "target", "shape_shift")

_TASK_CODE = {"cardiac": 11, "abdomen": 12, "fundus": 13, "polyp": 14, "breast_us": 15}
_DOMAIN_CODE = {"source": 0, "target": 1, "shape_shift": 2}
_ANATOMY, _APPEARANCE, _NOISE = 0, 1, 2
_F = np.float32


# ----------------------------------------------------------------------------------------------
# parameters: a source distribution plus a shift per unit of severity
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    """One random parameter: ``value`` ± ``jitter`` (uniform) in the source, plus ``shift`` × severity.

    With ``log=True`` jitter and shift are in natural-log units (a multiplicative spread and shift).
    Exactly one random number is drawn whatever the severity, so severity never reshuffles a case.
    """

    value: float
    jitter: float = 0.0
    shift: float = 0.0
    log: bool = False
    lo: float = -math.inf
    hi: float = math.inf

    def draw(self, rng: np.random.Generator, severity: float) -> float:
        u = rng.uniform(-1.0, 1.0)
        if self.log:
            v = self.value * math.exp(self.jitter * u + self.shift * severity)
        else:
            v = self.value + self.jitter * u + self.shift * severity
        return float(min(max(v, self.lo), self.hi))


def _draw(specs: dict[str, _Param], rng: np.random.Generator, severity: float) -> dict[str, float]:
    return {name: p.draw(rng, severity) for name, p in specs.items()}


# ----------------------------------------------------------------------------------------------
# small vectorised drawing helpers
# ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _basis(n: int, cells: float) -> np.ndarray:
    """(n, m) matrix of Gaussian bumps centred on a grid ``n / cells`` pixels apart, rows of unit norm.

    Multiplying i.i.d. standard normal weights by it gives a smooth 1D random field with unit
    variance at every pixel; applied along each axis it gives the n-D field of :func:`_smooth_field`.
    """
    cells = max(float(cells), 1e-3)
    h = n / cells
    m = int(math.ceil(cells - 1e-6)) + 4  # from cells alone: the number of draws never depends on n
    centres = (np.arange(m) - 2.0) * h + (n - (m - 5) * h) / 2 - 0.5
    x = np.arange(n, dtype=float)[:, None]
    w = np.exp(-0.5 * ((x - centres[None, :]) / (0.6 * h)) ** 2)
    return (w / np.sqrt((w**2).sum(1, keepdims=True))).astype(_F)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], cells) -> np.ndarray:
    """Random field, zero mean and unit variance at every pixel, with about ``cells`` bumps per axis.

    Built separably from Gaussian bumps (:func:`_basis`) with i.i.d. normal weights, so the cost is a
    few small matrix products whatever the correlation length.
    """
    cells = np.broadcast_to(np.asarray(cells, dtype=float), (len(shape),))
    mats = [_basis(int(n), float(c)) for n, c in zip(shape, cells)]
    out = rng.standard_normal(tuple(m.shape[1] for m in mats)).astype(_F)
    for ax, mat in enumerate(mats):
        moved = np.moveaxis(out, ax, 0)
        flat = _small_gemm(mat, moved.reshape(moved.shape[0], -1))
        out = np.moveaxis(flat.reshape((mat.shape[0],) + moved.shape[1:]), 0, ax)
    return np.ascontiguousarray(out, dtype=_F)


def _small_gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in row blocks small enough for BLAS to stay single-threaded.

    These products are tiny; a multithreaded BLAS on a busy 2-core machine can make each one
    hundreds of times slower than it needs to be, so keep every call under OpenBLAS's threading
    threshold (m*n*k <= 2**18). The result is identical.
    """
    rows = max(1, (1 << 18) // max(1, a.shape[1] * b.shape[1]))
    if rows >= a.shape[0]:
        return a @ b
    return np.concatenate([a[i : i + rows] @ b for i in range(0, a.shape[0], rows)], axis=0)


def _field3d(rng: np.random.Generator, shape: tuple[int, int, int], cells_xy: float, cycles_z: float) -> np.ndarray:
    """Smooth 3D field: two 2D fields blended along z (cheap, unit variance, smooth across slices)."""
    h, w, d = shape
    f1 = _smooth_field(rng, (h, w), cells_xy)
    f2 = _smooth_field(rng, (h, w), cells_xy)
    a = (rng.uniform(0, 2 * math.pi) + 2 * math.pi * cycles_z * np.arange(d) / max(d, 1)).astype(_F)
    return f1[:, :, None] * np.cos(a)[None, None, :] + f2[:, :, None] * np.sin(a)[None, None, :]


def _harmonics(rng: np.random.Generator, n: int, kmin: int = 2, decay: float = 1.0):
    """Random Fourier coefficients for a wobbly outline (scaled later by an amplitude parameter)."""
    ks = np.arange(kmin, kmin + n)
    amps = rng.uniform(0.3, 1.0, n) / (ks / kmin) ** decay
    phases = rng.uniform(0, 2 * math.pi, n)
    return ks, amps, phases


def _ellipse(x, y, cx, cy, a, b, angle=0.0, harm=None, amp=0.0):
    """Normalised elliptical radius (inside where < 1), optionally with a wobbly outline.

    ``x``/``y`` broadcast against ``cx``/``cy``/``a``/``b`` (e.g. per-slice parameters of shape
    (1, 1, D)). ``a`` is the semi-axis along direction ``angle``, ``b`` across it. The outline is
    r(theta) = 1 + amp * sum_k a_k cos(k theta + p_k); cos/sin of k*theta come from a recurrence
    (no arctan2, no per-harmonic cos), which keeps this cheap on volumes.
    """
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    u = (dx * c + dy * s) / np.maximum(a, 1e-3)
    v = (dy * c - dx * s) / np.maximum(b, 1e-3)
    rho = np.sqrt(u * u + v * v)
    if harm is not None and amp:
        inv = 1.0 / np.maximum(rho, 1e-6)
        c1, s1 = u * inv, v * inv
        ck, sk = c1, s1
        mod = np.ones_like(rho)
        k_prev = 1
        for k, ak, pk in zip(*harm):
            while k_prev < k:  # advance cos/sin of k*theta by the angle-addition formulas
                ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1
                k_prev += 1
            mod += (amp * ak) * (ck * math.cos(pk) - sk * math.sin(pk))
        rho = rho / np.maximum(mod, 0.2)
    return rho


def _blob(xs, ys, cx, cy, a, b, angle=0.0, harm=None, amp=0.0, pad=1.0):
    """:func:`_ellipse` evaluated only inside the shape's bounding box (the rest is set to 1e3).

    ``xs`` (W,) and ``ys`` (H,) are the pixel-centre coordinates; ``cx, cy, a, b`` are scalars
    (2D result, (H, W)) or per-slice arrays of shape (D,) (3D result, (H, W, D)). Values are exact
    up to rho = ``pad`` (use pad > 1 when a margin around the shape is needed).
    """
    per_slice = any(np.ndim(v) > 0 for v in (cx, cy, a, b))
    if per_slice:
        d = max(np.size(v) for v in (cx, cy, a, b))
        cx, cy, a, b = (np.broadcast_to(np.asarray(v, _F), (d,)) for v in (cx, cy, a, b))
        shape = (ys.size, xs.size, d)
    else:
        shape = (ys.size, xs.size)
    grow = 1.0 + (amp * float(np.sum(np.abs(harm[1]))) if harm is not None and amp else 0.0)
    ext = float(np.max(np.maximum(a, b))) * grow * pad / 0.999 + 1e-3
    out = np.full(shape, 1e3, _F)
    x0, x1 = np.searchsorted(xs, [float(np.min(cx)) - ext, float(np.max(cx)) + ext])
    y0, y1 = np.searchsorted(ys, [float(np.min(cy)) - ext, float(np.max(cy)) + ext])
    if x1 <= x0 or y1 <= y0:
        return out
    if per_slice:
        sub = _ellipse(xs[None, x0:x1, None], ys[y0:y1, None, None], cx[None, None], cy[None, None],
                       a[None, None], b[None, None], angle, harm, amp)
    else:
        sub = _ellipse(xs[None, x0:x1], ys[y0:y1, None], cx, cy, a, b, angle, harm, amp)
    out[y0:y1, x0:x1] = sub
    return out


def _soft(x):
    """Smooth step from 0 to 1 (logistic), for anti-aliased tissue boundaries."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _blur(img: np.ndarray, sigma_px: float, axes=None) -> np.ndarray:
    """Gaussian blur over the given axes only (others untouched); no-op for tiny sigma."""
    if sigma_px < 0.05:
        return img
    sig = [0.0] * img.ndim
    for ax in axes if axes is not None else range(img.ndim):
        sig[ax] = sigma_px
    return ndimage.gaussian_filter(img, sig, mode="nearest", truncate=3.0)


def _correlated_noise(rng: np.random.Generator, shape, sigma_px: float, axes) -> np.ndarray:
    """Unit-variance Gaussian noise with a Gaussian correlation of ``sigma_px`` over ``axes``."""
    white = rng.standard_normal(shape).astype(_F)
    if sigma_px < 0.05:
        return white
    out = _blur(white, sigma_px, axes)
    # variance of white noise after a normalised Gaussian of width s in k dims: (4 pi s^2)^(-k/2)
    return out * _F((4 * math.pi * sigma_px**2) ** (len(tuple(axes)) / 4))


def _splat(points_x, points_y, weights, shape) -> np.ndarray:
    """Accumulate point weights on the pixel grid (coordinates in pixels)."""
    h, w = shape
    ix = np.round(points_x).astype(np.int64)
    iy = np.round(points_y).astype(np.int64)
    ok = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    flat = np.bincount(iy[ok] * w + ix[ok], weights=weights[ok], minlength=h * w)
    return flat.reshape(h, w).astype(_F)


def _render_curves(curves, shape, scale_px: float, n_bins: int = 4) -> np.ndarray:
    """Render polylines with a per-point width (FWHM, pixels) and opacity as a [0, 1] density map.

    Points are splatted into a few width bins, each blurred by its own Gaussian and normalised so a
    continuous line reaches its opacity at its centre: O(pixels) however many curves there are.
    """
    if not curves:
        return np.zeros(shape, _F)
    curves = [_densify(c, scale_px) for c in curves]
    xs = np.concatenate([c[0] for c in curves])
    ys = np.concatenate([c[1] for c in curves])
    ws = np.concatenate([c[2] for c in curves]) * scale_px
    op = np.concatenate([c[3] for c in curves])
    step = np.concatenate([c[4] for c in curves]) * scale_px  # distance between samples, pixels
    edges = np.quantile(ws, np.linspace(0, 1, n_bins + 1))
    out = np.zeros(shape, _F)
    for b in range(n_bins):
        sel = (ws >= edges[b]) & ((ws < edges[b + 1]) if b < n_bins - 1 else (ws <= edges[b + 1]))
        if not np.any(sel):
            continue
        sigma = max(0.35, float(np.mean(ws[sel])) / 2.355)
        acc = _splat(xs[sel], ys[sel], op[sel] * step[sel], shape)
        out += ndimage.gaussian_filter(acc, sigma, truncate=3.0) * _F(math.sqrt(2 * math.pi) * sigma)
    return np.clip(out, 0.0, 1.0)


def _densify(curve, scale_px: float, max_step_px: float = 0.4):
    """Linearly resample a curve so consecutive points are at most ``max_step_px`` pixels apart."""
    x, y, w, op, step = curve
    k = max(1, int(math.ceil(float(step[0]) * scale_px / max_step_px)))
    if k == 1:
        return curve
    t = np.arange((len(x) - 1) * k + 1) / k
    i = np.arange(len(x))
    return [np.interp(t, i, x), np.interp(t, i, y), np.interp(t, i, w), np.interp(t, i, op),
            np.full(t.size, float(step[0]) / k)]


def _walk(rng, x0, y0, theta0, length, step, curvature, wiggle, width0, taper, opacity):
    """A smooth random curve (vessel) as arrays x, y, width, opacity, step."""
    n = max(2, int(length / step))
    dtheta = curvature * step + rng.normal(0.0, wiggle * math.sqrt(step), n)
    theta = theta0 + np.cumsum(dtheta)
    x = x0 + np.cumsum(np.cos(theta) * step)
    y = y0 + np.cumsum(np.sin(theta) * step)
    s = np.arange(n) / n
    width = width0 * (1.0 - taper * s)
    return [x, y, width, np.full(n, opacity), np.full(n, step)], theta


# ----------------------------------------------------------------------------------------------
# cardiac: short-axis cine MRI stack
# ----------------------------------------------------------------------------------------------

_CARDIAC_SHAPE = {
    "fov_mm": _Param(205.0, 0.08, log=True),
    "long_axis_mm": _Param(88.0, 0.1, log=True),
    "lv_radius_mm": _Param(25.0, 0.14, -0.16, log=True),  # end-diastolic cavity radius at the base
    "myo_thickness_mm": _Param(8.0, 0.14, 0.35, log=True),
    "rv_scale": _Param(1.0, 0.14, 0.25, log=True),
    "lv_ellipticity": _Param(1.04, 0.04, 0.05),
    "phase": _Param(0.5, 0.5, lo=0.0, hi=1.0),  # 0 end-diastole ... 1 end-systole
}
_CARDIAC_APPEARANCE = {
    "gamma": _Param(1.0, 0.08, 0.25, log=True),  # contrast curve of the sequence
    "bias": _Param(0.12, 0.05, 0.2, lo=0.0),  # std of log coil sensitivity
    "noise": _Param(0.022, 0.25, 0.42, log=True),  # Rician sigma relative to blood signal
    "blur_mm": _Param(0.8, 0.2, 0.4, log=True),  # in-plane PSF sigma
}
# bSSFP-like relative signal per tissue
_MR = {
    "air": 0.0, "fat": 0.85, "muscle": 0.30, "soft": 0.35, "lung": 0.05, "lung_vessel": 0.3,
    "liver": 0.38, "marrow": 0.55, "cortex": 0.1, "csf": 0.85, "blood_aorta": 0.85,
    "myo": 0.15, "lv_blood": 0.95, "rv_blood": 0.76, "papillary": 0.2,
}


def _cardiac(rng, rng_app, rng_noise, size, sev_shape, sev_app):
    P = _draw(_CARDIAC_SHAPE, rng, sev_shape)
    A = _draw(_CARDIAC_APPEARANCE, rng_app, sev_app)
    sp = P["fov_mm"] / size
    dz = float(rng.uniform(7.0, 10.0))
    L = P["long_axis_mm"]
    d = int(np.clip(round(L * rng.uniform(0.95, 1.12) / dz), 6, 12))
    t = rng.uniform(-0.03, 0.05) + np.arange(d) * dz / L  # 0 = base (mitral plane), 1 = apex
    tp = np.clip(t, 0.0, None)

    c = (np.arange(size, dtype=_F) - (size - 1) / 2) * _F(sp)
    Y2, X2 = c[:, None], c[None, :]
    Y, X = c[:, None, None], c[None, :, None]

    def ps(v):
        return np.asarray(v, dtype=_F).reshape(1, 1, -1)

    def pb(v):
        return np.asarray(v, dtype=bool).reshape(1, 1, -1)

    # ---- heart geometry per slice
    ph = P["phase"]
    r_cav0 = P["lv_radius_mm"] * (1 - 0.3 * ph)
    thick = P["myo_thickness_mm"] * (1 + 0.45 * ph)
    R = r_cav0 + thick
    prof = np.sqrt(np.clip(1 - tp**2.5, 0, 1))
    r_epi = R * prof
    r_cav = np.clip(r_epi - thick * (1 + 0.15 * tp), 0, None)
    hx = rng.uniform(0, 20) + rng.uniform(-6, 6) * tp
    hy = rng.uniform(-16, 2) + rng.uniform(-6, 6) * tp
    phi = math.pi + rng.uniform(0.05, 0.6)  # direction LV -> RV: image left and up
    ell, lv_ang = P["lv_ellipticity"], rng.uniform(0, math.pi)
    h_epi, h_cav, h_rv = _harmonics(rng, 3), _harmonics(rng, 4), _harmonics(rng, 3)
    rho_epi = _blob(c, c, hx, hy, r_epi * ell, r_epi / ell, lv_ang, h_epi, 0.03, pad=1.3)
    rho_cav = _blob(c, c, hx, hy, r_cav * ell, r_cav / ell, lv_ang, h_cav, 0.05)
    epi = rho_epi < 1
    cav = (rho_cav < 1) & pb(r_cav > 0.5)

    t_rv = rng.uniform(0.7, 0.85)
    s_rv = np.sqrt(np.clip(1 - (tp / t_rv) ** 2, 0, 1))
    rv_k = P["rv_scale"]
    # the RV cavity is an ellipse hugging the septum, minus the LV epicardium: a crescent whose
    # thickness is rv_t at its middle and whose horns wrap part of the way around the LV
    rv_t = 0.45 * R * rv_k * s_rv
    off = 0.45 * r_epi
    rv_cx, rv_cy = hx + math.cos(phi) * off, hy + math.sin(phi) * off
    rv_b = 0.55 * r_epi + rv_t  # radial semi-axis
    rv_a = 0.85 * r_epi + 0.5 * rv_t  # tangential semi-axis
    rho_rv = _blob(c, c, rv_cx, rv_cy, rv_a, rv_b, phi + math.pi / 2, h_rv, 0.05)
    wall = 2.5  # RV free wall, mm
    rho_rvw = _blob(c, c, rv_cx, rv_cy, rv_a + wall, rv_b + wall, phi + math.pi / 2, h_rv, 0.05, pad=1.15)
    has_rv = pb(rv_t > 1.0)
    rv = (rho_rv < 1) & ~epi & has_rv
    rv_wall = (rho_rvw < 1) & ~(rho_rv < 1) & ~epi & has_rv

    # papillary muscles (inside the cavity, labelled LV as in ACDC)
    pap = np.zeros(epi.shape, bool)
    for dang in (-0.75, 0.75):
        ang = phi + math.pi + dang + rng.uniform(-0.2, 0.2)
        px, py = hx + math.cos(ang) * 0.55 * r_cav, hy + math.sin(ang) * 0.55 * r_cav
        pr = 0.2 * r_cav * ((tp > 0.15) & (tp < 0.8))
        pap |= _blob(c, c, px, py, pr, pr) < 1
    pap &= cav

    # epicardial fat along part of the epicardium (AV groove, RV insertion)
    fat_dir = phi + rng.uniform(-1.2, 1.2)
    along = (X - ps(hx)) * math.cos(fat_dir) + (Y - ps(hy)) * math.sin(fat_dir)  # > 0 on the fat side
    epi_fat = (rho_epi >= 1) & (rho_epi < 1 + 3.0 / np.maximum(ps(r_epi), 1)) & (along > 0.1 * ps(r_epi))
    epi_fat &= pb(r_epi > 1)

    # ---- body and surroundings (mostly constant across slices)
    bx, by = rng.uniform(-8, 8), rng.uniform(6, 20)
    ax, ay = rng.uniform(135, 175), rng.uniform(92, 110)
    rho_b = _ellipse(X2, Y2, bx, by, ax, ay, rng.uniform(-0.05, 0.05), _harmonics(rng, 3), 0.025)
    fat_f, mus_f = rng.uniform(0.06, 0.13), rng.uniform(0.06, 0.1)
    body = rho_b < 1
    inner = rho_b < 1 - fat_f - mus_f
    right_lung = _ellipse(X2, Y2, bx - 0.52 * ax, by - 0.02 * ay, 0.3 * ax, 0.58 * ay, rng.uniform(-0.3, 0.3),
                          _harmonics(rng, 4), 0.1)
    left_lung = _ellipse(X2, Y2, bx + 0.56 * ax, by + 0.04 * ay, 0.27 * ax, 0.54 * ay, rng.uniform(-0.3, 0.3),
                         _harmonics(rng, 4), 0.1)
    lungs = ((right_lung < 1) | (left_lung < 1)) & (rho_b < 1 - fat_f - mus_f - 0.05)
    vx, vy = bx + rng.uniform(-4, 4), by + 0.6 * ay
    vert = (X2 - vx) ** 2 + (Y2 - vy) ** 2 < 15.0**2
    vert_marrow = (X2 - vx) ** 2 + (Y2 - vy) ** 2 < 12.5**2
    canal = (X2 - vx) ** 2 + (Y2 - vy - 21) ** 2 < 6.0**2
    paraspinal = (_ellipse(X2, Y2, vx - 27, vy + 24, 19, 13) < 1) | (_ellipse(X2, Y2, vx + 27, vy + 24, 19, 13) < 1)
    paraspinal &= body
    ao_r = rng.uniform(10, 13)
    aorta = (X2 - vx - 24) ** 2 + (Y2 - vy + 24) ** 2 < ao_r**2
    sternum = _ellipse(X2, Y2, bx, by - ay * (1 - fat_f - mus_f) + 7, 9, 5) < 1
    lung_tex = _smooth_field(rng_noise, (size, size), size / 4)
    fat_patch = (_smooth_field(rng, (size, size), 9) > 1.5) & inner & ~lungs
    liver_t0 = rng.uniform(0.35, 0.6)
    g_liv = np.sqrt(np.clip((tp - liver_t0) / 0.5, 0, 1))
    liver = (_blob(c, c, bx - 0.35 * ax, hy + 60, 0.5 * ax * g_liv, 0.55 * ay * g_liv, 0.3) < 1) & inner[..., None]

    # ---- paint tissue signal (3D) and labels
    sig = np.full((size, size, d), _MR["air"], _F)
    sig[body] = _MR["fat"]
    sig[(rho_b < 1 - fat_f)] = _MR["muscle"]
    sig[inner] = _MR["soft"]
    sig[fat_patch] = _MR["fat"]
    lung_sig = np.where(lung_tex > 2.0, _MR["lung_vessel"], _MR["lung"]).astype(_F)
    sig[lungs] = lung_sig[lungs][:, None]
    sig[liver] = _MR["liver"]
    sig[paraspinal] = _MR["muscle"]
    sig[vert] = _MR["cortex"]
    sig[vert_marrow] = _MR["marrow"]
    sig[canal] = _MR["csf"]
    sig[aorta] = _MR["blood_aorta"]
    sig[sternum] = _MR["marrow"]
    guard = (rho_epi < 1.25) | (rho_rvw < 1.12)
    heart_zone = guard & ~epi & ~rv & ~rv_wall
    sig[heart_zone & (sig < 0.2)] = _MR["soft"]  # no lung touching the heart
    sig[epi_fat] = _MR["fat"]
    sig[rv_wall] = _MR["myo"]
    sig[epi] = _MR["myo"]
    sig[cav] = _MR["lv_blood"]
    sig[pap] = _MR["papillary"]
    sig[rv] = _MR["rv_blood"]

    lab = np.zeros((size, size, d), np.int64)
    lab[epi] = 2
    lab[cav] = 3
    lab[rv] = 1

    # ---- acquisition
    shape = sig.shape
    sig *= 1 + 0.05 * _field3d(rng_noise, shape, size / 5, d / 2)  # tissue heterogeneity
    sig = np.clip(sig, 0, None) ** _F(A["gamma"])
    sig *= np.exp(_F(A["bias"]) * _field3d(rng_noise, shape, 1.5, 0.3))
    sig = _blur(sig, A["blur_mm"] / sp, (0, 1))
    n1 = rng_noise.standard_normal(shape, dtype=_F)
    n2 = rng_noise.standard_normal(shape, dtype=_F)
    s = _F(A["noise"])
    img = np.sqrt((sig + s * n1) ** 2 + (s * n2) ** 2)
    meta_anat = dict(P, slices=d, slice_spacing_mm=dz)
    return img[None], lab, (sp, sp, dz), meta_anat, A


# ----------------------------------------------------------------------------------------------
# abdomen: contrast-enhanced CT slab
# ----------------------------------------------------------------------------------------------

_ABDOMEN_SHAPE = {
    "fov_mm": _Param(335.0, 0.07, log=True),
    "body_scale": _Param(1.0, 0.08, log=True),
    "fat_mm": _Param(16.0, 0.4, 0.3, log=True),
    "liver_scale": _Param(1.0, 0.1, 0.18, log=True),
    "spleen_scale": _Param(1.0, 0.12, 0.35, log=True),
    "kidney_scale": _Param(1.0, 0.08, -0.2, log=True),
    "gallbladder_scale": _Param(1.0, 0.15, 0.3, log=True),
    "pancreas_scale": _Param(1.0, 0.12, -0.25, log=True),
    "stomach_scale": _Param(1.0, 0.12, log=True),
}
_ABDOMEN_APPEARANCE = {
    "enhancement": _Param(1.0, 0.08, -0.3, log=True),  # iodine enhancement factor
    "noise_hu": _Param(12.0, 0.2, 0.55, log=True),
    "noise_grain_mm": _Param(0.9, 0.15, 0.45, log=True),  # noise correlation length (kernel)
    "blur_mm": _Param(0.7, 0.2, 0.4, log=True),
    "cupping_hu": _Param(0.0, 4.0, 10.0),
}
# (base HU, iodine enhancement HU at the portal-venous phase)
_HU = {
    "air": (-1000, 0), "fat": (-100, 0), "muscle": (42, 12), "cortical": (700, 0), "cancellous": (210, 0),
    "csf": (12, 0), "aorta": (45, 165), "ivc": (45, 90), "liver": (50, 52), "liver_vessel": (45, 110),
    "gallbladder": (0, 0), "spleen": (50, 78), "kidney_cortex": (40, 125), "kidney_medulla": (38, 90),
    "pancreas": (45, 45), "pancreas_fat": (-20, 15), "stomach_wall": (42, 55), "stomach_content": (25, 0),
    "bowel_wall": (40, 45), "gas": (-900, 0),
}


def _abdomen(rng, rng_app, rng_noise, size, sev_shape, sev_app):
    P = _draw(_ABDOMEN_SHAPE, rng, sev_shape)
    A = _draw(_ABDOMEN_APPEARANCE, rng_app, sev_app)
    sp = P["fov_mm"] / size
    d = int(rng.integers(6, 13))
    dz = float(rng.uniform(3.0, 5.0))
    z = ((np.arange(d) - (d - 1) / 2) * dz).astype(_F)  # mm, increasing toward the feet
    c = (np.arange(size, dtype=_F) - (size - 1) / 2) * _F(sp)
    Y2, X2 = c[:, None], c[None, :]
    Y = c[:, None, None]

    def ps(v):
        return np.broadcast_to(np.asarray(v, dtype=_F), (d,)).reshape(1, 1, -1)

    def pb(v):
        return np.broadcast_to(np.asarray(v, dtype=bool), (d,)).reshape(1, 1, -1)

    def zprof(zc, hz):
        return np.sqrt(np.clip(1 - ((z - zc) / hz) ** 2, 0, 1))

    bs = P["body_scale"]
    ax, ay = 150 * bs * rng.uniform(0.95, 1.05), 112 * bs * rng.uniform(0.93, 1.05)
    bx, by = rng.uniform(-10, 10), rng.uniform(-8, 8)
    fat_mm, mus_mm = P["fat_mm"], rng.uniform(8, 13)
    ax, ay = ax + 0.6 * (fat_mm - 16), ay + 0.6 * (fat_mm - 16)
    sx, sy = (ax - fat_mm) / 135, (ay - fat_mm) / 97  # interior scale

    def at(fx, fy):  # position in the body frame (fractions of the interior scale, mm)
        return bx + fx * sx, by + fy * sy

    rho_b = _ellipse(X2, Y2, bx, by, ax, ay, rng.uniform(-0.04, 0.04), _harmonics(rng, 3), 0.02)
    body = rho_b < 1
    sub_fat = rho_b >= 1 - fat_mm / ay
    th_b = np.arctan2(Y2 - by, X2 - bx)
    mus_t = mus_mm * (0.75 + 0.5 * np.abs(np.sin(th_b)) * (th_b < 0) + 0.35 * np.abs(np.cos(th_b)))
    inner = rho_b < 1 - (fat_mm + mus_t) / ay

    def organ(fx, fy, a, b, ang, zc, hz, amp=0.06, drift=0.15, nh=4):
        s = zprof(zc, hz)
        cx, cy = at(fx, fy)
        dx, dy = rng.uniform(-drift, drift, 2)
        rho = _blob(c, c, cx + dx * z, cy + dy * z, a * s, b * s, ang, _harmonics(rng, nh), amp)
        return (rho < 1) & pb(s > 0.12), rho

    # spine and muscles (2D, constant)
    vx, vy = at(rng.uniform(-3, 3), 60)
    vert = (X2 - vx) ** 2 + (Y2 - vy) ** 2 < 19.0**2
    canc = (X2 - vx) ** 2 + (Y2 - vy) ** 2 < 16.0**2
    canal = (X2 - vx) ** 2 + (Y2 - vy - 26) ** 2 < 8.0**2
    spinous = _ellipse(X2, Y2, vx, vy + 44, 5, 13, math.pi / 2) < 1
    parasp = (_ellipse(X2, Y2, vx - 36, vy + 30, 22, 18) < 1) | (_ellipse(X2, Y2, vx + 36, vy + 30, 22, 18) < 1)
    parasp &= body
    psoas_s = np.clip((z + rng.uniform(10, 40)) / 50, 0.25, 1.0)
    psoas = (
        (_blob(c, c, vx - 30, vy - 8, 12 * psoas_s, 10 * psoas_s) < 1)
        | (_blob(c, c, vx + 30, vy - 8, 12 * psoas_s, 10 * psoas_s) < 1)
    )
    # ribs in the cranial slices, on the muscle ring
    rib_z = rng.uniform(-10, 25)
    ribs = np.zeros((size, size), bool)
    rib_marrow = np.zeros((size, size), bool)
    r_ring = 1 - (fat_mm + 0.5 * mus_mm) / ay
    for side in (-1, 1):
        for ang in rng.uniform(0.15, 1.25, 3):
            rx = bx + side * r_ring * ax * math.cos(ang)  # on the muscle ring, mostly anterior
            ry = by + r_ring * ay * math.sin(ang) * (1 if rng.uniform() < 0.35 else -1)
            e = _ellipse(X2, Y2, rx, ry, 8, 4.5, math.atan2(ry - by, rx - bx) + math.pi / 2)
            ribs |= e < 1
            rib_marrow |= e < 0.6
    rib_slices = pb(z < rib_z)

    # vessels
    ao_r = rng.uniform(9.5, 12.5)
    aox, aoy = vx + rng.uniform(4, 12), vy - 19 - ao_r - rng.uniform(0, 4)
    aorta = (X2 - aox) ** 2 + (Y2 - aoy) ** 2 < ao_r**2
    ivc = (_ellipse(X2, Y2, vx - 28, vy - 28, 13, 9.5, rng.uniform(-0.3, 0.3)) < 1)

    # organs (x to image right = patient left; y down = posterior)
    ls = P["liver_scale"]
    liver, _ = organ(-55 + rng.uniform(-6, 6) + 10 * (ls - 1), -8 + rng.uniform(-6, 6), 72 * ls, 80 * ls,
                     rng.uniform(-0.4, 0.0), rng.uniform(-75, -50), rng.uniform(105, 130), 0.07)
    left_lobe, _ = organ(5 * ls, -55, 50 * ls, 26 * ls, rng.uniform(-0.3, 0.1), rng.uniform(-60, -35),
                         rng.uniform(40, 60), 0.08)
    liver = (liver | left_lobe) & inner[..., None]
    gs = P["gallbladder_scale"]
    gall, _ = organ(-32 + rng.uniform(-8, 8), -32 + rng.uniform(-8, 8), 13 * gs, 21 * gs, rng.uniform(-0.8, 0.0),
                    rng.uniform(-10, 25), rng.uniform(20, 32) * gs**0.5, 0.05)
    ks = P["kidney_scale"]
    kidneys = {}
    organ_label = {name: k for k, name in enumerate(get_task("abdomen").class_names)}  # labels by organ name
    # side -1 is image left = the patient's right (radiological convention)
    for lab_v, side, zc in ((organ_label["right kidney"], -1, rng.uniform(20, 42)),
                            (organ_label["left kidney"], 1, rng.uniform(12, 32))):
        kx, ky = 60 * side + rng.uniform(-6, 6), 46 + rng.uniform(-6, 6)
        ang = side * rng.uniform(0.35, 0.75)
        k_mask, k_rho = organ(kx, ky, 26 * ks, 31 * ks, ang + math.pi / 2, zc, rng.uniform(45, 58) * ks, 0.05)
        cx, cy = at(kx, ky)
        hil = (_blob(c, c, cx - side * 26 * ks, cy - 9 * ks, 10 * ks, 6 * ks, -side * 0.5) < 1)[..., None]
        kidneys[lab_v] = (k_mask & ~hil, k_mask & (k_rho < 0.6) & ~hil)
    ss = P["spleen_scale"]
    spx, spy = 88 + 8 * (ss - 1), 18 + rng.uniform(-8, 8)
    spleen, _ = organ(spx, spy, 26 * ss, 50 * ss, rng.uniform(-0.7, -0.3), rng.uniform(-55, -25),
                      rng.uniform(45, 60) * ss**0.5, 0.06)
    scx, scy = at(spx - 38 * ss, spy - 5)  # the hilum side is concave
    spleen &= (~((X2 - scx) ** 2 + (Y2 - scy) ** 2 < (24 * ss) ** 2) & inner)[..., None]
    sts = P["stomach_scale"]
    stomach, rho_st = organ(45 + rng.uniform(-8, 8), -42 + rng.uniform(-6, 6), 46 * sts, 32 * sts,
                            rng.uniform(0.0, 0.6), rng.uniform(-40, -10), rng.uniform(45, 60), 0.08)
    stomach &= inner[..., None]
    st_wall = stomach & (rho_st > 0.85)
    # sometimes an air pocket with a fluid level, anterior (the patient lies supine)
    level = at(0, -42 - 0.55 * 32 * sts)[1] + rng.uniform(-5, 5)
    st_air = stomach & ~st_wall & (Y < level) & (rng.uniform() < 0.4)

    # pancreas: a curved tube (quadratic Bezier centre line) of varying thickness
    p0 = at(-26 + rng.uniform(-6, 6), 20 + rng.uniform(-5, 5))
    p1 = at(12 + rng.uniform(-8, 8), -12 + rng.uniform(-8, 8))
    p2 = at(70 + rng.uniform(-8, 8), 20 + rng.uniform(-6, 6))
    u = np.linspace(0, 1, 32, dtype=_F)
    cxs = (1 - u) ** 2 * p0[0] + 2 * u * (1 - u) * p1[0] + u**2 * p2[0]
    cys = (1 - u) ** 2 * p0[1] + 2 * u * (1 - u) * p1[1] + u**2 * p2[1]
    wobble = 1 + 0.12 * _smooth_field(rng, (size, size), 6)
    # distance to the centre line, computed only in the curve's bounding box (+ the widest half-width)
    m = 20.0 * P["pancreas_scale"]
    x0, x1 = np.searchsorted(c, [cxs.min() - m, cxs.max() + m])
    y0, y1 = np.searchsorted(c, [cys.min() - m, cys.max() + m])
    d2 = (c[None, None, x0:x1] - cxs[:, None, None]) ** 2 + (c[None, y0:y1, None] - cys[:, None, None]) ** 2
    idx = np.argmin(d2, axis=0)
    dist = np.full((size, size), 1e3, _F)
    dist[y0:y1, x0:x1] = np.sqrt(np.take_along_axis(d2, idx[None], 0)[0])
    half = np.zeros((size, size), _F)
    half[y0:y1, x0:x1] = (11.5 - 4.5 * u[idx]) * P["pancreas_scale"] * wobble[y0:y1, x0:x1]
    pz = zprof(rng.uniform(-8, 8), rng.uniform(18, 28))
    pancreas = dist[..., None] < half[..., None] * ps(pz)
    pancreas &= pb(pz > 0.15)
    pan_fat = _smooth_field(rng_noise, (size, size), size / 5) > 1.6

    # bowel loops in the interior (organs are painted over them)
    bowel = np.zeros((size, size, d), bool)
    bowel_air = np.zeros((size, size, d), bool)
    for _ in range(14):
        fx, fy = rng.uniform(-80, 80), rng.uniform(-75, 25)
        r = rng.uniform(9, 20)
        m, rho_bw = organ(fx, fy, r, r * rng.uniform(0.7, 1.3), rng.uniform(0, math.pi),
                          rng.uniform(-20, 40), rng.uniform(25, 60), 0.1, drift=0.4, nh=3)
        bowel |= m
        if rng.uniform() < 0.2:
            bowel_air |= m & (rho_bw < 0.7)
    bowel &= inner[..., None]

    # ---- paint a tissue-index map, then look up HU = base + k * enhancement
    names = list(_HU)
    tissue = np.zeros((size, size, d), np.uint8)
    lab = np.zeros((size, size, d), np.int64)

    def paint(mask, name, label=None):  # 2D masks paint every slice
        tissue[mask] = names.index(name)
        if label is not None:
            lab[mask] = label

    paint(body, "fat")
    paint(body & ~sub_fat, "muscle")
    paint(inner, "fat")
    paint(parasp, "muscle")
    paint(psoas, "muscle")
    paint(bowel, "bowel_wall")
    paint(bowel_air, "gas")
    paint(vert, "cortical")
    paint(canc, "cancellous")
    paint(canal, "csf")
    paint(spinous, "cortical")
    paint(ribs[..., None] & rib_slices, "cortical")
    paint(rib_marrow[..., None] & rib_slices, "cancellous")
    paint(ivc, "ivc")
    paint(liver, "liver", organ_label["liver"])
    paint(liver & (np.abs(_smooth_field(rng_noise, (size, size), size / 9)) < 0.12)[..., None], "liver_vessel")
    paint(gall, "gallbladder", organ_label["gallbladder"])
    paint(spleen, "spleen", organ_label["spleen"])
    for lab_v, (k_mask, k_med) in kidneys.items():
        paint(k_mask, "kidney_cortex", lab_v)
        paint(k_med, "kidney_medulla")
    paint(stomach, "stomach_content", organ_label["stomach"])
    paint(st_wall, "stomach_wall")
    paint(st_air, "gas")
    paint(pancreas, "pancreas", organ_label["pancreas"])
    paint(pancreas & pan_fat[..., None], "pancreas_fat")
    paint(aorta, "aorta", organ_label["aorta"])
    table = np.array([_HU[n] for n in names], _F)
    base, enh = table[tissue, 0], table[tissue, 1]

    # ---- scanner
    hu = base + _F(A["enhancement"]) * enh
    hu += 6.0 * _field3d(rng_noise, hu.shape, P["fov_mm"] / 8, d / 2) * (lab > 0)  # organ texture
    hu = _blur(hu, A["blur_mm"] / sp, (0, 1))
    hu -= _F(A["cupping_hu"]) * np.clip(1 - rho_b**2, 0, 1)[..., None] * body[..., None]
    hu += _F(A["noise_hu"]) * _correlated_noise(rng_noise, hu.shape, A["noise_grain_mm"] / sp, (0, 1))
    hu = np.clip(hu, -125.0, 275.0)  # the abdominal window of the TransUNet protocol
    meta_anat = dict(P, slices=d, slice_spacing_mm=dz)
    return hu[None], lab, (sp, sp, dz), meta_anat, A


# ----------------------------------------------------------------------------------------------
# fundus: colour photograph of the optic nerve head region
# ----------------------------------------------------------------------------------------------

_FUNDUS_SHAPE = {
    "disc_diameter": _Param(0.2, 0.12, 0.12, log=True),  # vertical, fraction of image width
    "disc_aspect": _Param(1.08, 0.05, 0.1),  # height / width
    "cup_disc_ratio": _Param(0.45, 0.12, 0.2, lo=0.15, hi=0.85),
}
_FUNDUS_APPEARANCE = {
    "gain_r": _Param(1.0, 0.06, -0.2, log=True),
    "gain_g": _Param(1.0, 0.06, 0.1, log=True),
    "gain_b": _Param(1.0, 0.08, 0.3, log=True),
    "gamma": _Param(1.0, 0.08, 0.25, log=True),
    "vignetting": _Param(0.3, 0.08, 0.15, lo=0.0, hi=0.9),
    "uneven": _Param(0.06, 0.03, 0.05, lo=0.0),
    "blur_px": _Param(0.5, 0.2, 0.6, log=True),  # at 128 px
    "noise": _Param(0.012, 0.25, 0.45, log=True),
}


def _fundus(rng, rng_app, rng_noise, size, sev_shape, sev_app):
    P = _draw(_FUNDUS_SHAPE, rng, sev_shape)
    A = _draw(_FUNDUS_APPEARANCE, rng_app, sev_app)
    S = size
    g = (np.arange(S, dtype=_F) + 0.5) / S
    yy, xx = g[:, None], g[None, :]
    side = 1 if rng.uniform() < 0.5 else -1  # +1: disc right of centre
    fcx, fcy = 0.5 + rng.uniform(-0.02, 0.02), 0.5 + rng.uniform(-0.02, 0.02)
    R = rng.uniform(0.5, 0.6)
    dcx = fcx + side * rng.uniform(0.15, 0.21)
    dcy = fcy + rng.uniform(-0.05, 0.05)
    dh = P["disc_diameter"] / 2
    dw = dh / P["disc_aspect"]
    d_ang = rng.uniform(-0.3, 0.3)
    # the first semi-axis of _ellipse lies along its angle: pi/2 makes dh the vertical one
    rho_d = _ellipse(xx, yy, dcx, dcy, dh, dw, d_ang + math.pi / 2, _harmonics(rng, 3), 0.04)
    cdr = P["cup_disc_ratio"]
    ch = cdr * dh
    ccx = dcx - side * rng.uniform(0.05, 0.15) * dw
    ccy = dcy + rng.uniform(-0.08, 0.08) * dh
    cw = min(ch / rng.uniform(0.95, 1.15), 0.9 * dw - abs(ccx - dcx))
    rho_c = _ellipse(xx, yy, ccx, ccy, ch, cw, d_ang + math.pi / 2 + rng.uniform(-0.3, 0.3), _harmonics(rng, 3), 0.06)
    disc = rho_d < 1
    cup = (rho_c < 1) & disc
    lab = np.zeros((S, S), np.int64)
    lab[disc] = 1
    lab[cup] = 2

    # ---- reflectance (before the camera)
    pig = math.exp(rng.uniform(-0.15, 0.15))
    retina = np.array([0.80, 0.33 * pig ** -0.5, 0.12], _F) * _F(pig)
    tex = 0.6 * _smooth_field(rng_noise, (S, S), 10) + 0.4 * _smooth_field(rng_noise, (S, S), S / 3)
    img = retina[:, None, None] * (1 + 0.07 * tex)[None]
    mcx, mcy = dcx - side * rng.uniform(0.4, 0.46), dcy + rng.uniform(0.0, 0.05)
    dm2 = ((xx - mcx) ** 2 + (yy - mcy) ** 2) / (0.1**2)
    img *= (1 - 0.35 * np.exp(-dm2))[None]
    img += (0.12 * np.exp(-dm2 * 60))[None] * np.array([1, 1, 1], _F)[:, None, None]  # foveal reflex
    # peripapillary atrophy: pale crescent just outside the disc, on the macular side
    if rng.uniform() < 0.4:
        theta = np.arctan2(yy - dcy, xx - dcx)
        macular_side = np.cos(theta - (math.pi if side > 0 else 0.0)) > 0.35
        ppa = (rho_d >= 1) & (rho_d < 1 + rng.uniform(0.15, 0.3)) & macular_side
        ppa_s = ndimage.gaussian_filter(ppa.astype(_F), 0.8 * S / 128)
        img = img * (1 - 0.5 * ppa_s)[None] + (0.5 * ppa_s)[None] * np.array([0.85, 0.55, 0.38], _F)[:, None, None]
    px_d = dh * S  # disc radius in pixels
    sd = _soft((1 - rho_d) * px_d / 0.6)
    sc = _soft((1 - rho_c) * ch * S / max(0.7, 0.12 * ch * S))  # the cup edge is a slope
    rim_rgb = np.array([0.93, 0.6, 0.4], _F) * _F(math.exp(rng.uniform(-0.06, 0.06)))
    cup_rgb = np.array([0.98, 0.86, 0.7], _F)
    img = img * (1 - sd)[None] + (rim_rgb[:, None, None] * (1 + 0.04 * tex)) * sd[None]
    img = img * (1 - sc * sd)[None] + cup_rgb[:, None, None] * (sc * sd)[None]

    # vessels: arcades around the macula plus nasal branches, from the disc centre
    curves = []
    vx0, vy0 = ccx + side * 0.6 * cw, ccy  # the central vessels emerge on the nasal side of the cup
    step = 0.004  # fraction of the image width; fixed so the anatomy does not depend on image_size
    temporal = math.pi if side > 0 else 0.0
    for sup in (-1, 1):  # superior (-1, up) and inferior (+1, down)
        for width, op, dth in ((0.02, 0.85, 0.0), (0.015, 0.65, 0.18)):  # vein, artery
            # leave the disc vertically, leaning a little nasally, then arch toward the macula
            toward = 1 if temporal == 0 else -1  # sign of the temporal x direction
            th0 = sup * math.pi / 2 + (dth + rng.uniform(-0.2, 0.2)) * toward * sup
            kappa = -sup * toward * rng.uniform(3.0, 4.5)
            trunk, theta = _walk(rng, vx0, vy0, th0, rng.uniform(0.45, 0.6), step, kappa, 0.5, width, 0.55, op)
            curves.append(trunk)
            for _ in range(int(rng.integers(2, 4))):
                j = int(rng.integers(len(trunk[0]) // 6, len(trunk[0]) * 3 // 4))
                bth = theta[j] + rng.choice([-1, 1]) * rng.uniform(0.5, 1.0)
                br, _ = _walk(rng, trunk[0][j], trunk[1][j], bth, rng.uniform(0.12, 0.3), step,
                              rng.uniform(-2, 2), 0.8, trunk[2][j] * 0.65, 0.6, op * 0.8)
                curves.append(br)
    for _ in range(int(rng.integers(3, 6))):
        th0 = (0.0 if temporal == math.pi else math.pi) + rng.uniform(-1.3, 1.3)
        v, _ = _walk(rng, vx0, vy0, th0, rng.uniform(0.2, 0.4), step, rng.uniform(-1.5, 1.5), 0.8,
                     rng.uniform(0.008, 0.014), 0.6, 0.65)
        curves.append(v)
    curves = [[c[0] * S - 0.5, c[1] * S - 0.5, c[2], c[3], c[4]] for c in curves]
    vmap = _render_curves(curves, (S, S), S)
    vessel_rgb = np.array([0.55, 0.25, 0.3], _F)  # transmittance of blood per channel
    img *= 1 - vmap[None] * (1 - vessel_rgb[:, None, None])

    # ---- camera
    r = np.sqrt((xx - fcx) ** 2 + (yy - fcy) ** 2) / R
    gains = np.array([A["gain_r"], A["gain_g"], A["gain_b"]], _F)
    img *= gains[:, None, None]
    illum = (1 - A["vignetting"] * np.clip(r, 0, 1) ** 2.5) * (1 + A["uneven"] * _smooth_field(rng_noise, (S, S), 2))
    img *= illum[None]
    img = np.clip(img, 0, None) ** _F(A["gamma"])
    fov = _soft((1 - r) * R * S / 0.7)
    img = img * fov[None]
    img = _blur(img, A["blur_px"] * S / 128, (1, 2))
    img += _F(A["noise"]) * rng_noise.standard_normal(img.shape, dtype=_F)
    spacing_mm = 12.0 / (2 * R * S)  # the imaged retina is about 12 mm across
    return img, lab, (spacing_mm, spacing_mm), dict(P, eye="right" if side > 0 else "left"), A


# ----------------------------------------------------------------------------------------------
# polyp: colonoscopy frame
# ----------------------------------------------------------------------------------------------

_POLYP_SHAPE = {
    "polyp_radius": _Param(0.16, 0.28, -0.45, log=True),  # fraction of image width
    "polyp_aspect": _Param(0.85, 0.12, -0.1, lo=0.3, hi=1.0),
    "lobulation": _Param(0.07, 0.04, 0.06, lo=0.0),
    "second_polyp": _Param(0.0, 0.0, 0.35, lo=0.0, hi=1.0),  # probability of a second polyp
}
_POLYP_APPEARANCE = {
    "gain_r": _Param(1.0, 0.06, 0.15, log=True),
    "gain_g": _Param(1.0, 0.06, -0.04, log=True),
    "gain_b": _Param(1.0, 0.08, -0.5, log=True),
    "gamma": _Param(1.0, 0.08, -0.35, log=True),
    "light_falloff": _Param(1.0, 0.08, 0.3, log=True),  # >1: light reaches less far
    "vignetting": _Param(0.2, 0.07, 0.3, lo=0.0, hi=0.9),
    "blur_px": _Param(0.5, 0.2, 1.15, log=True),
    "noise": _Param(0.01, 0.25, 0.9, log=True),
}


def _polyp(rng, rng_app, rng_noise, size, sev_shape, sev_app):
    P = _draw(_POLYP_SHAPE, rng, sev_shape)
    A = _draw(_POLYP_APPEARANCE, rng_app, sev_app)
    S = size
    g = (np.arange(S, dtype=_F) + 0.5) / S
    yy, xx = g[:, None], g[None, :]
    lcx, lcy = rng.uniform(0.2, 0.8, 2)
    asp = rng.uniform(0.8, 1.25)
    dl = np.sqrt((xx - lcx) ** 2 + ((yy - lcy) * asp) ** 2)
    th = np.arctan2((yy - lcy) * asp, xx - lcx)
    d0 = rng.uniform(0.28, 0.4) * A["light_falloff"]
    illum = 1 - np.exp(-((dl / d0) ** 2))  # depth grows toward the lumen; light falls off
    # haustral folds: rings around the lumen, log-spaced like receding depth
    fh = _harmonics(rng, 3, kmin=1)
    wob = sum(0.35 * a * np.cos(k * th + p) for k, a, p in zip(*fh)) + 0.25 * _smooth_field(rng, (S, S), 3)
    phase = 2 * math.pi * rng.uniform(1.6, 2.4) * np.log(dl + 0.02) + wob * 2 + rng.uniform(0, 2 * math.pi)
    ps_ = np.sin(phase)
    folds = 1 + 0.22 * np.clip(ps_, 0, None) ** 2 - 0.35 * np.clip(-np.cos(phase + 0.6), 0, None) ** 4
    folds = 1 + (folds - 1) * np.clip(illum * 1.5, 0, 1)
    # mucosa colour with a fine vessel network
    tex = _smooth_field(rng_noise, (S, S), S / 5)
    net = np.exp(-((_smooth_field(rng_noise, (S, S), S / 10) / 0.06) ** 2)) * (0.5 + 0.5 * np.clip(tex, -1, 1))
    mucosa = np.array([0.85, 0.45, 0.38], _F) * _F(math.exp(rng.uniform(-0.08, 0.08)))
    img = mucosa[:, None, None] * (1 + 0.05 * tex)[None]
    img *= 1 - (0.18 * net)[None] * np.array([0.15, 1.0, 0.8], _F)[:, None, None]
    img *= (illum * folds)[None]

    # polyp(s): lobulated domes nearer the camera
    lab = np.zeros((S, S), np.int64)
    spec_zone = np.clip(folds - 1, 0, None) * 2 * illum
    polyps = []
    n_pol = 1 + int(rng.uniform() < P["second_polyp"])
    for k in range(2):  # always draw both, so severity never reshuffles the random stream
        ang = rng.uniform(0, 2 * math.pi)
        dist = rng.uniform(0.25, 0.42)
        pcx = float(np.clip(lcx + dist * math.cos(ang), 0.18, 0.82))
        pcy = float(np.clip(lcy + dist * math.sin(ang), 0.18, 0.82))
        rr = P["polyp_radius"] * (1.0 if k == 0 else rng.uniform(0.45, 0.75))
        p_ang = rng.uniform(0, math.pi)
        harm = _harmonics(rng, 4, decay=0.7)
        boost = rng.uniform(1.05, 1.3)
        tint = np.array([1.0, rng.uniform(0.93, 1.08), rng.uniform(0.93, 1.1)], _F)
        polyps.append((pcx, pcy, rr, p_ang, harm, boost, tint))
    for pcx, pcy, rr, p_ang, harm, boost, tint in polyps[:n_pol]:
        rho = _ellipse(xx, yy, pcx, pcy, rr, rr * P["polyp_aspect"], p_ang, harm, P["lobulation"] * 2)
        mask = rho < 1
        h = np.sqrt(np.clip(1 - rho**2, 0, 1)) * rr * S * 0.6
        gy, gx = np.gradient(h)
        nz = 1 / np.sqrt(1 + gx**2 + gy**2)
        pdl = math.hypot(pcx - lcx, (pcy - lcy) * asp)
        p_illum = max(0.8, 1 - math.exp(-((pdl / d0) ** 2))) * boost  # raised toward the light
        pit = _smooth_field(rng_noise, (S, S), S / 3)
        pcol = mucosa * tint * np.array([1.02, 1.05, 1.05], _F)
        s = _soft((1 - rho) * rr * S / 0.6)
        polyp_img = pcol[:, None, None] * (p_illum * (0.7 + 0.3 * nz**1.5) * (1 + 0.07 * pit))[None]
        shadow = 1 - 0.15 * np.exp(-np.clip(rho - 1, 0, None) / 0.12) * (rho >= 1)
        img = img * (shadow * (1 - s))[None] + polyp_img * s[None]
        lab[mask] = 1
        spec_zone = np.maximum(spec_zone, (nz > 0.85) * mask * 1.0)
    # specular highlights: small saturated spots on wet, camera-facing surfaces
    sf = _smooth_field(rng_noise, (S, S), S / 6)
    spec = np.clip((sf - 1.6) * 2.5, 0, 1) * np.clip(spec_zone, 0, 1)
    spec = ndimage.gaussian_filter(spec, 0.5 * S / 128)
    img += (1.2 * spec)[None]

    # ---- camera
    gains = np.array([A["gain_r"], A["gain_g"], A["gain_b"]], _F)
    img *= gains[:, None, None]
    rc = np.sqrt((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.71
    img *= (1 - A["vignetting"] * rc**2)[None]
    img = np.clip(img, 0, None) ** _F(A["gamma"])
    img = _blur(img, A["blur_px"] * S / 128, (1, 2))
    img += _F(A["noise"]) * rng_noise.standard_normal(img.shape, dtype=_F)
    if rng.uniform() < 0.7:  # the octagonal black corners of the video frame
        frame = (np.abs(xx - 0.5) + np.abs(yy - 0.5)) < rng.uniform(0.8, 0.9)
        img *= frame[None]
        lab[~frame] = 0
    meta_anat = dict(P, polyps=n_pol)
    return img, lab, (1.0, 1.0), meta_anat, A


# ----------------------------------------------------------------------------------------------
# breast ultrasound: B-mode, linear probe
# ----------------------------------------------------------------------------------------------

_US_SHAPE = {
    "depth_mm": _Param(42.0, 0.12, log=True),
    "lesion_width": _Param(0.26, 0.28, 0.3, log=True),  # fraction of image width
    "aspect_add": _Param(0.0, 0.0, 0.22),  # extra height/width (taller-than-wide)
    "irregularity": _Param(0.0, 0.0, 0.05),
    "malignant_prob": _Param(0.5, 0.0, 0.2, lo=0.0, hi=1.0),
}
_US_APPEARANCE = {
    "speckle_scale": _Param(1.0, 0.12, 0.55, log=True),  # PSF size (transducer frequency)
    "grey_map": _Param(1.0, 0.08, 0.35, log=True),  # exponent of the display curve after log compression
    "tgc_tilt_db": _Param(0.0, 2.0, 8.0),  # brightness change from top to bottom
    "noise_floor": _Param(0.03, 0.25, 0.35, log=True),  # electronic noise, relative to tissue
    "smoothing_px": _Param(0.3, 0.2, 0.9, log=True),  # speckle-reduction filter (at 128 px)
}


def _breast_us(rng, rng_app, rng_noise, size, sev_shape, sev_app):
    P = _draw(_US_SHAPE, rng, sev_shape)
    A = _draw(_US_APPEARANCE, rng_app, sev_app)
    S = size
    sp = P["depth_mm"] / S
    g = (np.arange(S, dtype=_F) + 0.5) / S
    zz, xx = g[:, None], g[None, :]

    def wavy(amp, cells=3):
        return amp * _smooth_field(rng, (S,), cells)[None, :]

    skin_b = 0.03 + wavy(0.005)
    fat_b = rng.uniform(0.12, 0.26) + wavy(0.03)
    gland_b = fat_b + rng.uniform(0.28, 0.42) + wavy(0.05, 4)
    retro_b = gland_b + rng.uniform(0.03, 0.06) + wavy(0.01)
    mus_b = retro_b + rng.uniform(0.09, 0.14) + wavy(0.02)

    # intensity reflectivity of each tissue (speckle-free echogenicity)
    echo = np.full((S, S), 0.04, _F)  # chest wall, deep
    striae = 1 + 0.8 * np.sin(2 * math.pi * (zz * 128 / 3.0 + 0.6 * _smooth_field(rng, (S, S), 3)))
    echo = np.where(zz < mus_b, 0.12 * np.clip(striae, 0.2, None), echo)
    echo = np.where(zz < retro_b, 0.07, echo)
    lobules = _soft((_smooth_field(rng, (S, S), (11, 18)) - 0.5) * 8)  # fat lobules in the gland
    gland = 0.7 * np.exp(0.35 * _smooth_field(rng, (S, S), 16))
    echo = np.where(zz < gland_b, gland * (1 - lobules) + 0.05 * lobules, echo)
    lig = np.exp(-((_smooth_field(rng, (S, S), (9, 18)) / 0.1) ** 2))  # Cooper's ligaments
    echo = np.where(zz < fat_b, 0.06 + 0.5 * lig, echo)
    echo = np.where(zz < skin_b, 0.6, echo).astype(_F)
    for b, amp_i in ((skin_b, 1.0), (retro_b, 0.6), (mus_b, 0.8)):  # bright interfaces (dermis, fascia)
        echo += amp_i * np.exp(-(((zz - b) * 128 / 1.2) ** 2))
    # a rib with its shadow, sometimes
    rib_shadow = np.ones((S, S), _F)
    if rng.uniform() < 0.35:
        rbx, rbz = rng.uniform(0.1, 0.9), float(np.mean(mus_b)) + rng.uniform(0.08, 0.14)
        rho_rib = _ellipse(xx, zz, rbx, rbz, 0.14, 0.05)
        cortex = (rho_rib < 1) & (rho_rib > 0.75) & (zz < rbz)  # the bright anterior cortex
        echo = np.where(cortex, 1.2, echo)
        below = np.maximum.accumulate(rho_rib < 1, axis=0)
        rib_shadow = np.where(below & ~cortex, 0.05, 1.0).astype(_F)

    # lesion
    malignant = rng.uniform() < P["malignant_prob"]
    w = P["lesion_width"] / 2
    aspect = (rng.uniform(0.75, 1.05) if malignant else rng.uniform(0.5, 0.75)) + P["aspect_add"]
    h = w * aspect
    lx = rng.uniform(0.3, 0.7)
    lz = float(np.clip(np.mean(fat_b) + h + rng.uniform(0.0, 0.12), 0.1 + h, 0.85 - h))
    h_smooth = _harmonics(rng, 3)
    h_spic = _harmonics(rng, 12, kmin=5, decay=0.4)
    amp_s = (0.07 if malignant else 0.03) + P["irregularity"]
    rho = _ellipse(xx, zz, lx, lz, w, h, rng.uniform(-0.25, 0.25), h_smooth, amp_s)
    if malignant:
        th_l = np.arctan2(zz - lz, xx - lx)
        spic = sum(a * np.cos(k * th_l + p) for k, a, p in zip(*h_spic))
        rho = rho / np.maximum(1 + (0.035 + 0.7 * P["irregularity"]) * spic, 0.3)
    lesion = rho < 1
    # from nearly anechoic to mildly hypoechoic, with internal echoes
    inside = math.exp(rng.uniform(math.log(0.004), math.log(0.05))) * np.exp(0.6 * _smooth_field(rng, (S, S), 13))
    # margins: sharp-ish for malignant (their irregularity is in the outline), blurred for benign
    edge_px = (0.6 if malignant else rng.uniform(0.8, 2.5)) * S / 128
    m = _soft((1 - rho) * w * S / edge_px)
    echo = echo * (1 - m) + inside * m
    if malignant:
        echo += 0.35 * ((rho >= 1) & (rho < 1.15))  # echogenic halo
    col = np.maximum.accumulate(lesion, axis=0) & ~lesion
    col = ndimage.gaussian_filter1d(col.astype(_F), 2.0 * S / 128, axis=1)
    if malignant:
        post = 1 - (1 - rng.uniform(0.15, 0.4)) * col
    else:
        post = 1 + rng.uniform(0.8, 1.6) * col * np.exp(-np.clip(zz - lz - h, 0, None) / 0.25)
    echo = echo * post * rib_shadow
    lab = lesion.astype(np.int64)

    # ---- scanner: speckle, attenuation/TGC, noise, log compression
    sig_ax = A["speckle_scale"] * 0.12 / sp  # axial PSF sigma, pixels
    sig_lat = A["speckle_scale"] * 0.25 / sp  # lateral PSF sigma, pixels
    scat = rng_noise.standard_normal((2, S, S), dtype=_F)
    re = ndimage.gaussian_filter(scat[0], (sig_ax, sig_lat), truncate=3.0)
    im = ndimage.gaussian_filter(scat[1], (sig_ax, sig_lat), truncate=3.0)
    inten = re**2 + im**2  # fully developed speckle: exponential intensity
    inten /= inten.mean() + 1e-8
    tissue = ndimage.gaussian_filter(echo, (0.5 * sig_ax, 0.5 * sig_lat))
    inten = np.clip(tissue, 0, None) * inten
    inten *= 10 ** ((A["tgc_tilt_db"] * (zz - 0.5) - 8.0 * zz) / 10)  # attenuation left after TGC
    nre, nim = rng_noise.standard_normal((2, S, S), dtype=_F)
    inten += A["noise_floor"] ** 2 * (nre**2 + nim**2)
    inten = ndimage.gaussian_filter(inten, 0.6 * S / 128)  # scan conversion to the display grid
    ref = np.percentile(inten, 99.5)
    db = 10 * np.log10(inten / ref + 1e-9)
    img = np.clip(1 + db / 55.0, 0, None) ** _F(A["grey_map"])  # 55 dB dynamic range, then grey map
    img = _blur(img.astype(_F), A["smoothing_px"] * S / 128)
    meta_anat = dict(P, malignant=bool(malignant))
    return img[None], lab, (sp, sp), meta_anat, A


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------

_GENERATORS = {
    "cardiac": _cardiac,
    "abdomen": _abdomen,
    "fundus": _fundus,
    "polyp": _polyp,
    "breast_us": _breast_us,
}

_DESCRIPTIONS = {
    ("cardiac", "source"): "short-axis cine MRI stacks, base to apex, mild sequence/coil/SNR variability",
    ("cardiac", "target"): "another MRI vendor: other tissue contrast curve, stronger coil bias field, "
                           "more Rician noise, coarser resolution",
    ("cardiac", "shape_shift"): "hypertrophic hearts: thicker myocardium, smaller LV cavity, larger RV",
    ("abdomen", "source"): "portal-venous CT slabs with eight organs, mild dose/kernel variability",
    ("abdomen", "target"): "another CT protocol: weaker iodine enhancement, more and blotchier noise, "
                           "softer kernel, beam-hardening cupping",
    ("abdomen", "shape_shift"): "enlarged liver and spleen, distended gallbladder, small kidneys, thin pancreas",
    ("fundus", "source"): "colour fundus photographs of the optic nerve head, mild camera variability",
    ("fundus", "target"): "another fundus camera: colour balance, tone curve, vignetting, defocus, noise",
    ("fundus", "shape_shift"): "glaucoma-like discs: larger cup-to-disc ratio, larger, more oval discs",
    ("polyp", "source"): "colonoscopy frames with one polyp, mild endoscope variability",
    ("polyp", "target"): "another endoscope: warmer white balance, tone curve, light fall-off, blur, noise",
    ("polyp", "shape_shift"): "smaller, flatter, more irregular polyps, sometimes two",
    ("breast_us", "source"): "linear-probe breast ultrasound with one hypoechoic lesion, mild scanner variability",
    ("breast_us", "target"): "another scanner/transducer: larger speckle, other grey map and TGC, "
                             "more electronic noise, more smoothing",
    ("breast_us", "shape_shift"): "larger, more irregular, taller-than-wide, more malignant-like lesions",
}


def describe(task: str, domain: str = "source") -> str:
    """One line saying what ``make_cases(task, domain)`` simulates (for plot titles and tables)."""
    spec = get_task(task)
    _check_domain(spec, domain)
    return _DESCRIPTIONS[(spec.key, domain)]


def _check_domain(spec, domain):
    valid = tuple(d for d in spec.synthetic_domains if d in _DOMAIN_CODE)
    if domain not in valid:
        raise ValueError(f"unknown synthetic domain {domain!r} for task {spec.key!r}; choose one of {list(valid)}")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def make_cases(
    task: str,
    domain: str = "source",
    n_cases: int = 20,
    image_size: int = 128,
    seed: int = 0,
    severity: float = 1.0,
) -> list[Case]:
    """Generate ``n_cases`` synthetic cases of ``task`` in ``domain`` (see the module docstring).

    Args:
        task: one of ``sikd_utils.data.TASKS`` (cardiac, abdomen, fundus, polyp, breast_us).
        domain: ``"source"``, ``"target"`` (appearance shift) or ``"shape_shift"`` (anatomy shift).
        n_cases: number of cases; case ``i`` does not depend on ``n_cases``.
        image_size: in-plane size H = W in pixels (at least 32); 3D tasks get D = 6..12 slices.
        seed: non-negative integer; with task, domain and case index it seeds every draw.
        severity: shift strength (at least 0) for ``target`` and ``shape_shift``: 0 none, 1 default,
            2 severe; ignored by ``source``.

    Returns:
        A list of ``Case`` objects with images normalised to [0, 1] by ``normalize_percentile``,
        ``domain`` set, ``dataset = "synthetic-<task>"`` and ``case_id = "<task>-<domain>-<i:03d>"``.
    """
    spec = get_task(task)
    _check_domain(spec, domain)
    n_cases = _check_int("n_cases", n_cases, 0)
    image_size = _check_int("image_size", image_size, 32)
    seed = _check_int("seed", seed, 0)
    try:
        severity = float(severity)
    except (TypeError, ValueError):
        raise ValueError(f"severity must be a number >= 0, got {severity!r}") from None
    if not math.isfinite(severity) or severity < 0:
        raise ValueError(f"severity must be a finite number >= 0, got {severity!r}")

    gen = _GENERATORS[spec.key]
    sev_shape = severity if domain == "shape_shift" else 0.0
    sev_app = severity if domain == "target" else 0.0
    cases = []
    for i in range(n_cases):
        streams = [
            np.random.default_rng(np.random.SeedSequence([seed, _TASK_CODE[spec.key], _DOMAIN_CODE[domain], i, s]))
            for s in (_ANATOMY, _APPEARANCE, _NOISE)
        ]
        image, label, spacing, anatomy, appearance = gen(*streams, image_size, sev_shape, sev_app)
        image = normalize_percentile(np.asarray(image, dtype=_F))
        meta = {
            "seed": seed,
            "severity": severity,
            "index": i,
            "task": spec.key,
            "anatomy": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in anatomy.items()},
            "appearance": {k: round(v, 6) for k, v in appearance.items()},
        }
        case = Case(
            image=image,
            label=label,
            spacing=spacing,
            case_id=f"{spec.key}-{domain}-{i:03d}",
            domain=domain,
            dataset=f"synthetic-{spec.key}",
            meta=meta,
        )
        cases.append(case.check_classes(spec.num_classes))
    return cases
