"""Short-axis cine MRI stacks (bSSFP), base to apex. See the package docstring for what each domain changes."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .params import _Param, _draw, _F
from .fields import _smooth_field, _field3d, _harmonics, _blur
from .shapes import _ellipse, _blob
from .difficulty import Hardening, through_plane_mix


SHAPE = {
    "fov_mm": _Param(205.0, 0.08, log=True),
    "long_axis_mm": _Param(88.0, 0.1, log=True),
    "lv_radius_mm": _Param(25.0, 0.14, -0.16, log=True),  # end-diastolic cavity radius at the base
    "myo_thickness_mm": _Param(8.0, 0.14, 0.35, log=True),
    "rv_scale": _Param(1.0, 0.14, 0.25, log=True),
    "lv_ellipticity": _Param(1.04, 0.04, 0.05),
    "phase": _Param(0.5, 0.5, lo=0.0, hi=1.0),  # 0 end-diastole ... 1 end-systole
}
APPEARANCE = {
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


DESCRIPTIONS = {
    "source": 'short-axis cine MRI stacks, base to apex, mild sequence/coil/SNR variability',
    "target": 'another MRI vendor: other tissue contrast curve, stronger coil bias field, more Rician noise, coarser resolution',
    "shape_shift": 'hypertrophic hearts: thicker myocardium, smaller LV cavity, larger RV',
}


DIFFICULTY = (
    Hardening("wider anatomy", "heart size, wall thickness and RV size spread about 1.4x wider",
              "real cohorts mix dilated, hypertrophic and infarcted hearts (ACDC has five diagnostic groups)"),
    Hardening("trabeculae and papillary muscles",
              "a dark, myocardium-like trabecular layer up to 30 % of the cavity radius, larger papillary muscles "
              "and RV trabeculae, all labelled as cavity",
              "the endocardial border runs through trabeculae and papillary muscles of myocardial signal; ACDC "
              "labels them as cavity, so the boundary is a convention the image does not show"),
    Hardening("lower blood-myocardium contrast", "blood signal 30 % closer to myocardium, order kept",
              "slow flow near the apex and walls, through-plane saturation and lower field strength dim the blood "
              "pool"),
    Hardening("basal atrium and outflow tract", "at the base, a blood-bright atrium/outflow tract abutting the LV "
              "and RV, labelled background",
              "basal slices cut the left atrium and the LV outflow tract: blood of the same signal that is not "
              "ventricle, the most disagreed-upon slices of ACDC"),
    Hardening("through-plane partial volume", "each slice takes 35 % of its neighbours' signal",
              "slices of 5-10 mm are thicker than the wall is curved: edges at base and apex blur across slices"),
)


def _widen(P: dict, hard) -> dict:
    """More varied hearts: the anatomy parameters move by up to about 35 % more than in the source."""
    u = hard.rng.uniform(-1.0, 1.0, 3)
    return dict(P, lv_radius_mm=P["lv_radius_mm"] * math.exp(0.3 * hard.t * u[0]),
                myo_thickness_mm=P["myo_thickness_mm"] * math.exp(0.3 * hard.t * u[1]),
                rv_scale=P["rv_scale"] * math.exp(0.3 * hard.t * u[2]))


def _dimmer_blood(t: float) -> dict:
    """Tissue signals with blood closer to myocardium (LV > RV > MYO kept)."""
    return dict(_MR, lv_blood=_MR["lv_blood"] - 0.3 * t, rv_blood=_MR["rv_blood"] - 0.25 * t,
                blood_aorta=_MR["blood_aorta"] - 0.3 * t, myo=_MR["myo"] + 0.05 * t)


def anatomy(rng, rng_noise, size, sev_shape, hard=None) -> dict:
    """The scene: tissue signal, labels and the scanner's noise draws (no appearance parameter is used here).

    ``hard`` (a :class:`~.difficulty.Hard`) adds the difficulty level's hardenings; None is level 0.
    """
    P = _draw(SHAPE, rng, sev_shape)
    mr = _MR
    if hard is not None:
        P, mr = _widen(P, hard), _dimmer_blood(hard.t)
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
    sig = np.full((size, size, d), mr["air"], _F)
    sig[body] = mr["fat"]
    sig[(rho_b < 1 - fat_f)] = mr["muscle"]
    sig[inner] = mr["soft"]
    sig[fat_patch] = mr["fat"]
    lung_sig = np.where(lung_tex > 2.0, mr["lung_vessel"], mr["lung"]).astype(_F)
    sig[lungs] = lung_sig[lungs][:, None]
    sig[liver] = mr["liver"]
    sig[paraspinal] = mr["muscle"]
    sig[vert] = mr["cortex"]
    sig[vert_marrow] = mr["marrow"]
    sig[canal] = mr["csf"]
    sig[aorta] = mr["blood_aorta"]
    sig[sternum] = mr["marrow"]
    guard = (rho_epi < 1.25) | (rho_rvw < 1.12)
    heart_zone = guard & ~epi & ~rv & ~rv_wall
    sig[heart_zone & (sig < 0.2)] = mr["soft"]  # no lung touching the heart
    sig[epi_fat] = mr["fat"]
    sig[rv_wall] = mr["myo"]
    sig[epi] = mr["myo"]
    sig[cav] = mr["lv_blood"]
    sig[pap] = mr["papillary"]
    sig[rv] = mr["rv_blood"]

    lab = np.zeros((size, size, d), np.int64)
    lab[epi] = 2
    lab[cav] = 3
    lab[rv] = 1
    if hard is not None:
        sig = _harden_heart(sig, lab, hard, mr, dict(c=c, sp=sp, tp=tp, hx=hx, hy=hy, phi=phi, R=R, rho_cav=rho_cav,
                                                     rho_rv=rho_rv, pap=pap, cav=cav, rv=rv))
    # the scanner's random draws do not depend on its settings: drawn here, in the same order as before
    shape = sig.shape
    heterogeneity = 1 + 0.05 * _field3d(rng_noise, shape, size / 5, d / 2)  # tissue heterogeneity
    coil = _field3d(rng_noise, shape, 1.5, 0.3)  # log coil sensitivity, scaled by A["bias"]
    n1 = rng_noise.standard_normal(shape, dtype=_F)
    n2 = rng_noise.standard_normal(shape, dtype=_F)
    return {"sig": sig, "lab": lab, "size": size, "d": d, "sp": sp, "dz": dz, "P": P,
            "heterogeneity": heterogeneity, "coil": coil, "n1": n1, "n2": n2}


def _harden_heart(sig, lab, hard, mr, g) -> np.ndarray:
    """Trabeculae, papillary muscles, the basal atrium and partial volume (labels left as they are)."""
    t, rng = hard.t, hard.rng
    shape = sig.shape
    # trabeculae: a blotchy layer of myocardial signal along the endocardium, inside the labelled cavity
    tex = _field3d(rng, shape, 14.0, shape[2] / 3)  # blotches about 15 mm across
    lv_layer = g["cav"] & (g["rho_cav"] > 1 - 0.3 * t) & (tex > 0.2)
    rv_layer = g["rv"] & (g["rho_rv"] > 1 - 0.25 * t) & (tex < -0.3)
    grow = max(1, int(round(2.5 * t / g["sp"])))  # papillary muscles up to 2.5 mm thicker
    pap = ndimage.binary_dilation(g["pap"], np.ones((3, 3, 1), bool), iterations=grow) & g["cav"]
    sig[lv_layer | rv_layer | pap] = mr["papillary"]
    # the basal atrium / outflow tract: blood outside the ventricles, in the first slices of the stack
    c, tp = g["c"], g["tp"]
    ang = g["phi"] + math.pi + rng.uniform(-0.9, 0.9)
    r_a = 0.65 * g["R"] * (0.5 + 0.5 * t)
    ax_, ay_ = g["hx"] + math.cos(ang) * 1.15 * g["R"], g["hy"] + math.sin(ang) * 1.15 * g["R"]
    basal = (tp < 0.08 + 0.12 * t).reshape(1, 1, -1)
    atrium = (_blob(c, c, ax_, ay_, r_a, 0.8 * r_a, rng.uniform(0, math.pi)) < 1) & basal & (lab == 0)
    sig[atrium] = 0.5 * (mr["lv_blood"] + mr["rv_blood"])
    return through_plane_mix(sig, 0.35 * t)


def acquire(scene: dict, A: dict):
    """The scanner: turns a scene into an image with appearance parameters ``A`` (scene left unchanged)."""
    sig = scene["sig"]
    lab = scene["lab"]
    d = scene["d"]
    sp = scene["sp"]
    dz = scene["dz"]
    P = scene["P"]
    # ---- acquisition
    n1, n2 = scene["n1"], scene["n2"]
    sig = sig * scene["heterogeneity"]
    sig = np.clip(sig, 0, None) ** _F(A["gamma"])
    sig *= np.exp(_F(A["bias"]) * scene["coil"])
    sig = _blur(sig, A["blur_mm"] / sp, (0, 1))
    s = _F(A["noise"])
    img = np.sqrt((sig + s * n1) ** 2 + (s * n2) ** 2)
    meta_anat = dict(P, slices=d, slice_spacing_mm=dz)
    return img[None], lab, (sp, sp, dz), meta_anat, A


def generate(rng, rng_app, rng_noise, size, sev_shape, sev_app):
    """One case: anatomy from ``rng``, appearance from ``rng_app``, textures and noise from ``rng_noise``."""
    scene = anatomy(rng, rng_noise, size, sev_shape)
    return acquire(scene, _draw(APPEARANCE, rng_app, sev_app))
