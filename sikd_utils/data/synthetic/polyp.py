"""Colonoscopy frames with one (or two) polyps. See the package docstring for what each domain changes."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .params import _Param, _draw, _F
from .fields import _smooth_field, _harmonics, _blur
from .shapes import _ellipse, _soft


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


def generate(rng, rng_app, rng_noise, size, sev_shape, sev_app):
    P = _draw(SHAPE, rng, sev_shape)
    A = _draw(APPEARANCE, rng_app, sev_app)
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
