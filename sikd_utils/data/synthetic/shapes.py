"""Shapes: perturbed ellipses, soft edges and rendered curves (vessels, ligaments)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .params import _F


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
