"""RiT (paper 4.2.1): shapes, the full-kernel Conv3D, presence masking, and learning a planted signal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rgenima_lib.models.rit import PatchEmbed3d, RiT, RiTConfig, patch_kernel_size, relative_log_volume
from rgenima_lib.train.classifier import FitConfig, TensorDataset, fit_classifier, predict_proba, seed_everything

torch.set_num_threads(2)

TINY = RiTConfig(n_rois=6, roi_size=4, dim=16, depth=1, heads=2, dropout=0.0)


def inputs(b=3, cfg=TINY, seed=0):
    g = torch.Generator().manual_seed(seed)
    rois = torch.randn(b, cfg.n_rois, cfg.roi_size, cfg.roi_size, cfg.roi_size, generator=g)
    presence = torch.ones(b, cfg.n_rois, dtype=torch.bool)
    presence[0, 2] = False
    presence[1, [0, 5]] = False
    rois[~presence] = 0.0  # the shared format: a missing ROI is a zero patch
    return rois, presence


def test_shapes():
    torch.manual_seed(0)
    model = RiT(TINY).eval()
    rois, presence = inputs()
    assert model(rois, presence).shape == (3, 4)
    tokens = model.encode(rois, presence)
    assert tokens.shape == (3, TINY.n_rois, TINY.dim) and tokens.dtype == torch.float32
    assert torch.all(tokens[0, 2] == 0) and torch.all(tokens[1, [0, 5]] == 0)
    assert torch.all(tokens[2].abs().sum(1) > 0)


def test_wrong_shapes_are_refused():
    model = RiT(TINY)
    rois, presence = inputs()
    with pytest.raises(ValueError, match="rois must be"):
        model(rois[:, :5], presence[:, :5])
    with pytest.raises(ValueError, match="presence must be"):
        model(rois, presence[:2])


def test_patch_embedding_is_the_full_kernel_conv3d():
    torch.manual_seed(1)
    s, d = 5, 8
    patch = PatchEmbed3d(s, d)
    assert patch.weight.shape == (d, 1, s, s, s)  # stored in the Conv3d layout
    x = torch.randn(7, s, s, s)
    ref = F.conv3d(x[:, None], patch.weight, patch.bias, stride=s).view(7, d)
    torch.testing.assert_close(patch(x), ref)


def test_tucker_patch_equals_conv3d_with_its_materialised_kernel():
    torch.manual_seed(2)
    s, d, k = 6, 8, 3
    patch = PatchEmbed3d(s, d, rank=k)
    assert patch.n_kernel_weights() == 3 * k * s + d * k ** 3
    x = torch.randn(4, s, s, s)
    ref = F.conv3d(x[:, None], patch.full_kernel(), patch.bias, stride=s).view(4, d)
    torch.testing.assert_close(patch(x), ref, rtol=1e-4, atol=1e-5)


def test_bf16_patch_weights_stay_bf16_and_agree_with_fp32():
    torch.manual_seed(3)
    fp32 = PatchEmbed3d(4, 8)
    bf16 = PatchEmbed3d(4, 8, dtype=torch.bfloat16)
    bf16.load_state_dict({k: v.to(bf16.state_dict()[k].dtype) for k, v in fp32.state_dict().items()})
    assert bf16.weight.dtype == torch.bfloat16
    x = torch.randn(3, 4, 4, 4)
    out = bf16(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, fp32(x), rtol=0.05, atol=0.05)
    out.sum().backward()
    assert bf16.weight.grad.dtype == torch.bfloat16


def test_changing_a_masked_roi_changes_nothing():
    torch.manual_seed(4)
    model = RiT(TINY).eval()
    rois, presence = inputs()
    before_logits, before_tokens = model(rois, presence), model.encode(rois, presence)
    rois2 = rois.clone()
    rois2[0, 2] = torch.randn_like(rois2[0, 2]) * 10  # masked ROI: content must not matter
    rois2[1, 0] = 5.0
    torch.testing.assert_close(model(rois2, presence), before_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.encode(rois2, presence), before_tokens, rtol=0, atol=1e-6)
    rois3 = rois.clone()
    rois3[0, 3] += 1.0  # a present ROI does matter
    assert not torch.allclose(model(rois3, presence), before_logits)


def test_subject_without_any_roi_gives_finite_output():
    model = RiT(TINY).eval()
    rois, presence = inputs()
    presence[2] = False
    rois[2] = 0
    out = model(rois, presence)
    assert torch.isfinite(out).all()
    assert torch.all(model.encode(rois, presence)[2] == 0)


def test_paper_kernel_size():
    size = patch_kernel_size(96, 768)
    assert size["weights"] == 96 ** 3 * 768 == 679_477_248
    assert abs(size["gb_float32"] - 2.718) < 1e-3


def planted_rois(n: int, cfg: RiTConfig, rng: np.random.Generator):
    """Class = 2·bit(ROI 1 bright) + bit(ROI 0 bright); other ROIs noise; some ROIs missing."""
    y = rng.integers(0, 4, n)
    s = cfg.roi_size
    rois = rng.normal(0.0, 1.0, (n, cfg.n_rois, s, s, s)).astype(np.float32)
    rois[:, 0] += np.where(y % 2 == 1, 1.0, -1.0)[:, None, None, None]
    rois[:, 1] += np.where(y // 2 == 1, 1.0, -1.0)[:, None, None, None]
    presence = rng.random((n, cfg.n_rois)) > 0.2
    presence[:, :2] = True
    rois[~presence] = 0.0
    return torch.tensor(rois), torch.tensor(presence), torch.tensor(y)


def test_tiny_rit_learns_a_planted_signal():
    cfg = RiTConfig(n_rois=6, roi_size=4, dim=32, depth=1, heads=2, dropout=0.0)
    rng = np.random.default_rng(0)
    train = TensorDataset(**dict(zip(("rois", "presence", "label"), planted_rois(400, cfg, rng))))
    rois, presence, y = planted_rois(200, cfg, rng)
    seed_everything(0)
    model = RiT(cfg)
    fit_classifier(model, train, None, FitConfig(epochs=10, batch_size=16, lr=1e-2, seed=0, warmup_epochs=1))
    prob = predict_proba(model, TensorDataset(rois=rois, presence=presence))
    accuracy = float(np.mean(prob.argmax(1) == y.numpy()))
    assert accuracy > 0.85, accuracy  # chance is 0.25; 0.955-1.0 over seeds 0-4


def test_input_normalization_and_roi_volume():
    torch.manual_seed(5)
    cfg = RiTConfig(n_rois=6, roi_size=4, dim=16, depth=1, heads=2, dropout=0.0, roi_volume=True)
    model = RiT(cfg).eval()
    rois, presence = inputs()
    volume = torch.full((3, 6), 500.0)
    with pytest.raises(ValueError, match="volume"):
        model(rois, presence)
    base = model(rois, presence, volume)
    # Standardisation is part of the model: (rois - mean) / scale, with mean [N, S, S, S] and scale [N].
    model.set_input_normalization(torch.ones(6, 4, 4, 4), torch.full((6,), 2.0))
    torch.testing.assert_close(model(1.0 + 2.0 * rois, presence, volume), base, rtol=1e-5, atol=1e-5)
    model.set_input_normalization(torch.zeros(6, 4, 4, 4), torch.ones(6))
    bigger = volume.clone()
    bigger[:, 3] = 900.0
    assert not torch.allclose(model(rois, presence, bigger), base)  # the ROI's size reaches the token
    assert "input_mean" in model.state_dict() and "volume_scale" in model.state_dict()


@pytest.mark.parametrize("rank", [None, 1, 2])
def test_patch_embedding_of_stored_uint8_patches_is_the_normalised_conv3d(rank):
    """The RiT normalises after its (linear) projection; uint8 patches as stored are scaled by 1/255 there."""
    torch.manual_seed(7)
    cfg = RiTConfig(n_rois=6, roi_size=4, dim=16, depth=1, heads=2, dropout=0.0, patch_rank=rank)
    model = RiT(cfg).eval()
    mean, scale = torch.rand(6, 4, 4, 4), torch.rand(6) + 0.5
    model.set_input_normalization(mean, scale)
    stored = torch.randint(0, 256, (3, 6, 4, 4, 4), dtype=torch.uint8)
    presence = torch.ones(3, 6, dtype=torch.bool)
    unit = stored.float() / 255.0
    # The reference: normalise every voxel first, then the Conv3d with the equivalent full kernel.
    normalised = (unit - mean) / scale.view(1, 6, 1, 1, 1)
    ref = F.conv3d(normalised.reshape(18, 1, 4, 4, 4), model.patch.full_kernel(), model.patch.bias, stride=4)
    torch.testing.assert_close(model.embed_patches(unit, presence), ref.view(3, 6, 16), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.embed_patches(stored, presence), ref.view(3, 6, 16), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model(stored, presence), model(unit, presence), rtol=1e-4, atol=1e-5)


def test_rank1_tucker_kernel_starts_as_the_patch_mean():
    torch.manual_seed(6)
    patch = PatchEmbed3d(5, 8, rank=1)
    x = torch.rand(3, 5, 5, 5)
    expected = x.mean(dim=(1, 2, 3))[:, None] * patch.core[:, 0] + patch.bias
    torch.testing.assert_close(patch(x), expected, rtol=1e-5, atol=1e-6)


def test_relative_log_volume_ignores_head_size_and_keeps_atrophy():
    rng = np.random.default_rng(3)
    volume = torch.from_numpy(rng.integers(500, 5000, (2, 109)).astype(np.float64))
    presence = torch.ones(2, 109, dtype=torch.bool)
    presence[1, 7] = False
    rel = relative_log_volume(volume, presence)
    # a head 30% larger in every ROI: the same relative volumes (to the log1p offset, < 1e-3 here)
    assert torch.allclose(relative_log_volume(volume * 1.3, presence), rel, atol=1e-3)
    # independent computation: log volume minus the subject's mean over its present ROIs
    logv = np.log1p(volume.numpy())
    expected = logv[1] - np.delete(logv[1], 7).mean()
    expected[7] = 0.0
    np.testing.assert_allclose(rel[1].numpy(), expected, rtol=1e-5, atol=1e-5)
    # 25% atrophy of one ROI lowers its value by log(0.75) and leaves the others nearly unchanged
    shrunk = volume.clone()
    shrunk[0, 10] *= 0.75
    delta = relative_log_volume(shrunk, presence)[0] - rel[0]
    assert delta[10] == pytest.approx(np.log(0.75) * (1 - 1 / 109), abs=1e-3)
    assert delta.abs().sort().values[-2] < 0.01
