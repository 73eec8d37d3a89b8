"""Contrast-enhanced abdominal CT slabs with eight labelled organs. See the package docstring for what each domain changes."""

from __future__ import annotations

import math

import numpy as np

from ..tasks import get_task
from .params import _Param, _draw, _F
from .fields import _smooth_field, _field3d, _harmonics, _blur, _correlate
from .shapes import _ellipse, _blob
from .difficulty import Hardening, through_plane_mix


SHAPE = {
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
APPEARANCE = {
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


DESCRIPTIONS = {
    "source": 'portal-venous CT slabs with eight organs, mild dose/kernel variability',
    "target": 'another CT protocol: weaker iodine enhancement, more and blotchier noise, softer kernel, beam-hardening cupping',
    "shape_shift": 'enlarged liver and spleen, distended gallbladder, small kidneys, thin pancreas',
}


DIFFICULTY = (
    Hardening("wider anatomy and a thinner pancreas", "organ sizes spread about 1.4x wider, the pancreas up to 35 % "
              "thinner", "real cohorts differ in age and disease; the pancreas atrophies with age and is the "
              "organ every Synapse method segments worst"),
    Hardening("lower organ contrast", "every organ's enhancement and base value 45 % closer to soft tissue, order "
              "kept", "a late or weak contrast bolus (low cardiac output, poor venous access) leaves organs "
              "close in Hounsfield units"),
    Hardening("bowel loops beside the organs", "twice as many loops, and a duodenal C-loop hugging the "
              "pancreatic head, with pancreas- and stomach-like walls",
              "unopacified bowel has the density of pancreas and stomach wall and touches both: the main source "
              "of false positives"),
    Hardening("vessels beside the organs", "splenic vein along the pancreas and a brighter IVC, with aorta-like "
              "enhancement", "in the portal-venous phase the splenic/portal veins and the IVC enhance nearly "
              "as much as the aorta and run along the pancreas"),
    Hardening("fatty pancreas", "fat lobules through up to 40 % of the pancreas, still labelled pancreas",
              "fatty infiltration breaks the pancreatic outline into lobules: where it ends is a judgement"),
    Hardening("through-plane partial volume", "each slice takes 30 % of its neighbours' signal",
              "3-5 mm slices average thin organs (gallbladder neck, pancreatic tail, adrenal region) with their "
              "neighbours"),
)


def _widen(P: dict, hard) -> dict:
    """More varied organ sizes, and a thinner pancreas, from the hardening stream."""
    u = hard.rng.uniform(-1.0, 1.0, 6)
    names = ("liver_scale", "spleen_scale", "kidney_scale", "gallbladder_scale", "stomach_scale")
    out = dict(P, **{n: P[n] * math.exp(0.25 * hard.t * u[k]) for k, n in enumerate(names)})
    out["pancreas_scale"] = P["pancreas_scale"] * math.exp(-0.43 * hard.t * (0.5 + 0.5 * abs(u[5])))
    return out


def _flatter_hu(t: float) -> dict:
    """HU table with enhanced soft tissues pulled toward each other (their order kept)."""
    soft = ("muscle", "aorta", "ivc", "liver", "liver_vessel", "spleen", "kidney_cortex", "kidney_medulla",
            "pancreas", "stomach_wall", "bowel_wall")
    k = 1 - 0.45 * t
    out = dict(_HU, **{n: (45 + (_HU[n][0] - 45) * k, 60 + (_HU[n][1] - 60) * k) for n in soft})
    out["vein"] = out["aorta"][0], out["aorta"][1] * 0.9
    out["ivc"] = out["ivc"][0], out["ivc"][1] + (out["aorta"][1] - out["ivc"][1]) * 0.6 * t
    return out


def _tube(c, xs, ys, radius) -> np.ndarray:
    """Pixels within ``radius`` mm of a polyline (2D), computed in its bounding box only."""
    size = c.size
    x0, x1 = np.searchsorted(c, [xs.min() - radius, xs.max() + radius])
    y0, y1 = np.searchsorted(c, [ys.min() - radius, ys.max() + radius])
    out = np.zeros((size, size), bool)
    if x1 <= x0 or y1 <= y0:
        return out
    d2 = (c[None, None, x0:x1] - xs[:, None, None]) ** 2 + (c[None, y0:y1, None] - ys[:, None, None]) ** 2
    out[y0:y1, x0:x1] = d2.min(axis=0) < radius**2
    return out


def anatomy(rng, rng_noise, size, sev_shape, hard=None) -> dict:
    """The scene: tissue maps, labels and the scanner's noise draws (no appearance parameter is used here).

    ``hard`` (a :class:`~.difficulty.Hard`) adds the difficulty level's hardenings; None is level 0.
    """
    P = _draw(SHAPE, rng, sev_shape)
    hu_of = _HU
    if hard is not None:
        P, hu_of = _widen(P, hard), _flatter_hu(hard.t)
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
    if hard is not None:  # more loops, and the duodenum around the pancreatic head
        hr = hard.rng
        for k in range(16):
            fx, fy = hr.uniform(-80, 80), hr.uniform(-75, 35)
            r = hr.uniform(8, 18)
            s_z = zprof(hr.uniform(-20, 40), hr.uniform(25, 60))
            cx, cy = at(fx, fy)
            rho_bw = _blob(c, c, cx, cy, r * s_z, r * hr.uniform(0.7, 1.3) * s_z, hr.uniform(0, math.pi))
            if k < round(14 * hard.t):
                bowel |= (rho_bw < 1) & pb(s_z > 0.12)
        hx_, hy_ = p0[0] - 14 * P["pancreas_scale"], p0[1] + 4
        duo = _tube(c, hx_ + 22 * np.cos(np.linspace(1.9, 4.4, 24)), hy_ + 22 * np.sin(np.linspace(1.9, 4.4, 24)),
                    8.0 * (0.5 + 0.5 * hard.t))
        bowel |= duo[..., None] & pb(hard.t > 0.3)
        vein = _tube(c, cxs, cys + 11.5 * P["pancreas_scale"] + 5.0, 4.0 * (0.6 + 0.4 * hard.t))[..., None] & pb(pz > 0.1)
        pan_fat = pan_fat | (_smooth_field(hr, (size, size), size / 5) > 1.6 - 1.2 * hard.t)
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
    if hard is not None:
        names.append("vein")
        paint(vein & (lab == 0), "vein")
    table = np.array([hu_of[n] for n in names], _F)
    base, enh = table[tissue, 0], table[tissue, 1]
    if hard is not None:
        base, enh = through_plane_mix(base, 0.3 * hard.t), through_plane_mix(enh, 0.3 * hard.t)
    # the scanner's random draws do not depend on its settings: drawn here, in the same order as before
    texture = 6.0 * _field3d(rng_noise, base.shape, P["fov_mm"] / 8, d / 2) * (lab > 0)  # organ texture
    white = rng_noise.standard_normal(base.shape).astype(_F)
    return {"base": base, "enh": enh, "lab": lab, "d": d, "sp": sp, "dz": dz, "P": P, "rho_b": rho_b, "body": body,
            "texture": texture, "white": white}


def acquire(scene: dict, A: dict):
    """The scanner: turns a scene into an image with appearance parameters ``A`` (scene left unchanged)."""
    base = scene["base"]
    enh = scene["enh"]
    lab = scene["lab"]
    d = scene["d"]
    sp = scene["sp"]
    dz = scene["dz"]
    P = scene["P"]
    rho_b = scene["rho_b"]
    body = scene["body"]
    # ---- scanner
    hu = base + _F(A["enhancement"]) * enh
    hu += scene["texture"]
    hu = _blur(hu, A["blur_mm"] / sp, (0, 1))
    hu -= _F(A["cupping_hu"]) * np.clip(1 - rho_b**2, 0, 1)[..., None] * body[..., None]
    hu += _F(A["noise_hu"]) * _correlate(scene["white"], A["noise_grain_mm"] / sp, (0, 1))
    hu = np.clip(hu, -125.0, 275.0)  # the abdominal window of the TransUNet protocol
    meta_anat = dict(P, slices=d, slice_spacing_mm=dz)
    return hu[None], lab, (sp, sp, dz), meta_anat, A


def generate(rng, rng_app, rng_noise, size, sev_shape, sev_app):
    """One case: anatomy from ``rng``, appearance from ``rng_app``, textures and noise from ``rng_noise``."""
    scene = anatomy(rng, rng_noise, size, sev_shape)
    return acquire(scene, _draw(APPEARANCE, rng_app, sev_app))
