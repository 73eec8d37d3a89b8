"""Colonoscopy frames with one (or two) polyps. See the package docstring for what each domain changes."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .params import _Param, _draw, _F
from .fields import _smooth_field, _harmonics, _blur
from .shapes import _ellipse, _soft
from .difficulty import Hardening


SHAPE = {
    "polyp_radius": _Param(0.16, 0.28, -0.45, log=True),  # fraction of image width
    "polyp_aspect": _Param(0.85, 0.12, -0.1, lo=0.3, hi=1.0),
    "lobulation": _Param(0.07, 0.04, 0.06, lo=0.0),
    "second_polyp": _Param(0.0, 0.0, 0.35, lo=0.0, hi=1.0),  # probability of a second polyp
}
APPEARANCE = {
    "gain_r": _Param(1.0, 0.06, 0.15, log=True),
    "gain_g": _Param(1.0, 0.06, -0.04, log=True),
    "gain_b": _Param(1.0, 0.08, -0.5, log=True),
    "gamma": _Param(1.0, 0.08, -0.35, log=True),
    "light_falloff": _Param(1.0, 0.08, 0.3, log=True),  # >1: light reaches less far
    "vignetting": _Param(0.2, 0.07, 0.3, lo=0.0, hi=0.9),
    "blur_px": _Param(0.5, 0.2, 1.15, log=True),
    "noise": _Param(0.01, 0.25, 0.9, log=True),
}


DESCRIPTIONS = {
    "source": 'colonoscopy frames with one polyp, mild endoscope variability',
    "target": 'another endoscope: warmer white balance, tone curve, light fall-off, blur, noise',
    "shape_shift": 'smaller, flatter, more irregular polyps, sometimes two',
}


DIFFICULTY = (
    Hardening("small and flat polyps", "polyps up to 40 % smaller and 60 % flatter, with a softer edge",
              "diminutive (< 5 mm) and flat or sessile lesions are the ones missed in practice: little relief, "
              "no shadowed rim"),
    Hardening("mucosa-coloured polyps", "the polyp's colour and brightness 70 % of the way to the mucosa's",
              "sessile serrated lesions and flat adenomas have the colour of the surrounding mucosa"),
    Hardening("polyp-like folds", "up to three unlabelled domes with the polyp's colour, shading and texture",
              "a fold seen end-on, a prominent fold or the ileocaecal valve looks like a polyp"),
    Hardening("bubbles", "up to ten unlabelled bubbles with bright rims and highlights, some over the polyp",
              "air bubbles and foam in poorly prepared bowels are round, bright-edged and polyp-sized"),
)


def _dome(img, xx, yy, S, centre, rr, aspect, angle, harm, lobulation, brightness, colour, pit, height=0.6,
          edge=0.6):
    """A raised dome (polyp or fold) blended into ``img``: lit from the scope, shaded at its edges."""
    pcx, pcy = centre
    rho = _ellipse(xx, yy, pcx, pcy, rr, rr * aspect, angle, harm, lobulation)
    h = np.sqrt(np.clip(1 - rho**2, 0, 1)) * rr * S * height
    gy, gx = np.gradient(h)
    nz = 1 / np.sqrt(1 + gx**2 + gy**2)
    s = _soft((1 - rho) * rr * S / edge)
    dome = colour[:, None, None] * (brightness * (0.7 + 0.3 * nz**1.5) * (1 + 0.07 * pit))[None]
    shadow = 1 - 0.15 * np.exp(-np.clip(rho - 1, 0, None) / 0.12) * (rho >= 1)
    return img * (shadow * (1 - s))[None] + dome * s[None], rho < 1, nz


def _folds_like_polyps(img, hard, xx, yy, S, mucosa, lcx, lcy, d0, asp):
    """Unlabelled domes with a polyp's look, painted before the polyps (which may cover them)."""
    rng, t = hard.rng, hard.t
    for k in range(3):
        centre = tuple(rng.uniform(0.15, 0.85, 2))
        rr = rng.uniform(0.05, 0.12)
        look = (rng.uniform(0.7, 1.0), _harmonics(rng, 4, decay=0.7), rng.uniform(0, math.pi), rng.uniform(1.0, 1.25))
        pit = _smooth_field(rng, (S, S), S / 3)
        if k >= round(3 * t):
            continue
        dl = math.hypot(centre[0] - lcx, (centre[1] - lcy) * asp)
        bright = max(0.8, 1 - math.exp(-((dl / d0) ** 2))) * look[3]
        img, _, _ = _dome(img, xx, yy, S, centre, rr, look[0], look[2], look[1], 0.1, bright,
                          mucosa * np.array([1.02, 1.05, 1.05], _F), pit, height=0.5)
    return img


