"""One synthetic subject rendered from the phantom: pose, deformation, atrophy, bias, noise.

:func:`render_subject` moves the phantom's anatomy (:mod:`rgenima_lib.synthetic.anatomy`)
by a random affine and a smooth displacement field, removes the requested
fraction of chosen labels from their boundary inwards (the subject's own
anatomy plus any planted atrophy), and adds a bias field and Rician noise. Every random number comes from the generator it is given,
drawn in one fixed order, so the same generator state gives identical images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import ndimage as ndi

from rgenima_lib.synthetic.anatomy import CSF_INTENSITY, FLUID_LABELS, UNLABELLED_BRAIN, Phantom

MAX_LOSS = 0.8
"""Largest fraction of a label :func:`render_subject` removes (anatomy and atrophy together)."""


@dataclass(eq=False)
class SubjectImages:
    """One rendered subject, as recon-all would leave it.

    Attributes
    ----------
    t1_raw : uint8[X, Y, Z]
        Raw T1 with skull and scalp, bias field and Rician noise (orig.mgz, T1w).
    norm : uint8[X, Y, Z]
        Skull-stripped, bias-corrected, WM ~110 (norm.mgz, brain.mgz).
    aparc_aseg : int32[X, Y, Z]
        FreeSurfer aparc+aseg labels.
    affine : float64[4, 4]
        Voxel -> RAS mm, shared by all three images.
    """

    t1_raw: np.ndarray
    norm: np.ndarray
    aparc_aseg: np.ndarray
    affine: np.ndarray


# --- one subject ------------------------------------------------------------------

_N_MODES = 4  # cosine modes 0..3 per axis for the deformation; 0..2 for the bias


def _axis_basis(n: int, n_modes: int) -> np.ndarray:
    """float32[2 + n_modes - 1, n]: constant, voxel index, cos modes 1..n_modes-1."""
    p = np.arange(n, dtype=np.float64)
    rows = [np.ones(n), p] + [np.cos(np.pi * k * (p + 0.5) / n) for k in range(1, n_modes)]
    return np.asarray(rows, dtype=np.float32)


def _mode_index(k: int) -> int:
    """Row of :func:`_axis_basis` holding cosine mode ``k`` (0 = constant)."""
    return 0 if k == 0 else k + 1


def _random_smooth_coefficients(rng, n_modes: int, sigma: float) -> np.ndarray:
    """float64[n_modes, n_modes, n_modes]: cosine coefficients, 1/|k|^2 decay.

    The (0, 0, 0) mode is a constant offset and is set to 0.
    """
    k = np.arange(n_modes)
    k2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    coef = rng.standard_normal((n_modes,) * 3) * sigma / np.maximum(k2, 1)
    coef[0, 0, 0] = 0.0
    return coef


def _embed_modes(coef: np.ndarray, n_rows: int) -> np.ndarray:
    """Place cosine coefficients into the [const, index, cos...]^3 tensor."""
    out = np.zeros((n_rows,) * 3)
    rows = [_mode_index(k) for k in range(coef.shape[0])]
    out[np.ix_(rows, rows, rows)] = coef
    return out


def _separable_field(weights: np.ndarray, bases, out: np.ndarray) -> np.ndarray:
    """Evaluate sum_abc w[a,b,c] Bx[a,i] By[b,j] Bz[c,k] into ``out`` [X, Y, Z].

    Contracting one axis at a time makes the whole-volume cost a single
    (X x R) @ (R x YZ) matrix product.
    """
    bx, by, bz = bases
    t = np.einsum("abc,ck->abk", weights.astype(np.float32), bz)
    t = np.einsum("abk,bj->ajk", t, by)
    np.matmul(bx.T, t.reshape(t.shape[0], -1), out=out.reshape(out.shape[0], -1))
    return out


def _rotation(angles_rad) -> np.ndarray:
    """float64[3, 3] rotation from x, y, z Euler angles."""
    cx, cy, cz = np.cos(angles_rad)
    sx, sy, sz = np.sin(angles_rad)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass
class _Draws:
    """Every random number a subject needs, drawn in one fixed order."""

    linear: np.ndarray        # float64[3, 3], source-from-output in mm
    shift_mm: np.ndarray      # float64[3]
    deformation: np.ndarray   # float64[3, M, M, M] cosine coefficients, mm
    log_bias: np.ndarray      # float64[3, 3, 3] cosine coefficients
    gain: float
    noise_sd: float


def _draw(rng: np.random.Generator) -> _Draws:
    """Draw pose, deformation, bias and noise level (independent of atrophy)."""
    angles = np.deg2rad(rng.uniform(-3, 3, 3))
    shift = rng.uniform(-2, 2, 3)
    scale = rng.uniform(0.97, 1.03, 3)
    deformation = np.stack([_random_smooth_coefficients(rng, _N_MODES, 1.2)
                            for _ in range(3)])
    log_bias = _random_smooth_coefficients(rng, 3, 0.08)
    return _Draws(linear=_rotation(angles) @ np.diag(scale), shift_mm=shift,
                  deformation=deformation, log_bias=log_bias,
                  gain=float(rng.uniform(0.9, 1.1)), noise_sd=float(rng.uniform(2.5, 4.5)))


def _sampling_grid(shape, voxel_mm: float, lo_mm, draws: _Draws) -> np.ndarray:
    """float32[3, X, Y, Z]: source voxel index read by each output voxel.

    Output voxel p at world r = v p + lo reads source world
    s = A r + t + d(p) (rotation about the MNI origin), i.e. source voxel
    q = A p + (A lo + t - lo) / v + d(p) / v.
    """
    bases = [_axis_basis(n, _N_MODES) for n in shape]
    n_rows = bases[0].shape[0]
    offset = (draws.linear @ lo_mm + draws.shift_mm - lo_mm) / voxel_mm
    coords = np.empty((3,) + tuple(shape), np.float32)
    for c in range(3):
        weights = _embed_modes(draws.deformation[c] / voxel_mm, n_rows)
        weights[0, 0, 0] = offset[c]
        weights[1, 0, 0] += draws.linear[c, 0]
        weights[0, 1, 0] += draws.linear[c, 1]
        weights[0, 0, 1] += draws.linear[c, 2]
        _separable_field(weights, bases, coords[c])
    return coords


def _bias_field(shape, log_bias: np.ndarray) -> np.ndarray:
    """float32[X, Y, Z]: smooth multiplicative field, ~0.8..1.2."""
    bases = [_axis_basis(n, 3) for n in shape]
    field_ = np.empty(shape, np.float32)
    _separable_field(_embed_modes(log_bias, bases[0].shape[0]), bases, field_)
    return np.exp(field_, out=field_)


def _apply_atrophy(phantom: Phantom, atrophy: Mapping[int, float]):
    """Shrink labels from their boundary inwards; freed voxels become unlabelled, CSF-dark brain.

    The freed voxels keep no label of their own (aparc+aseg 0 inside the brain
    mask, like the sulcal CSF recon-all leaves unlabelled), so no ROI grows
    with atrophy, and they stay out of every per-subject statistic taken over
    labelled voxels (the intensity window of ROI extraction).

    Parameters
    ----------
    phantom : Phantom
    atrophy : Mapping[int, float]
        label -> fraction f of its voxels to remove, 0 <= f <= MAX_LOSS.

    Returns
    -------
    warp_labels : int32[X, Y, Z]
        Labels (-1 = unlabelled brain) after atrophy.
    head : float32[X, Y, Z]
        Head intensity with the removed voxels set to CSF.
    """
    todo = {int(k): float(f) for k, f in atrophy.items() if float(f) != 0.0}
    for label, frac in todo.items():
        if not 0.0 <= frac <= MAX_LOSS + 1e-6:  # float32(0.8) from a clipped table is allowed
            raise ValueError(f"atrophy of label {label} must be within 0..{MAX_LOSS}, got {frac}")
        if label not in phantom.bboxes or label in FLUID_LABELS:
            raise ValueError(f"label {label} is not an atrophiable phantom structure")
    if not todo:
        return phantom.warp_labels, phantom.head
    labels = phantom.warp_labels.copy()
    head = phantom.head.copy()
    voxel_mm = phantom.voxel_size_mm
    for label, frac in sorted(todo.items()):
        box = phantom.bboxes[label]
        inside = labels[box] == label
        depth = phantom.depth_mm[box][inside]
        if label >= 1000:
            # Cortex thins from the pial side: nearest fluid goes first (the own
            # boundary would also cut CSF lines between neighbouring parcels).
            key = depth
        else:
            # Nuclei shrink from their own boundary; the pad makes the bbox edge count.
            dist = ndi.distance_transform_edt(np.pad(inside, 1), sampling=voxel_mm)
            key = dist[1:-1, 1:-1, 1:-1][inside] + 1e-4 * depth
        n_remove = int(round(min(frac, MAX_LOSS) * key.size))
        chosen = np.argsort(key, kind="stable")[:n_remove]
        where = tuple(ix[chosen] for ix in np.nonzero(inside))
        labels[box][where] = UNLABELLED_BRAIN
        head[box][where] = CSF_INTENSITY
    return labels, head


def _to_uint8(volume: np.ndarray) -> np.ndarray:
    """Round and clip a float32 volume into uint8 (modifies ``volume``)."""
    np.clip(volume, 0, 254.5, out=volume)
    volume += 0.5
    return volume.astype(np.uint8)


def render_subject(phantom: Phantom, atrophy: Mapping[int, float],
                   rng: np.random.Generator) -> SubjectImages:
    """Render one synthetic subject from the phantom.

    Parameters
    ----------
    phantom : Phantom
        From :func:`rgenima_lib.synthetic.anatomy.build_phantom`; not modified.
    atrophy : Mapping[int, float]
        FreeSurfer label -> fraction (0..MAX_LOSS) of its voxels to remove,
        those nearest its boundary first; they become unlabelled brain
        (aparc+aseg 0, CSF intensity), never another ROI. Applied in phantom
        space, before the subject's deformation.
    rng : numpy.random.Generator
        Source of every random choice; the same state gives identical images,
        whatever ``atrophy`` is (atrophy draws no random numbers).

    Returns
    -------
    SubjectImages
        On the phantom's grid and affine. The anatomy is moved by a random
        affine (+-3 deg rotations, +-2 mm shifts, +-3 % scale per axis) and a
        smooth displacement field (cosine modes, ~1-2 mm RMS), identically for
        intensity (linear) and labels (nearest). ``t1_raw`` adds a smooth
        multiplicative bias field (~+-20 %), a gain of +-10 % and Rician noise
        (sd 2.5-4.5 on the WM = 110 scale); ``norm`` is the same noisy image
        with gain and bias divided out, masked to the brain.
    """
    draws = _draw(rng)
    labels, head = _apply_atrophy(phantom, atrophy)
    shape = phantom.labels.shape
    coords = _sampling_grid(shape, phantom.voxel_size_mm, phantom.affine[:3, 3], draws)
    warped = ndi.map_coordinates(head, coords, order=1, output=np.float32,
                                 mode="constant", cval=0.0, prefilter=False)
    warped_labels = ndi.map_coordinates(labels, coords, order=0, output=np.int32,
                                        mode="constant", cval=0)
    del coords
    brain = warped_labels != 0
    np.maximum(warped_labels, 0, out=warped_labels)

    bias = _bias_field(shape, draws.log_bias)
    bias *= draws.gain
    signal = warped * bias
    noise_re = rng.standard_normal(shape, dtype=np.float32)
    noise_re *= draws.noise_sd
    signal += noise_re
    noise_im = rng.standard_normal(shape, dtype=np.float32)
    noise_im *= draws.noise_sd
    # Rician: magnitude of a complex signal with Gaussian noise on both channels.
    np.square(signal, out=signal)
    np.square(noise_im, out=noise_im)
    signal += noise_im
    np.sqrt(signal, out=signal)
    del noise_re, noise_im

    norm = np.divide(signal, bias, out=warped)
    norm[~brain] = 0
    return SubjectImages(t1_raw=_to_uint8(signal), norm=_to_uint8(norm),
                         aparc_aseg=warped_labels, affine=phantom.affine.copy())
