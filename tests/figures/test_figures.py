"""Figures 1-2 (paper 2.3-2.4) from bootstrap tables: what is drawn, the demo note, PNG + PDF."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rgenima_lib.attribution.bootstrap import bootstrap_pairs, bootstrap_rois
from rgenima_lib.attribution.synthetic_dump import synthetic_dump
from rgenima_lib.figures import figure1 as figure1_module
from rgenima_lib.figures import figure2 as figure2_module
from rgenima_lib.figures.figure1 import plot_figure1, sharing_categories, stable_rois_by_stage
from rgenima_lib.figures.figure2 import manhattan_layout, plot_figure2

NOTE = "demo model, random init"
PLANTED = {"SMC": ["Left-Cerebellum-Cortex", "ctx-rh-insula", "Left-Putamen"],
           "MCI": ["Left-Cerebellum-Cortex", "ctx-rh-insula", "ctx-rh-frontalpole"],
           "AD": ["Left-Cerebellum-Cortex", "Left-Caudate"]}


@pytest.fixture(scope="module")
def tables(rois):
    info = rois
    genes = [f"G{i}" for i in range(105)]
    dump = synthetic_dump(500, genes, info["name"].tolist(), planted_rois=PLANTED,
                          planted_pairs=[("ctx-rh-insula", "G7", ["SMC", "MCI"])], effect=2.0, seed=1)
    rois = bootstrap_rois(dump.roi_importance, dump.label, dump.rois, n_boot=100, top_k=3, seed=0)
    pairs = bootstrap_pairs(dump.roi_gene, dump.label, dump.rois, dump.genes, n_boot=100, seed=0)
    return info, rois, pairs


@pytest.fixture
def captured(monkeypatch):
    """Texts of every figure saved (save_figure still writes the files)."""
    texts = []
    save = figure2_module.save_figure

    def spy(fig, png, pdf=None, dpi=200):
        texts.extend(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
        save(fig, png, pdf, dpi=60)

    monkeypatch.setattr(figure2_module, "save_figure", spy)
    monkeypatch.setattr(figure1_module, "save_figure", spy)
    return texts


def test_sharing_categories():
    cats = sharing_categories({"SMC": ["a", "b", "c"], "MCI": ["a", "b"], "AD": ["a", "d"]})
    assert cats["SMC"] == {"a": "all stages", "b": "two stages", "c": "this stage only"}
    assert cats["AD"] == {"a": "all stages", "d": "this stage only"}


def test_figure1_draws_each_stages_stable_rois_with_names_and_note(tables, tmp_path, captured):
    info, rois, _ = tables
    stable = stable_rois_by_stage(rois)
    assert {s: set(v) for s, v in stable.items()} == {s: set(v) for s, v in PLANTED.items()}
    # A small label volume (a cube around each centroid) stands in for the phantom's 2 mm labels.
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-90, -126, -72]
    labels = np.zeros((46, 55, 46), np.int32)
    for row in info.itertuples():
        i, j, k = np.round((np.array([row.mni_x, row.mni_y, row.mni_z]) - affine[:3, 3]) / 4).astype(int)
        labels[i - 1:i + 2, j - 1:j + 2, k - 1:k + 2] = row.label_id
    drawn = plot_figure1(rois, info, tmp_path / "f1.png", tmp_path / "f1.pdf", labels_img=nib.Nifti1Image(labels, affine),
                         note=NOTE)
    assert drawn["SMC"]["Left-Putamen"] == "this stage only" and drawn["AD"]["Left-Cerebellum-Cortex"] == "all stages"
    assert drawn["MCI"]["ctx-rh-insula"] == "two stages"
    assert NOTE in captured and any(t.startswith("Left-Putamen") for t in captured)
    assert (tmp_path / "f1.png").stat().st_size > 5000 and (tmp_path / "f1.pdf").read_bytes()[:4] == b"%PDF"


def test_figure2_restricts_to_stable_rois_and_annotates_the_two_most_stable_genes(tables, tmp_path, captured):
    _, rois, pairs = tables
    empty = rois.copy()
    empty.loc[empty["stage"] == "AD", "stable"] = False
    drawn = plot_figure2(pairs, empty, tmp_path / "f2.png", tmp_path / "f2.pdf", note=NOTE)
    for stage in ("SMC", "MCI"):
        assert {r for r, _, _ in drawn[stage]} == set(PLANTED[stage])
        for roi in PLANTED[stage]:
            t = pairs[(pairs["stage"] == stage) & (pairs["roi"] == roi)].nlargest(2, "stability")
            assert {g for r, g, _ in drawn[stage] if r == roi} == set(t["gene"])
    assert ("ctx-rh-insula", "G7") in {(r, g) for r, g, _ in drawn["SMC"]}  # the planted pair peaks
    assert drawn["AD"] == [] and "no stable ROI at this threshold" in captured and NOTE in captured
    assert (tmp_path / "f2.pdf").stat().st_size > 5000


def test_manhattan_blocks_are_contiguous_and_ordered():
    pairs = pd.DataFrame({"roi": ["B", "B", "A", "A", "C"], "gene": ["g1", "g0", "g0", "g1", "g0"],
                          "stability": [1.0, 2.0, 3.0, 4.0, 5.0]})
    t = manhattan_layout(pairs, ["B", "A"], ["g0", "g1"])
    assert t["roi"].tolist() == ["B", "B", "A", "A"] and t["x"].tolist() == [0, 1, 4, 5]


def test_power_figure_draws_recovery_against_n(tmp_path):
    from rgenima_lib.figures.power import plot_power

    rows = [{"effect": e, "n_subjects": n, "replicate": 0, "what": w, "selection": s, "n_planted": 9, "n_found": 9,
             "true_positives": 9 * n // 2000, "precision": n / 2000, "recall": n / 2000, "accuracy": 0.5}
            for e in ("demo", "gwas") for n in (200, 2000) for w in ("genes", "stage ROIs")
            for s in ("top_k", "significance", "stability")]
    plot_power(pd.DataFrame(rows), tmp_path / "power.png", tmp_path / "power.pdf", note="test")
    assert (tmp_path / "power.png").stat().st_size > 5000 and (tmp_path / "power.pdf").exists()