def _bubbles(img, hard, xx, yy, S):
    """Air bubbles: thin bright rims with a highlight, slightly lifting what is behind them."""
    rng = hard.rng
    n = int(round(10 * hard.t))
    for k in range(10):
        bx, by, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.012, 0.04)
        if k >= n:
            continue
        d = np.sqrt((xx - bx) ** 2 + (yy - by) ** 2) / r
        rim = np.exp(-(((d - 1) * r * S / 0.9) ** 2))
        glint = np.exp(-(((xx - bx + 0.35 * r) ** 2 + (yy - by + 0.35 * r) ** 2) / (0.25 * r) ** 2))
        img = img * (1 + 0.08 * (d < 1))[None] + (0.45 * rim + 0.8 * glint)[None]
    return img


def generate(rng, rng_app, rng_noise, size, sev_shape, sev_app, hard=None):
    """One frame; ``hard`` (a :class:`~.difficulty.Hard`) adds the difficulty level's hardenings."""
    P = _draw(SHAPE, rng, sev_shape)
    A = _draw(APPEARANCE, rng_app, sev_app)
    t = 0.0
    if hard is not None:
        t = hard.t
        P = dict(P, polyp_radius=P["polyp_radius"] * math.exp(-0.5 * t * hard.rng.uniform(0.3, 1.0)))
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
    if hard is not None:
        img = _folds_like_polyps(img, hard, xx, yy, S, mucosa, lcx, lcy, d0, asp)
    for pcx, pcy, rr, p_ang, harm, boost, tint in polyps[:n_pol]:
        pdl = math.hypot(pcx - lcx, (pcy - lcy) * asp)
        pit = _smooth_field(rng_noise, (S, S), S / 3)
        pcol = mucosa * tint * np.array([1.02, 1.05, 1.05], _F)
        height, edge = 0.6, 0.6
        if hard is not None:  # flat, mucosa-coloured: little relief, a soft edge, hardly any tint or lift
            boost, height, edge = 1 + (boost - 1) * (1 - 0.7 * t), 0.6 * (1 - 0.6 * t), 0.6 * (1 + 2 * t)
            pcol = pcol + _F(0.7 * t) * (mucosa - pcol)
        p_illum = max(0.8, 1 - math.exp(-((pdl / d0) ** 2))) * boost  # raised toward the light
        img, mask, nz = _dome(img, xx, yy, S, (pcx, pcy), rr, P["polyp_aspect"], p_ang, harm, P["lobulation"] * 2,
                              p_illum, pcol, pit, height, edge)
        lab[mask] = 1
        spec_zone = np.maximum(spec_zone, (nz > 0.85) * mask * 1.0)
    # specular highlights: small saturated spots on wet, camera-facing surfaces
    sf = _smooth_field(rng_noise, (S, S), S / 6)
    spec = np.clip((sf - 1.6) * 2.5, 0, 1) * np.clip(spec_zone, 0, 1)
    spec = ndimage.gaussian_filter(spec, 0.5 * S / 128)
    img += (1.2 * spec)[None]
    if hard is not None:
        img = _bubbles(img, hard, xx, yy, S)

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
