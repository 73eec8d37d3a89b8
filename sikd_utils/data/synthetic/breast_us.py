"""B-mode breast ultrasound from a linear probe, simulated the way a scanner forms it. See the package docstring for what each domain changes."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .params import _Param, _draw, _F
from .fields import _smooth_field, _harmonics, _blur
from .shapes import _ellipse, _soft
from .difficulty import Hardening


SHAPE = {
    "depth_mm": _Param(42.0, 0.12, log=True),
    "lesion_width": _Param(0.26, 0.28, 0.3, log=True),  # fraction of image width
    "aspect_add": _Param(0.0, 0.0, 0.22),  # extra height/width (taller-than-wide)
    "irregularity": _Param(0.0, 0.0, 0.05),
    "malignant_prob": _Param(0.5, 0.0, 0.2, lo=0.0, hi=1.0),
}
APPEARANCE = {
    "speckle_scale": _Param(1.0, 0.12, 0.55, log=True),  # PSF size (transducer frequency)
    "grey_map": _Param(1.0, 0.08, 0.35, log=True),  # exponent of the display curve after log compression
    "tgc_tilt_db": _Param(0.0, 2.0, 8.0),  # brightness change from top to bottom
    "noise_floor": _Param(0.03, 0.25, 0.35, log=True),  # electronic noise, relative to tissue
    "smoothing_px": _Param(0.3, 0.2, 0.9, log=True),  # speckle-reduction filter (at 128 px)
}


DESCRIPTIONS = {
    "source": 'linear-probe breast ultrasound with one hypoechoic lesion, mild scanner variability',
    "target": 'another scanner/transducer: larger speckle, other grey map and TGC, more electronic noise, more smoothing',
    "shape_shift": 'larger, more irregular, taller-than-wide, more malignant-like lesions',
}


DIFFICULTY = (
    Hardening("small lesions", "lesions up to 40 % narrower", "screening finds small lesions, a few speckle cells "
              "across"),
    Hardening("nearly isoechoic lesions", "the lesion's echo level 75 % of the way to fat's",
              "many solid lesions are only mildly hypoechoic: close to the fat lobules around them"),
    Hardening("fat lobules and cysts", "more and larger hypoechoic fat lobules, and up to three unlabelled cysts",
              "fat lobules and simple cysts are dark, round and lesion-sized; they are not the tumour"),
    Hardening("acoustic shadows", "up to four dark columns under ligaments and lesion edges",
              "Cooper's ligaments and refraction at curved edges cast shadows that hide tissue and merge with "
              "the lesion's lower margin"),
    Hardening("indistinct margins", "the lesion's edge blurred over 4x more pixels",
              "microlobulated and indistinct margins (BI-RADS) leave the outline to the reader"),
)


def _cysts_and_shadows(echo, hard, lesion, xx, zz, S, gland_top):
    """Unlabelled dark look-alikes: simple cysts with posterior enhancement, and shadow columns."""
    rng, t = hard.rng, hard.t
    for k in range(3):
        cx, cz, r = rng.uniform(0.1, 0.9), gland_top + rng.uniform(0.05, 0.35), rng.uniform(0.03, 0.07)
        if k >= round(3 * t):
            continue
        rho = _ellipse(xx, zz, cx, cz, r * 1.3, r, rng.uniform(-0.2, 0.2))
        cyst = (rho < 1) & ~ndimage.binary_dilation(lesion, iterations=2)
        m = ndimage.gaussian_filter(cyst.astype(_F), 0.7 * S / 128)
        below = ndimage.gaussian_filter1d((np.maximum.accumulate(cyst, axis=0) & ~cyst).astype(_F), 2.0 * S / 128, 1)
        echo = echo * (1 - 0.97 * m) * (1 + 0.8 * below)
    for k in range(4):
        sx, top, width = rng.uniform(0.05, 0.95), rng.uniform(0.1, 0.45), rng.uniform(0.01, 0.035)
        if k >= round(4 * t):
            continue
        col = np.exp(-(((xx - sx) / width) ** 2)) * _soft((zz - top) * S / 2.0)
        echo = echo * (1 - 0.85 * col)
    return echo


def generate(rng, rng_app, rng_noise, size, sev_shape, sev_app, hard=None):
    """One B-mode frame; ``hard`` (a :class:`~.difficulty.Hard`) adds the difficulty level's hardenings."""
    P = _draw(SHAPE, rng, sev_shape)
    A = _draw(APPEARANCE, rng_app, sev_app)
    t, shrink = 0.0, 1.0
    if hard is not None:
        t, shrink = hard.t, math.exp(-0.5 * hard.t * hard.rng.uniform(0.2, 1.0))
        P = dict(P, lesion_width=P["lesion_width"] * shrink)
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
    if hard is not None:  # more and larger lobules
        lobules = np.maximum(lobules, _soft((_smooth_field(hard.rng, (S, S), (8, 12)) - 1.5 + 0.9 * t) * 8))
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
    h_place = h if hard is None else h / shrink  # a smaller lesion sits where the larger one would
    lz = float(np.clip(np.mean(fat_b) + h_place + rng.uniform(0.0, 0.12), 0.1 + h_place, 0.85 - h_place))
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
    if hard is not None:  # nearly isoechoic, with indistinct margins
        inside = inside + _F(0.75 * t) * (_F(0.08) - inside)
        edge_px = edge_px * (1 + 3 * t)
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
    if hard is not None:
        echo = _cysts_and_shadows(echo, hard, lesion, xx, zz, S, float(np.mean(fat_b)))
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
