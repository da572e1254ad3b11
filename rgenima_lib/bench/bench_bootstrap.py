"""Bootstrap and permutation speed, attention-dump size (issue 7).

- ROI–gene stability: 109 × 105 pairs × B = 1,000 iterations × 2,000 subjects (one group of all
  2,000: the issue's size; the pipeline runs it per stage on subsets), seconds and peak traced memory
  (numpy allocations, ``tracemalloc``) at two column-chunk sizes;
- genes (B = 1,000, top 45) and ROIs per stage (B = 1,000, top 10), seconds;
- permutation test of 109 ROIs, 3 stages vs NC, 10,000 permutations, seconds;
- dump size per 1,000 subjects (float16, compressed ``.npz``) for synthetic log-normal shares, a
  pessimistic case for compression.

``full=False`` uses 500 subjects and B = 200 for a quick look.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path


def _timed(fn):
    tracemalloc.start()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, round(seconds, 2), round(peak / 1e6, 1)


def run(out_dir: Path, full: bool) -> dict:

    from rgenima_lib.attribution.bootstrap import bootstrap_genes, bootstrap_rois, pair_stability
    from rgenima_lib.attribution.dump_format import write_dump
    from rgenima_lib.attribution.permutation import stage_permutation_tests
    from rgenima_lib.attribution.synthetic_dump import synthetic_dump

    n, b = (2000, 1000) if full else (500, 200)
    genes = [f"G{i}" for i in range(105)]
    rois = [f"R{i}" for i in range(109)]
    dump = synthetic_dump(n, genes, rois, seed=0)
    result = {"subjects": n, "n_boot": b, "pairs": 109 * 105}
    for chunk in (4096, 1024):
        _, sec, peak = _timed(lambda: pair_stability(dump.roi_gene, n_boot=b, chunk=chunk))
        result[f"roi_gene_seconds_chunk{chunk}"] = sec
        result[f"roi_gene_peak_mb_chunk{chunk}"] = peak
        print(f"ROI-gene, chunk {chunk}: {sec} s, peak {peak} MB", flush=True)
    _, result["genes_seconds"], _ = _timed(lambda: bootstrap_genes(dump.gene_importance, genes, n_boot=b))
    _, result["rois_seconds"], _ = _timed(lambda: bootstrap_rois(dump.roi_importance, dump.label, rois, n_boot=b))
    _, result["permutation_10000_seconds"], _ = _timed(
        lambda: stage_permutation_tests(dump.roi_importance, dump.label, rois, n_perm=10000))
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {}
        for m in (100, 1000):
            path = Path(tmp) / f"dump{m}.npz"
            write_dump(path, synthetic_dump(m, genes, rois, seed=1))
            sizes[m] = path.stat().st_size
    result["dump_mb_per_1000_subjects"] = round(sizes[1000] / 1e6, 2)
    result["dump_mb_per_1000_subjects_uncompressed"] = round(1000 * (109 * 105 + 109 + 105) * 2 / 1e6, 2)
    result["dump_bytes_per_subject_marginal"] = round((sizes[1000] - sizes[100]) / 900)
    print(result, flush=True)
    return result
