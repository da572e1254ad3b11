"""Trilinear resizing of 3D boxes to a fixed shape, as banded matrix products.

Trilinear interpolation is separable: resizing a box ``x`` of shape (a, b, c)
to (S0, S1, S2) is one 1-D linear interpolation per axis, each a matrix ``W``
(S, n) with two non-zeros per row (``linear_weights``). The grid convention is
``scipy.ndimage.zoom``'s default (``grid_mode=False``: the first and last voxel
centres of input and output coincide), so both give the same values up to
float32 rounding (``resize_naive`` is kept as the reference for tests and the
benchmark).

Where the time goes, and why the products are organised as they are:

- each axis is resized in place, so no box is ever transposed (a transposing copy
  of the inner axis cost a third of the resize) and the result is C-ordered for
  the uint8 cast: axis 0 as ``W @ X(n, rest)``, axis 2 as ``X(rest, n) @ W.T``,
  axis 1 as one batched ``W @ X[i]`` per slice of axis 0;
- ``W`` is cut into bands of ``BAND`` output samples, each multiplied only with
  the few input rows it touches: a dense ``W`` costs n multiply-adds per output
  voxel, a band about ``BAND * n / S + 2`` (for n = 40, S = 96: 9 instead of 40);
- the axes are resized in the order of least work (multiply-adds, plus a fixed
  cost per small product of the batched axis-1 step);
- the bands are cached per (n, S): a subject's 109 boxes share a few dozen lengths.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

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


#: Multiply-adds that one small BLAS call of the batched axis-1 step costs on top of its own
#: (call overhead), in the order choice; 2,000 was as fast as any other value at S = 96.
CALL_COST = 2000


@functools.lru_cache(maxsize=4096)
def _cheapest_order(shape_in: tuple[int, int, int], shape_out: tuple[int, int, int]) -> tuple[int, int, int]:
    """The order to resize the axes in that needs the least work (multiply-adds and batched calls)."""
    def cost(order):
        sizes, total = list(shape_in), 0
        for axis in order:
            rest = int(np.prod(sizes)) // sizes[axis]
            total += rest * _band_cost(shape_in[axis], shape_out[axis])
            if axis == 1:
                total += CALL_COST * sizes[0] * len(interpolation_bands(shape_in[axis], shape_out[axis]))
            sizes[axis] = shape_out[axis]
        return total
    return min(itertools.permutations(range(3)), key=cost)


def _resize_axis(x: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """Linear interpolation of a C-ordered float32[a, b, c] along ``axis`` to ``n_out`` samples, in place order.

    Returns
    -------
    float32 array, C-ordered, of ``x.shape`` with ``n_out`` at ``axis``
    """
    bands = interpolation_bands(x.shape[axis], n_out)
    shape = list(x.shape)
    shape[axis] = n_out
    out = np.empty(shape, np.float32)
    if axis == 0:
        rows_in, rows_out = x.reshape(x.shape[0], -1), out.reshape(n_out, -1)
        for rows, cols, block in bands:
            np.matmul(block.T, rows_in[rows], out=rows_out[cols])
    elif axis == 2:
        cols_in, cols_out = x.reshape(-1, x.shape[2]), out.reshape(-1, n_out)
        for rows, cols, block in bands:
            np.matmul(cols_in[:, rows], block, out=cols_out[:, cols])
    else:  # one product per slice of axis 0, batched by matmul
        for rows, cols, block in bands:
            np.matmul(block.T, x[:, rows], out=out[:, cols])
    return out


def resize_trilinear(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Resize a 3D array to ``shape`` by separable trilinear interpolation.

    Parameters
    ----------
    x : float32[a, b, c]
    shape : (S0, S1, S2)

    Returns
    -------
    float32[S0, S1, S2], C-ordered
        Equal to ``ndimage.zoom(x, shape / x.shape, order=1)`` up to float32 rounding.
    """
    shape = tuple(int(s) for s in shape)
    y = np.ascontiguousarray(x, dtype=np.float32)
    for axis in _cheapest_order(tuple(y.shape), shape):
        y = _resize_axis(y, axis, shape[axis])
    return y


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
    from scipy import ndimage  # the reference only: the pipeline's own resize needs no scipy

    factors = np.asarray(shape, float) / np.asarray(x.shape, float)
    # mode="nearest": with the default "constant", the last output sample (at input coordinate
    # n_in - 1 plus float rounding) would be blended with the zero outside the box.
    out = ndimage.zoom(np.asarray(x, np.float64), factors, order=1, grid_mode=False, mode="nearest")
    if out.shape != tuple(shape):  # zoom rounds shape * factor; force the exact shape
        raise AssertionError(f"zoom produced {out.shape}, expected {tuple(shape)}")
    return out.astype(np.float32)
