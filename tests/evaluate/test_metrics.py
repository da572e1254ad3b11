"""Metrics of Tables 1–5 checked against scikit-learn and by hand; the tables themselves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from rgenima_lib.errors import InputDataError
from rgenima_lib.evaluate.metrics import (auc_one_vs_rest, bootstrap_ci, classification_metrics, confusion_matrix,
                                          label_indices, summarize_folds)
from rgenima_lib.evaluate.tables import PAPER, Run, model_label, read_predictions, row_sort_key, write_tables
from rgenima_lib.model_ids import canonical_model
from rgenima_lib.vocabulary import STAGES


def random_predictions(n=300, seed=0, skill=1.5):
    rng = np.random.default_rng(seed)
    y = rng.choice(4, n, p=[0.32, 0.05, 0.46, 0.17])
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), y] += skill
    logits[:, 3] = np.round(logits[:, 3], 1)  # ties, which AUC must average
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, prob.argmax(1), prob


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learn(seed):
    y, pred, prob = random_predictions(seed=seed)
    m = classification_metrics(y, pred, prob)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=range(4), zero_division=0)
    for i, stage in enumerate(STAGES):
        assert m[f"precision_{stage}"] == pytest.approx(p[i])
        assert m[f"recall_{stage}"] == pytest.approx(r[i])
        assert m[f"f1_{stage}"] == pytest.approx(f[i])
        assert m[f"support_{stage}"] == s[i]
        assert m[f"auc_{stage}"] == pytest.approx(skm.roc_auc_score(y == i, prob[:, i]))
    assert m["auc_macro"] == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr", average="macro"))


def test_specificity_by_hand():
    # true:  NC NC NC SMC MCI MCI MCI AD AD
    # pred:  NC MCI NC SMC MCI NC  MCI AD MCI
    y = label_indices(["NC", "NC", "NC", "SMC", "MCI", "MCI", "MCI", "AD", "AD"])
    pred = label_indices(["NC", "MCI", "NC", "SMC", "MCI", "NC", "MCI", "AD", "MCI"])
    cm = confusion_matrix(y, pred)
    assert cm.tolist() == [[2, 0, 1, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 1, 1]]
    m = classification_metrics(y, pred)
    # Specificity = TN / (TN + FP), from the confusion matrix by hand.
    # NC: FP = 1 (an MCI called NC), TN = 9 - 3 (true NC) - 1 = 5      -> 5/6
    # SMC: FP = 0, TN = 8                                                -> 1
    # MCI: FP = 2 (an NC and an AD called MCI), TN = 9 - 3 - 2 = 4     -> 4/6
    # AD: FP = 0, TN = 7                                                 -> 1
    assert m["specificity_NC"] == pytest.approx(5 / 6)
    assert m["specificity_SMC"] == pytest.approx(1.0)
    assert m["specificity_MCI"] == pytest.approx(4 / 6)
    assert m["specificity_AD"] == pytest.approx(1.0)
    # Specificity is the recall of the negatives: check against scikit-learn that way too.
    for i, stage in enumerate(STAGES):
        assert m[f"specificity_{stage}"] == pytest.approx(skm.recall_score(y != i, pred != i))


def test_unparseable_answers_count_as_wrong():
    y = label_indices(["NC", "MCI", "AD", "MCI", "SMC", "NC"])
    gen = ["NC", "", "AD", "MCI", "banana", "MCI"]
    pred = label_indices(gen)
    assert pred.tolist() == [0, -1, 3, 2, -1, 2]
    m = classification_metrics(y, pred)
    assert m["unparsed_rate"] == pytest.approx(2 / 6)
    y_str = [STAGES[i] for i in y]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_str, gen))
    p, r, f, _ = skm.precision_recall_fscore_support(y_str, gen, labels=list(STAGES), zero_division=0)
    for i, stage in enumerate(STAGES):
        assert (m[f"precision_{stage}"], m[f"recall_{stage}"], m[f"f1_{stage}"]) == pytest.approx((p[i], r[i], f[i]))


def test_auc_undefined_for_absent_class():
    y = np.array([0, 2, 2, 3])
    prob = np.full((4, 4), 0.25)
    auc = auc_one_vs_rest(y, prob)
    assert np.isnan(auc[1]) and auc[0] == pytest.approx(0.5)


def test_bootstrap_ci_brackets_the_estimate_and_is_reproducible():
    y, pred, prob = random_predictions(n=400)
    point = classification_metrics(y, pred, prob)
    ci = bootstrap_ci(y, pred, prob, n_boot=300, seed=1)
    for key in ("accuracy", "macro_f1", "balanced_accuracy", "auc_macro", "recall_SMC", "specificity_AD"):
        lo, hi = ci[key]
        assert lo <= point[key] <= hi and hi - lo < 0.5
    assert ci == bootstrap_ci(y, pred, prob, n_boot=300, seed=1)
    wide = bootstrap_ci(y[:80], pred[:80], None, n_boot=300, seed=1)["accuracy"]
    assert wide[1] - wide[0] > ci["accuracy"][1] - ci["accuracy"][0]


def test_fold_summary():
    s = summarize_folds([{"accuracy": 0.5}, {"accuracy": 0.7}, {"accuracy": float("nan")}])
    assert s["accuracy"][0] == pytest.approx(0.6)
    assert s["accuracy"][1] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert s["accuracy"][2] == 2


def test_paper_table_values_transcribed():
    assert len(PAPER) == 16
    assert canonical_model("qwen_rit") == canonical_model("rgenima_qwen") == "rgenima_qwen"
    assert canonical_model("llama_snp") == "llama" and canonical_model("llama_med3d") == "llama_med3d"
    assert model_label("rgenima_llama") == "R-GenIMA (Llama)" and model_label("qwen") == "Qwen"
    assert PAPER[("image_gene", "rgenima_qwen")]["accuracy"] == 95.58
    assert PAPER[("gene_only", "bert")]["precision_SMC"] == 100
    assert PAPER[("mixture", "qwen_med3d")]["f1_MCI"] == 98.24


def predictions_table(seed, n=40, generated=False):
    y, pred, prob = random_predictions(n=n, seed=seed)
    table = pd.DataFrame({"subject": [f"S{seed}_{i}" for i in range(n)], "stage": [STAGES[i] for i in y],
                          "predicted": [STAGES[i] for i in pred],
                          **{f"prob_{s}": prob[:, i] for i, s in enumerate(STAGES)}})
    if generated:
        table["generated_text"] = [f"This subject is {STAGES[i]}." for i in pred]
        table["generated_label"] = [STAGES[p] if i % 7 else "" for i, p in enumerate(pred)]
    return table


def test_tables_in_paper_order_with_leaky_rows_marked(tmp_path):
    runs = []
    for fold in range(3):
        for config, model, protocol in [("image_gene", "qwen_rit", "subject"), ("gene_only", "bert", "subject"),
                                        ("image_gene", "bert_rit_cross", "subject"), ("gene_only", "mlp", "subject"),
                                        ("image_gene", "bert_rit_cross", "paper"), ("image_only", "rit", "subject")]:
            path = tmp_path / "pred" / f"{config}_{model}_{protocol}_{fold}.tsv"
            path.parent.mkdir(exist_ok=True)
            predictions_table(fold * 10 + len(runs), generated=model.endswith("_rit")).to_csv(path, sep="\t", index=False)
            runs.append(Run(config, model, protocol, fold, read_predictions(path), str(path)))
    summary = write_tables(runs, tmp_path / "tables", note="synthetic demo cohort", n_boot=50)
    order = list(zip(summary["config"], summary["model"], summary["protocol"], summary["decoding"]))
    assert order == [("gene_only", "mlp", "subject", "scored"), ("gene_only", "bert", "subject", "scored"),
                     ("image_gene", "bert_rit_cross", "subject", "scored"),
                     ("image_gene", "bert_rit_cross", "paper", "scored"),
                     ("image_gene", "qwen_rit", "subject", "scored"),
                     ("image_gene", "qwen_rit", "subject", "generated"),
                     ("image_only", "rit", "subject", "scored")]
    assert order == sorted(order, key=lambda k: row_sort_key(*k))
    md = (tmp_path / "tables" / "table1.md").read_text()
    assert "BERT+RiT‡ §" in md and "leaky" in md and "synthetic demo cohort" in md
    assert "R-GenIMA (Qwen) [generated]" in md
    t3 = pd.read_csv(tmp_path / "tables" / "table3.tsv", sep="\t")
    assert {"precision_SMC_mean", "specificity_SMC_ci_high", "paper_recall_SMC"} <= set(t3.columns)
    assert t3.loc[t3["model"] == "bert", "paper_recall_SMC"].item() == 5.88
    folds = pd.read_csv(tmp_path / "tables" / "metrics_folds.tsv", sep="\t")
    assert len(folds) == 3 * 7
    assert (tmp_path / "tables" / "confusion" / "image_gene__bert_rit_cross__paper.png").stat().st_size > 1000
    assert "R-GenIMA (Qwen) | 95.58" in (tmp_path / "tables" / "paper_vs_ours.md").read_text()


def test_bad_predictions_are_refused(tmp_path):
    table = predictions_table(0, n=5)
    table.loc[0, "prob_NC"] += 0.5
    path = tmp_path / "bad.tsv"
    table.to_csv(path, sep="\t", index=False)
    with pytest.raises(InputDataError, match="sum to 1"):
        read_predictions(path)
    table = predictions_table(0, n=5).drop(columns="prob_AD")
    table.to_csv(path, sep="\t", index=False)
    with pytest.raises(InputDataError, match="prob_AD"):
        read_predictions(path)
