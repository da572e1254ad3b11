"""Bootstrap speed and memory against the plain weights-matrix formulation; attention-dump size (issue 7).

- ROI–gene stability (109 × 105 pairs): ``pair_stability`` beside ``plain_pair_stability``, the
  plain formulation (the multinomial weights matrix W[B, N] times all the data in one product, then
  ``np.percentile`` over the iterations), interleaved, with the outputs compared for equality, and
  the peak traced memory (numpy allocations, ``tracemalloc``) of each and of ``pair_stability`` at
  1,024-pair chunks;
- genes (top 45) and ROIs per stage (top 10) beside their plain formulation (W @ X, top-k counts),
  always at the paper's size (2,000 subjects, B = 1,000);
- permutation test of 109 ROIs, 3 stages vs NC (no baseline: its own median and spread);
- dump size per 1,000 subjects (float16, compressed ``.npz``) for synthetic log-normal shares, a
  pessimistic case for compression.

Default: 500 subjects, B = 200, 2,000 permutations (about half a minute); ``full``: the issue's size,
one group of 2,000 subjects, B = 1,000, 10,000 permutations.
"""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

from rgenima_lib.attribution.bootstrap import STREAMS, bootstrap_genes, bootstrap_rois, pair_stability, top_k_frequency
from rgenima_lib.bench.paired import paired_timings


