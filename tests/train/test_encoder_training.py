"""Stage-1 pretraining: train subjects only, stratified validation, balance, determinism, checkpoints, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import read_png
from rgenima_lib.models.embedding_cache import (embedding_info, load_embeddings, save_embeddings,
                                                select_subjects)
from rgenima_lib.models.med3d import Med3D
from rgenima_lib.models.rit import RiT, RiTConfig
from rgenima_lib.train.classifier import FitConfig, class_weights, seed_everything, stratified_holdout
from rgenima_lib.train.encoder import (checkpoint_info, embed_subjects, load_checkpoint, plot_training_curve,
                                       pretrain_encoder, save_checkpoint)
from rgenima_lib.vocabulary import STAGES

torch.set_num_threads(2)

CFG = RiTConfig(n_rois=5, roi_size=4, dim=16, depth=1, heads=2, dropout=0.1)


class FakeROIs:
    """``load(subject)``: deterministic ROI arrays per subject, remembering who was read."""

    def __init__(self, n=40, seed=0):
        rng = np.random.default_rng(seed)
        self.subjects = [f"{i:03d}_S_{1000 + i}" for i in range(n)]
        self.labels = rng.choice(4, n, p=[0.35, 0.1, 0.4, 0.15])
        self.data = {}
        for s, y in zip(self.subjects, self.labels):
            rois = rng.normal(0, 1, (CFG.n_rois, 4, 4, 4)).astype(np.float32)
            rois[0] += y  # planted: ROI 0 brighter with stage
            presence = rng.random(CFG.n_rois) > 0.15
            rois[~presence] = 0
            self.data[s] = {"rois": rois, "presence": presence,
                            "volume": rng.integers(100, 1000, CFG.n_rois).astype(np.float32)}
        self.seen = set()

    def __call__(self, subject):
        self.seen.add(subject)
        return self.data[subject]


def test_class_weights_and_stratified_holdout():
    labels = np.array([0] * 10 + [1] * 2 + [2] * 6 + [3])
    w = class_weights(labels, 4)
    assert w[1] == pytest.approx(19 / (4 * 2)) and (w * np.bincount(labels)).sum() == pytest.approx(19)
    assert class_weights(np.array([0, 0, 2]), 4)[[1, 3]].tolist() == [0, 0]
    fit, val = stratified_holdout(labels, 0.25, seed=0)
    assert sorted(np.concatenate([fit, val]).tolist()) == list(range(19))
    assert np.bincount(labels[val], minlength=4).tolist() == [2, 1, 2, 0]  # the lone class-3 subject stays in fit
    assert np.array_equal(val, stratified_holdout(labels, 0.25, seed=0)[1])


def train_once(data, seed, balance="loss", epochs=3):
    test = set(data.subjects[30:])
    train_subjects = data.subjects[:30]
    seed_everything(seed)
    model = RiT(CFG)
    result = pretrain_encoder(model, train_subjects, data.labels[:30], data,
                              FitConfig(epochs=epochs, batch_size=8, lr=1e-3, seed=seed, balance=balance, patience=10),
                              val_fraction=0.25)
    assert not (data.seen & test), "a test subject was read during pretraining"
    return model, result


def test_pretraining_sees_train_subjects_only_and_is_deterministic():
    data = FakeROIs()
    a, res_a = train_once(data, seed=3)
    assert set(res_a.val_subjects) <= set(data.subjects[:30]) and not set(res_a.val_subjects) & set(res_a.fit_subjects)
    assert len(res_a.fit.history) == 3 and 1 <= res_a.fit.best_epoch <= 3
    assert {"train_loss", "val_loss", "val_balanced_accuracy"} <= set(res_a.fit.history[0])
    b, res_b = train_once(data, seed=3)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert res_a.fit.history == res_b.fit.history
    c, _ = train_once(data, seed=4)
    assert not torch.equal(a.patch.weight, c.patch.weight)


def test_normalisation_fitted_on_fit_subjects_only():
    data = FakeROIs()
    seed_everything(0)
    model = RiT(RiTConfig(**{**CFG.to_dict(), "roi_volume": True}))
    result = pretrain_encoder(model, data.subjects[:30], data.labels[:30], data, FitConfig(epochs=1, batch_size=8),
                              val_fraction=0.25)
    fit = result.fit_subjects
    expected = np.mean([data.data[s]["rois"][0] for s in fit if data.data[s]["presence"][0]], axis=0)
    np.testing.assert_allclose(model.input_mean[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    # the relative log volume (head-size corrected) of ROI 1, averaged over the fit subjects that have it
    rel = []
    for s in fit:
        vol, pres = np.log1p(data.data[s]["volume"]), data.data[s]["presence"]
        if pres[1]:
            rel.append(vol[1] - vol[pres].mean())
    assert model.volume_mean[1].item() == pytest.approx(np.mean(rel), rel=1e-4)


def test_balanced_sampler_mode_runs():
    _, res = train_once(FakeROIs(), seed=0, balance="sampler", epochs=1)
    assert res.fit.class_weights == [1.0, 1.0, 1.0, 1.0]


def test_checkpoint_curve_and_embedding_cache_round_trip(tmp_path):
    data = FakeROIs(n=12)
    seed_everything(0)
    model = RiT(CFG).eval()
    save_checkpoint(model, tmp_path / "rit.safetensors", {"encoder": "rit", "config": CFG.to_dict(), "fold": 0})
    assert checkpoint_info(tmp_path / "rit.safetensors")["config"]["dim"] == 16
    seed_everything(1)
    again = RiT(RiTConfig(**checkpoint_info(tmp_path / "rit.safetensors")["config"])).eval()
    load_checkpoint(again, tmp_path / "rit.safetensors")
    tokens, presence, _ = embed_subjects(again, data.subjects, data, batch_size=5)
    assert tokens.shape == (12, 5, 16) and tokens.dtype == np.float16 and presence.dtype == np.uint8
    expected = np.stack([data.data[s]["presence"] for s in data.subjects]).astype(np.uint8)
    assert np.array_equal(presence, expected)
    assert np.all(tokens[presence == 0] == 0)
    with torch.no_grad():
        direct = model.encode(torch.tensor(data.data[data.subjects[3]]["rois"])[None],
                              torch.tensor(data.data[data.subjects[3]]["presence"])[None])[0].numpy()
    np.testing.assert_allclose(tokens[3], direct, atol=2e-3, rtol=2e-3)  # float16 rounding

    path = tmp_path / "embeddings" / "rit" / "fold0.safetensors"
    save_embeddings(path, data.subjects, tokens, presence, {"encoder": "rit", "fold": 0, "init": "random init"})
    subjects, t2, p2 = load_embeddings(path)
    assert subjects == data.subjects and np.array_equal(t2, tokens) and np.array_equal(p2, presence)
    assert t2.dtype == np.float16 and p2.dtype == np.uint8
    assert embedding_info(path) == {"encoder": "rit", "fold": 0, "init": "random init"}
    t3, p3 = select_subjects(subjects, t2, p2, [subjects[5], "NOT_IMAGED", subjects[0]])
    assert np.array_equal(t3[0], tokens[5]) and np.all(t3[1] == 0) and np.all(p3[1] == 0)

    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.3 + 0.1 * e,
                "val_balanced_accuracy": 0.25 + 0.1 * e} for e in range(1, 6)]
    plot_training_curve(history, tmp_path / "curve.png", "RiT fold 0", best_epoch=4)
    curve = read_png(tmp_path / "curve.png")
    assert curve.shape == (int(3.4 * 120), 9 * 120, 3)  # 9 x 3.4 in at 120 dpi
    width = curve.shape[1]
    first, second = (np.abs(curve - np.array(rgb)).max(axis=2) < 0.08 for rgb in ((0.122, 0.467, 0.706),
                                                                                 (1.0, 0.498, 0.055)))
    for panel in (slice(0, width // 2), slice(width // 2, width)):  # loss, then validation accuracy
        assert first[:, panel].sum() > 300 and second[:, panel].sum() > 300, "a curve is missing"
    title = curve[: int(0.06 * curve.shape[0]), int(0.4 * width): int(0.6 * width)]
    assert (title.max(axis=2) < 0.5).sum() > 50, "no title above the panels"
    plot_training_curve(history, tmp_path / "unmarked.png", "RiT fold 0")
    assert (np.abs(read_png(tmp_path / "unmarked.png") - curve).max(axis=2) > 0.1).sum() > 200, \
        "the best epoch is not marked"


def test_cache_refuses_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="shapes"):
        save_embeddings(tmp_path / "x.safetensors", ["a", "b"], np.zeros((2, 3, 4)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="duplicate"):
        save_embeddings(tmp_path / "x.safetensors", ["a", "a"], np.zeros((2, 3, 4)), np.ones((2, 3)))
    assert not (tmp_path / "x.safetensors").exists()


def test_med3d_embeds_one_token_with_presence_one():
    seed_everything(0)
    model = Med3D()
    vols = {f"s{i}": {"volume": np.random.default_rng(i).normal(size=(16, 16, 16)).astype(np.float32)} for i in range(3)}
    tokens, presence, _ = embed_subjects(model, list(vols), vols.__getitem__, batch_size=2)
    assert tokens.shape == (3, 1, 512) and presence.tolist() == [[1], [1], [1]]


# --- one fold's stage-1 run (train.encoder.pretrain_fold) ---------------------------------------------------

ENCODER_SETTINGS = {"model": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 4.0, "dropout": 0.1, "patch_rank": None,
                              "patch_dtype": "float32", "pool": "attention", "roi_volume": False},
                    "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.05, "patience": 10,
                              "balance": "loss", "monitor": "loss", "grad_clip": 1.0, "warmup_epochs": 1,
                              "eval_batch_size": 32},
                    "val_fraction": 0.25, "in_memory": False, "embed_batch_size": 4}


def test_encoder_settings_name_a_missing_or_unknown_key():
    from rgenima_lib.train.encoder import EncoderSettings

    assert EncoderSettings.from_dict(ENCODER_SETTINGS, "rit").fit_config(5).seed == 5
    with pytest.raises(ValueError, match=r"encoders.rit: missing setting\(s\) embed_batch_size"):
        EncoderSettings.from_dict({k: v for k, v in ENCODER_SETTINGS.items() if k != "embed_batch_size"}, "rit")
    with pytest.raises(ValueError, match=r"encoders.med3d: unknown setting\(s\) val_fractoin"):
        EncoderSettings.from_dict({**ENCODER_SETTINGS, "val_fractoin": 0.2}, "med3d")
    with pytest.raises(ValueError, match=r"encoders.train: unknown setting\(s\) epoch\b"):
        FitConfig.from_dict({**ENCODER_SETTINGS["train"], "epoch": 3, "seed": 0}, "encoders.train")


def test_pretrain_fold_trains_on_the_other_folds_and_predicts_its_own():
    import pandas as pd

    from rgenima_lib.errors import InputDataError
    from rgenima_lib.train.encoder import EncoderSettings, pretrain_fold

    data = FakeROIs()
    folds = pd.DataFrame({"subject": data.subjects, "fold": [i % 4 for i in range(40)],
                          "stage": [STAGES[y] for y in data.labels]})
    index = pd.DataFrame({"subject": data.subjects[:36]})  # the last 4 subjects have no image
    settings = EncoderSettings.from_dict(ENCODER_SETTINGS, "rit")
    run = pretrain_fold("rit", folds, index, data, 1, settings, seed=2, threads=2)
    test = [s for s, k in zip(data.subjects[:36], folds["fold"]) if k == 1]
    assert run.subjects == test and run.probabilities.shape == (len(test), 4)
    assert not data.seen & set(data.subjects[36:]), "a subject without an image was read"
    assert sorted(run.result.fit_subjects + run.result.val_subjects) == sorted(
        s for s, k in zip(data.subjects[:36], folds["fold"]) if k != 1)
    assert run.info["config"]["n_rois"] == CFG.n_rois and run.info["config"]["roi_size"] == 4
    assert run.info["fold"] == 1 and run.info["seed"] == 2 and run.info["n_val"] == len(run.result.val_subjects)
    # The same call again: the same weights, so the same test probabilities.
    again = pretrain_fold("rit", folds, index, FakeROIs(), 1, settings, seed=2, threads=2)
    assert np.array_equal(run.probabilities, again.probabilities)
    with pytest.raises(InputDataError, match="roi_index.tsv: fold 1 has no imaged training subject"):
        pretrain_fold("rit", folds, index[index["subject"].isin(test)], data, 1, settings, seed=2,
                      index_path="roi_index.tsv")


def test_roi_loader_gives_stored_uint8_or_unit_floats_and_the_same_normalisation(tmp_path):
    """Training reads the patches as stored (uint8); the normalisation it fits is the float loader's."""
    import json

    import pandas as pd

    from rgenima_lib.imaging.qc import ROI_INFO_KEYS
    from rgenima_lib.train.encoder import fit_input_normalization, roi_loader

    rng = np.random.default_rng(3)
    rows, stored = [], {}
    for i in range(4):
        subject = f"002_S_{4000 + i}"
        stored[subject] = rng.integers(0, 256, (5, 4, 4, 4), dtype=np.uint8)
        np.save(tmp_path / f"{subject}.npy", stored[subject])
        info = {k: None for k in ROI_INFO_KEYS}
        info.update(presence=[True] * 5, voxel_counts=[100.0] * 5)
        (tmp_path / f"{subject}.json").write_text(json.dumps(info))
        rows.append({"subject": subject, "rois": str(tmp_path / f"{subject}.npy"),
                     "info": str(tmp_path / f"{subject}.json")})
    index = pd.DataFrame(rows)
    as_float, as_stored = roi_loader(index), roi_loader(index, in_memory=True, stored=True)
    for subject, raw in stored.items():
        got = as_stored(subject)["rois"]
        assert got.dtype == np.uint8 and np.array_equal(got, raw)
        unit = as_float(subject)["rois"]
        assert unit.dtype == np.float32
        np.testing.assert_array_equal(unit, raw.astype(np.float32) / np.float32(255))
    subjects = list(stored)
    for a, b in zip(fit_input_normalization(subjects, as_float), fit_input_normalization(subjects, as_stored)):
        np.testing.assert_array_equal(a, b)
