"""Trilinear resizing of 3D boxes to a fixed shape, as banded matrix products.

Trilinear interpolation is separable: resizing a box ``x`` of shape (a, b, c)
to (S0, S1, S2) is one 1-D linear interpolation per axis, each a matrix ``W``
(S, n) with two non-zeros per row (``linear_weights``). The grid convention is
``scipy.ndimage.zoom``'s default (``grid_mode=False``: the first and last voxel
centres of input and output coincide), so both give the same values up to
float32 rounding (``resize_naive`` is kept as the reference for tests and the
benchmark).

Where the time goes, and why the product is organised as it is:

- each axis is one BLAS product ``X(n, rest).T @ W.T`` that moves the axis just
  resized to the end, so after three products the axes are back in order and
  no product needs a batched call or a copy of its operand;
- ``W`` is cut into bands of ``BAND`` output samples, each multiplied only with
  the few input rows it touches: a dense ``W`` costs n multiply-adds per output
  voxel, a band about ``BAND * n / S + 2`` (for n = 40, S = 96: 9 instead of 40);
- the axes are resized in the order of least work (the last product, which
  writes the S0*S1*S2 output, runs on the axis that costs least there);
- the bands are cached per (n, S): a subject's 109 boxes share a few dozen lengths.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from scipy import ndimage

#: Output samples per band of an interpolation matrix. Narrower bands do fewer multiply-adds but make
#: smaller, less efficient BLAS calls; 12-16 was the fastest at S = 96 on one core.
BAND = 16


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


@functools.lru_cache(maxsize=1024)
def interpolation_bands(n_in: int, n_out: int) -> tuple[tuple[slice, slice, np.ndarray], ...]:
    """``linear_weights(n_in, n_out).T`` cut into bands of ``BAND`` output columns.

    Parameters
    ----------
    n_in, n_out : int

    Returns
    -------
    tuple of (input rows, output columns, float32[rows, columns] read-only block)
        Outside its rows a band's columns of ``W.T`` are zero, so
        ``X.T @ W.T == concatenate([X[rows].T @ block for each band], axis=1)``.
    """
    wt = linear_weights(n_in, n_out).T
    bands = []
    for start in range(0, n_out, BAND):
        cols = slice(start, min(start + BAND, n_out))
        touched = np.flatnonzero(wt[:, cols].any(axis=1))
        rows = slice(int(touched[0]), int(touched[-1]) + 1) if touched.size else slice(0, 1)
        block = np.ascontiguousarray(wt[rows, cols])
        block.flags.writeable = False
        bands.append((rows, cols, block))
    return tuple(bands)


def _band_cost(n_in: int, n_out: int) -> int:
    """Multiply-adds per column of ``X(n_in, rest)`` to resample it to ``n_out``: sum of band areas."""
    return sum(block.size for _, _, block in interpolation_bands(n_in, n_out))


#: Orders the axes may be resized in: those that end with axis 2 innermost in memory (see
#: ``resize_trilinear``), because casting a patch whose innermost axis is strided costs 10-50x a
#: contiguous cast. Resizing axis 2 first never ends so.
ORDERS = ((0, 1, 2), (1, 0, 2), (0, 2, 1), (1, 2, 0))


@functools.lru_cache(maxsize=4096)
def _cheapest_order(shape_in: tuple[int, int, int], shape_out: tuple[int, int, int]) -> tuple[int, int, int]:
    """The order of ``ORDERS`` to resize the axes in that needs the fewest multiply-adds."""
    def cost(order):
        sizes, total = list(shape_in), 0
        for axis in order:
            rest = int(np.prod(sizes)) // sizes[axis]
            total += rest * _band_cost(shape_in[axis], shape_out[axis])
            sizes[axis] = shape_out[axis]
        return total
    return min(ORDERS, key=cost)


def resize_trilinear(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Resize a 3D array to ``shape`` by separable trilinear interpolation.

    The box is copied with its axes in resizing order; the first two products each move the axis
    they resize to the end, and the last one either does the same (axis 2 last: the result is in
    the box's order) or keeps its axis in front (axis 2 second: the result's axes are 2 after 0
    and 1), so axis 2 always ends innermost.

    Parameters
    ----------
    x : float32[a, b, c]
    shape : (S0, S1, S2)

    Returns
    -------
    float32[S0, S1, S2]
        Equal to ``ndimage.zoom(x, shape / x.shape, order=1)`` up to float32 rounding. May be a view
        with axes 0 and 1 swapped (axis 2 innermost, so that copying or casting it stays fast).
    """
    shape = tuple(int(s) for s in shape)
    order = _cheapest_order(tuple(x.shape), shape)
    y = np.ascontiguousarray(np.asarray(x, np.float32).transpose(order))
    layout = list(order)
    for step, axis in enumerate(order):
        n = y.shape[0]
        columns = y.reshape(n, -1)
        bands = interpolation_bands(n, shape[axis])
        if step == 2 and axis != 2:
            # W @ X: the resized axis stays in front, axis 2 (resized second, now last) stays innermost.
            resized = np.empty((shape[axis], columns.shape[1]), np.float32)
            for rows, cols, block in bands:
                np.matmul(block.T, columns[rows], out=resized[cols])
            dims = [shape[axis], *y.shape[1:]]
        else:
            # X.T @ W.T: the resized axis moves to the end, so the next axis to resize leads.
            resized = np.empty((columns.shape[1], shape[axis]), np.float32)
            for rows, cols, block in bands:
                np.matmul(columns[rows].T, block, out=resized[:, cols])
            dims = [*y.shape[1:], shape[axis]]
            layout = layout[1:] + layout[:1]
        y = resized.reshape(dims)
    return y.transpose(np.argsort(layout))


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
