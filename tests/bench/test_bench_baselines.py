"""The benchmarks' baselines compute what the pipeline computes: bootstrap bit for bit, ROI patches to one grey level."""

from __future__ import annotations

import numpy as np
import pytest

from rgenima_lib.attribution.bootstrap import STREAMS, bootstrap_genes, bootstrap_rois, pair_stability
from rgenima_lib.bench.bench_bootstrap import plain_pair_stability, plain_top_k_frequency, same_outputs
from rgenima_lib.bench.bench_roi_extract import extract_naive
from rgenima_lib.imaging.roi_extract import extract_roi_patches


@pytest.fixture(scope="module")
def association():
    rng = np.random.default_rng(4)
    a = rng.lognormal(-6, 1, size=(37, 6, 5)).astype(np.float16)
    a[:, 0, 0] = 0  # a zero-width interval: NaN stability in both
    return a


@pytest.mark.parametrize("chunk", [None, 7, 30])
def test_pair_stability_equals_the_plain_weights_matrix_product(association, chunk):
    current = pair_stability(association, n_boot=50, seed=3, stream=1, chunk=chunk)
    plain = plain_pair_stability(association, n_boot=50, seed=3, stream=1)
    assert set(plain) == set(current)
    assert same_outputs(current, plain)
    assert np.isnan(current["stability"][0, 0])


def test_gene_and_roi_frequencies_equal_the_plain_formulation():
    rng = np.random.default_rng(5)
    genes, rois = [f"G{i}" for i in range(12)], [f"R{i}" for i in range(9)]
    gene_x = rng.lognormal(size=(40, 12)).astype(np.float16)
    table = bootstrap_genes(gene_x, genes, n_boot=60, top_k=4, seed=2).set_index("gene").loc[genes]
    plain = plain_top_k_frequency(gene_x, n_boot=60, top_k=4, seed_key=[2, STREAMS["genes"]])
    np.testing.assert_array_equal(table["frequency"].to_numpy(), plain)

    roi_x = rng.lognormal(size=(48, 9)).astype(np.float16)
    labels = np.array(["NC", "SMC", "MCI", "AD"] * 12)
    t = bootstrap_rois(roi_x, labels, rois, n_boot=60, top_k=3, seed=2)
    for index, stage in enumerate(("SMC", "MCI", "AD")):
        freq = t[t["stage"] == stage].set_index("roi").loc[rois, "frequency"].to_numpy()
        expected = plain_top_k_frequency(roi_x[labels == stage], n_boot=60, top_k=3,
                                         seed_key=[2, STREAMS["rois"], index])
        np.testing.assert_array_equal(freq, expected)


def small_phantom(shape=(44, 40, 36)):
    """Nested ellipsoid labels with noisy intensities: float32 and int32[X, Y, Z], labels 2, 17, 53, 1001."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    labels = np.zeros(shape, np.int32)
    labels[(grid ** 2).sum(0) < 0.9] = 2  # a large structure: its box is longer than S on every axis
    labels[((grid - np.array([0.3, 0.1, 0.0])[:, None, None, None]) ** 2 / 0.04).sum(0) < 1] = 17
    labels[((grid + np.array([0.3, 0.2, 0.1])[:, None, None, None]) ** 2 / 0.02).sum(0) < 1] = 53
    labels[(np.abs(grid[0]) < 0.08) & (np.abs(grid[1]) < 0.5) & (grid[2] > 0.2) & (labels == 2)] = 1001
    rng = np.random.default_rng(0)
    brightness = 40.0 * (labels > 0) + 30.0 * (labels == 17) + 60.0 * (labels == 53) + 20.0 * (labels == 1001)
    intensity = (brightness + rng.normal(0, 6, shape)).astype(np.float32)
    return intensity, labels


def test_roi_extraction_within_one_grey_level_of_the_naive_zoom():
    intensity, labels = small_phantom()
    label_ids = [17, 2, 2035, 53, 1001]  # 2035 absent: zero patch in both
    fast = extract_roi_patches(intensity, labels, label_ids, 16)
    naive = extract_naive(intensity, labels, label_ids, 16)
    assert fast.patches.shape == naive.shape == (5, 16, 16, 16)
    assert np.abs(fast.patches.astype(int) - naive).max() <= 1
    assert not fast.patches[2].any() and not naive[2].any()
    assert fast.patches.max() > 200  # the window reaches the top: the check is not on empty patches
