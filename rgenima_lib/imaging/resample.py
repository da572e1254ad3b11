"""Trilinear resizing of 3D boxes to a fixed shape, as three small matrix products.

Trilinear interpolation is separable: resizing a box ``x`` of shape (a, b, c)
to (S, S, S) equals ``W0 @ x`` along axis 0, then ``W1`` along axis 1, then
``W2`` along axis 2, where each ``W`` is an (S, n) matrix with two non-zeros per
row. Done as dense BLAS products on the cropped box this costs about
``S * (a*b*c + S*b*c + S*S*c)`` multiply-adds and runs several times faster than
``scipy.ndimage.zoom(order=1)``, which interpolates every output voxel from its
eight neighbours in double precision. The grid convention is zoom's default
(``grid_mode=False``: the first and last voxel centres of input and output
coincide), so both give the same values up to float32 rounding
(``resize_naive`` is kept as the reference for tests and the benchmark).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def linear_weights(n_in: int, n_out: int, dtype=np.float32) -> np.ndarray:
    """Matrix of 1D linear interpolation from ``n_in`` to ``n_out`` samples (corners aligned).

    Parameters
    ----------
    n_in, n_out : int
        Input and output lengths (>= 1).

    Returns
    -------
    W : dtype[n_out, n_in]
        ``W @ v`` resamples a vector ``v`` of length ``n_in``; rows sum to 1.
    """
    w = np.zeros((n_out, n_in), dtype)
    if n_in == 1:
        w[:, 0] = 1.0
        return w
    # Output sample i sits at input coordinate i * (n_in - 1) / (n_out - 1), as in ndimage.zoom.
    pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n_in - 2)
    frac = (pos - i0).astype(dtype)
    rows = np.arange(n_out)
    w[rows, i0] = 1.0 - frac
    w[rows, i0 + 1] += frac
    return w


def resize_trilinear(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Resize a 3D array to ``shape`` by separable trilinear interpolation.

    Parameters
    ----------
    x : float32[a, b, c]
    shape : (S0, S1, S2)

    Returns
    -------
    float32[S0, S1, S2]
        Equal to ``ndimage.zoom(x, shape / x.shape, order=1)`` up to float32 rounding.
    """
    a, b, c = x.shape
    s0, s1, s2 = shape
    x = np.asarray(x, np.float32)
    # Axis 0: (S0, a) @ (a, b*c).
    y = (linear_weights(a, s0) @ x.reshape(a, b * c)).reshape(s0, b, c)
    # Axis 1: one (S1, b) @ (b, c) product per slice of axis 0, batched by matmul.
    y = np.matmul(linear_weights(b, s1), y)  # (s0, s1, c)
    # Axis 2: (S0*S1, c) @ (c, S2), the largest product, a single BLAS call.
    return (y.reshape(s0 * s1, c) @ linear_weights(c, s2).T).reshape(s0, s1, s2)


def resize_naive(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Reference: ``scipy.ndimage.zoom(order=1)`` to ``shape`` (the benchmark's naive baseline).

    Parameters
    ----------
    x : float[a, b, c]
    shape : (S0, S1, S2)

    Returns
    -------
    float32[S0, S1, S2]
    """
    factors = np.asarray(shape, float) / np.asarray(x.shape, float)
    # mode="nearest": with the default "constant", the last output sample (at input coordinate
    # n_in - 1 plus float rounding) would be blended with the zero outside the box.
    out = ndimage.zoom(np.asarray(x, np.float64), factors, order=1, grid_mode=False, mode="nearest")
    if out.shape != tuple(shape):  # zoom rounds shape * factor; force the exact shape
        raise AssertionError(f"zoom produced {out.shape}, expected {tuple(shape)}")
    return out.astype(np.float32)
