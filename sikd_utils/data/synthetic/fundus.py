"""Colour fundus photographs of the optic nerve head. See the package docstring for what each domain changes."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .params import _Param, _draw, _F
from .fields import _smooth_field, _harmonics, _blur
from .shapes import _ellipse, _soft, _render_curves, _walk
from .difficulty import Hardening


SHAPE = {
    "disc_diameter": _Param(0.2, 0.12, 0.12, log=True),  # vertical, fraction of image width
    "disc_aspect": _Param(1.08, 0.05, 0.1),  # height / width
    "cup_disc_ratio": _Param(0.45, 0.12, 0.2, lo=0.15, hi=0.85),
}
APPEARANCE = {
    "gain_r": _Param(1.0, 0.06, -0.2, log=True),
    "gain_g": _Param(1.0, 0.06, 0.1, log=True),
    "gain_b": _Param(1.0, 0.08, 0.3, log=True),
    "gamma": _Param(1.0, 0.08, 0.25, log=True),
    "vignetting": _Param(0.3, 0.08, 0.15, lo=0.0, hi=0.9),
    "uneven": _Param(0.06, 0.03, 0.05, lo=0.0),
    "blur_px": _Param(0.5, 0.2, 0.6, log=True),  # at 128 px
    "noise": _Param(0.012, 0.25, 0.45, log=True),
}


DESCRIPTIONS = {
    "source": 'colour fundus photographs of the optic nerve head, mild camera variability',
    "target": 'another fundus camera: colour balance, tone curve, vignetting, defocus, noise',
    "shape_shift": 'glaucoma-like discs: larger cup-to-disc ratio, larger, more oval discs',
}


DIFFICULTY = (
    Hardening("wider anatomy", "disc size and cup-to-disc ratio spread about 1.4x wider (small discs, small cups)",
              "disc area varies fivefold between people; small, crowded discs with small cups are hard to read"),
    Hardening("pale, shallow cup", "cup colour 55 % of the way to the rim's, its edge a slope 3x wider",
              "the cup is a depression; its margin is judged from vessel bends and depth, and pallor often "
              "does not match it"),
    Hardening("soft disc margin", "the disc's edge blurred over 3x more pixels",
              "tilted and myopic discs have no sharp scleral ring to mark where the rim ends"),
    Hardening("peripapillary atrophy", "a pale, rim-coloured crescent beside the disc in most eyes, wider",
              "beta-zone atrophy exposes white sclera next to the disc and is mistaken for rim"),
    Hardening("vessels over the rim", "extra thick vessels crossing rim and cup",
              "the central vessels cover the rim and cup edge where they leave the disc"),
)


def _widen(P: dict, hard) -> dict:
    u = hard.rng.uniform(-1.0, 1.0, 2)
    return dict(P, disc_diameter=P["disc_diameter"] * math.exp(0.2 * hard.t * u[0]),
                cup_disc_ratio=float(np.clip(P["cup_disc_ratio"] + 0.12 * hard.t * u[1], 0.15, 0.85)))


def generate(rng, rng_app, rng_noise, size, sev_shape, sev_app, hard=None):
    """One photograph; ``hard`` (a :class:`~.difficulty.Hard`) adds the difficulty level's hardenings."""
    P = _draw(SHAPE, rng, sev_shape)
    A = _draw(APPEARANCE, rng_app, sev_app)
    t = 0.0
    if hard is not None:
        P, t = _widen(P, hard), hard.t
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
    if hard is not None:
        img = _atrophy(img, hard, rho_d, xx, yy, dcx, dcy, side, S)
    px_d = dh * S  # disc radius in pixels
    sd = _soft((1 - rho_d) * px_d / (0.6 * (1 + 2 * t)))
    sc = _soft((1 - rho_c) * ch * S / (max(0.7, 0.12 * ch * S) * (1 + 2 * t)))  # the cup edge is a slope
    rim_rgb = np.array([0.93, 0.6, 0.4], _F) * _F(math.exp(rng.uniform(-0.06, 0.06)))
    cup_rgb = np.array([0.98, 0.86, 0.7], _F)
    if hard is not None:  # a shallow, pale-poor cup: its colour moves toward the rim's (still paler)
        cup_rgb = cup_rgb + _F(0.55 * t) * (rim_rgb - cup_rgb)
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
    if hard is not None:  # thick vessels leaving the cup across the rim, above and below
        for k in range(4):
            th0 = (-1) ** k * math.pi / 2 + hard.rng.uniform(-0.9, 0.9)
            v, _ = _walk(hard.rng, ccx, ccy, th0, dh * hard.rng.uniform(1.3, 2.2), step, hard.rng.uniform(-3, 3),
                         0.5, 0.02, 0.3, 0.85)
            if k < round(4 * t):
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


def _atrophy(img, hard, rho_d, xx, yy, dcx, dcy, side, S):
    """Beta-zone peripapillary atrophy: a pale, rim-coloured crescent outside the disc (label unchanged)."""
    rng, t = hard.rng, hard.t
    present = rng.uniform() < 0.4 + 0.6 * t
    width = rng.uniform(0.2, 0.45) * t
    centre = (math.pi if side > 0 else 0.0) + rng.uniform(-0.8, 0.8)  # mostly on the temporal side
    spread = rng.uniform(0.0, 0.6)
    theta = np.arctan2(yy - dcy, xx - dcx)
    sector = np.cos(theta - centre) > 0.3 - spread
    zone = (rho_d >= 1) & (rho_d < 1 + width) & sector & present
    soft = ndimage.gaussian_filter(zone.astype(_F), 0.8 * S / 128)
    colour = np.array([0.92, 0.62, 0.45], _F)  # sclera seen through atrophic retina: close to the rim
    return img * (1 - 0.8 * soft)[None] + (0.8 * soft)[None] * colour[:, None, None]
