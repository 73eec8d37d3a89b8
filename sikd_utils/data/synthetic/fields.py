"""Random smooth fields, harmonics, blur and correlated noise: textures and the blur/noise of imaging devices."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .params import _F


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
    return _correlate(rng.standard_normal(shape).astype(_F), sigma_px, axes)


def _correlate(white: np.ndarray, sigma_px: float, axes) -> np.ndarray:
    """Give white noise a Gaussian correlation of ``sigma_px`` over ``axes``, keeping unit variance."""
    if sigma_px < 0.05:
        return white
    out = _blur(white, sigma_px, axes)
    # variance of white noise after a normalised Gaussian of width s in k dims: (4 pi s^2)^(-k/2)
    return out * _F((4 * math.pi * sigma_px**2) ** (len(tuple(axes)) / 4))