def plain_pair_stability(association: np.ndarray, *, n_boot: int, seed: int = 0, stream: int = 0,
                         ci: float = 0.95) -> dict[str, np.ndarray]:
    """The plain formulation of :func:`pair_stability`: one product W @ X, then ``np.percentile``.

    Parameters
    ----------
    association : float[N, R, G]
    n_boot : int
        B.
    seed, stream : int
        As ``pair_stability`` (same random stream, so the same resamples).
    ci : float

    Returns
    -------
    dict of float64[R, G]
        ``mean``, ``ci_low``, ``ci_high``, ``stability`` (NaN for zero-width intervals), ``observed``.
    """
    n, r, g = association.shape
    counts = np.random.default_rng([seed, STREAMS["pairs"], stream]).multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    data = association.reshape(n, r * g).astype(np.float32)
    means = (counts / n).astype(np.float32) @ data  # float32[B, R*G]
    lo, hi = np.percentile(means, [50 * (1 - ci), 100 - 50 * (1 - ci)], axis=0)
    mean = means.mean(0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        stability = np.where(hi > lo, mean / (hi - lo), np.nan)
    outputs = {"mean": mean, "ci_low": lo, "ci_high": hi, "stability": stability,
               "observed": data.mean(0, dtype=np.float64)}
    return {k: v.reshape(r, g) for k, v in outputs.items()}


def plain_top_k_frequency(x: np.ndarray, *, n_boot: int, top_k: int, seed_key: list[int]) -> np.ndarray:
    """Plain formulation of the gene / ROI selection frequency: W @ X, then top-k counts.

    Parameters
    ----------
    x : float[N, P]
    n_boot, top_k : int
    seed_key : list of int
        The random stream ``bootstrap_genes`` / ``bootstrap_rois`` draws from.

    Returns
    -------
    float64[P]
    """
    n = len(x)
    counts = np.random.default_rng(seed_key).multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    return top_k_frequency((counts / n).astype(np.float32) @ np.asarray(x, np.float32), top_k)


def same_outputs(a: dict, b: dict) -> bool:
    """Every array of ``b`` equals ``a``'s bit for bit (NaN where NaN)."""
    return all(np.array_equal(a[k], b[k], equal_nan=True) for k in b)


def traced_peak_mb(fn) -> float:
    """Peak of numpy allocations (MB) while ``fn()`` runs."""
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return round(peak / 1e6, 1)


def run(out_dir: Path, full: bool) -> dict:
    from rgenima_lib.attribution.dump_format import write_dump
    from rgenima_lib.attribution.permutation import stage_permutation_tests
    from rgenima_lib.attribution.synthetic_dump import synthetic_dump

    n, b, n_perm = (2000, 1000, 10000) if full else (500, 200, 2000)
    genes = [f"G{i}" for i in range(105)]
    rois = [f"R{i}" for i in range(109)]
    dump = synthetic_dump(n, genes, rois, seed=0)
    pairs = dump.roi_gene
    result = {"setting": {"subjects": n, "n_boot": b, "pairs": 109 * 105, "n_perm": n_perm}}

    current, plain = pair_stability(pairs, n_boot=b), plain_pair_stability(pairs, n_boot=b)
    result["roi_gene"] = paired_timings(
        {"pair_stability": lambda: pair_stability(pairs, n_boot=b),
         "plain_weights_matrix": lambda: plain_pair_stability(pairs, n_boot=b)},
        repeats=5, ratios={"plain_over_current": ("plain_weights_matrix", "pair_stability")})
    result["roi_gene"]["identical_outputs"] = same_outputs(current, plain)
    result["roi_gene"]["peak_mb"] = {
        "pair_stability": traced_peak_mb(lambda: pair_stability(pairs, n_boot=b)),
        "pair_stability_chunk1024": traced_peak_mb(lambda: pair_stability(pairs, n_boot=b, chunk=1024)),
        "plain_weights_matrix": traced_peak_mb(lambda: plain_pair_stability(pairs, n_boot=b))}

    # Genes and ROIs at the paper's size (N = 2,000, B = 1,000) even by default: they take well under a second,
    # and at a small size the fixed cost of the results table (a few ms) hides the computation being compared.
    n, b = 2000, 1000
    dump = synthetic_dump(n, genes, rois, seed=0)
    result["setting"].update({"genes_rois_subjects": n, "genes_rois_n_boot": b})
    gene_x, roi_x = dump.gene_importance, dump.roi_importance
    ad = np.asarray(dump.label) == "AD"
    result["genes"] = paired_timings(
        {"bootstrap_genes": lambda: bootstrap_genes(gene_x, genes, n_boot=b),
         "plain_weights_matrix": lambda: plain_top_k_frequency(gene_x, n_boot=b, top_k=45,
                                                               seed_key=[0, STREAMS["genes"]])},
        repeats=5, ratios={"plain_over_current": ("plain_weights_matrix", "bootstrap_genes")})
    table = bootstrap_genes(gene_x, genes, n_boot=b).set_index("gene").loc[genes]
    result["genes"]["identical_outputs"] = bool(np.array_equal(
        table["frequency"].to_numpy(),
        plain_top_k_frequency(gene_x, n_boot=b, top_k=45, seed_key=[0, STREAMS["genes"]])))
    # Stage AD is the third of bootstrap_rois' stages (stream index 2).
    result["rois"] = paired_timings(
        {"bootstrap_rois": lambda: bootstrap_rois(roi_x, dump.label, rois, n_boot=b),
         "plain_weights_matrix": lambda: [plain_top_k_frequency(roi_x[np.asarray(dump.label) == s], n_boot=b, top_k=10,
                                                                seed_key=[0, STREAMS["rois"], i])
                                          for i, s in enumerate(("SMC", "MCI", "AD"))]},
        repeats=5, ratios={"plain_over_current": ("plain_weights_matrix", "bootstrap_rois")})
    t = bootstrap_rois(roi_x, dump.label, rois, n_boot=b)
    ad_freq = t[t["stage"] == "AD"].set_index("roi").loc[rois, "frequency"].to_numpy()
    result["rois"]["identical_outputs"] = bool(np.array_equal(
        ad_freq, plain_top_k_frequency(roi_x[ad], n_boot=b, top_k=10, seed_key=[0, STREAMS["rois"], 2])))
    result["permutation"] = paired_timings(
        {"stage_permutation_tests": lambda: stage_permutation_tests(roi_x, dump.label, rois, n_perm=n_perm)},
        repeats=3)

    with tempfile.TemporaryDirectory() as tmp:
        sizes = {}
        for m in (100, 1000):
            path = Path(tmp) / f"dump{m}.npz"
            write_dump(path, synthetic_dump(m, genes, rois, seed=1))
            sizes[m] = path.stat().st_size
    result["dump_size"] = {"mb_per_1000_subjects": round(sizes[1000] / 1e6, 2),
                           "mb_per_1000_subjects_uncompressed": round(1000 * (109 * 105 + 109 + 105) * 2 / 1e6, 2),
                           "bytes_per_subject_marginal": round((sizes[1000] - sizes[100]) / 900)}
    return result
