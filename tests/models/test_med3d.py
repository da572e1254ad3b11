"""Med3D (3D ResNet-18, MedicalNet layout): shapes and loading MedicalNet-format checkpoints."""

from __future__ import annotations

import pytest
import torch

from rgenima_lib.errors import InputDataError
from rgenima_lib.models.med3d import Med3D, Med3DConfig, load_medicalnet_weights, shortcut_of

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return Med3D(Med3DConfig(shortcut="A")).eval()


def medicalnet_checkpoint(model: Med3D) -> dict:
    """What MedicalNet's training saves: DataParallel names, a segmentation head, wrapped in 'state_dict'."""
    sd = {f"module.{k}": v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    sd["module.conv_seg.0.weight"] = torch.randn(512, 32, 2, 2, 2)
    sd["module.conv_seg.4.weight"] = torch.randn(2, 32, 1, 1, 1)
    return {"state_dict": sd, "epoch": 200}


def test_shapes_and_resnet18_layout(reference):
    volume = torch.randn(2, 20, 24, 22)
    assert reference.encode(volume).shape == (2, 1, 512)
    assert reference(volume).shape == (2, 4)
    assert reference(volume[:, None]).shape == (2, 4)
    assert [len(getattr(reference, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]
    assert reference.layer4[0].conv1.dilation == (4, 4, 4)  # MedicalNet: dilated, not strided, layers 3-4
    assert reference.init_source == "random init"


def test_medicalnet_checkpoint_loads(tmp_path, reference):
    path = tmp_path / "resnet_18.pth"
    torch.save(medicalnet_checkpoint(reference), path)
    torch.manual_seed(1)
    model = Med3D(Med3DConfig(shortcut="A")).eval()
    volume = torch.randn(1, 16, 16, 16)
    assert not torch.allclose(model.features(volume), reference.features(volume))
    report = load_medicalnet_weights(model, path)
    assert sorted(report.ignored) == ["conv_seg.0.weight", "conv_seg.4.weight"]
    assert report.missing == []
    assert "layer4.1.bn2.running_var" in report.loaded
    torch.testing.assert_close(model.features(volume), reference.features(volume))
    assert model.init_source.startswith("MedicalNet weights from") and str(path) in model.init_source


def test_shortcut_b_is_detected_and_mismatch_refused(reference):
    torch.manual_seed(2)
    b_model = Med3D(Med3DConfig(shortcut="B"))
    sd_b = {f"module.{k}": v for k, v in b_model.state_dict().items()}
    assert shortcut_of(sd_b) == "B"
    assert shortcut_of(medicalnet_checkpoint(reference)["state_dict"]) == "A"
    with pytest.raises(InputDataError, match="shortcut"):
        load_medicalnet_weights(Med3D(Med3DConfig(shortcut="A")), sd_b)
    report = load_medicalnet_weights(Med3D(Med3DConfig(shortcut="B")), sd_b)
    assert "layer2.0.downsample.0.weight" in report.loaded


def test_wrong_shapes_and_missing_file_are_clear_errors(tmp_path, reference):
    sd = medicalnet_checkpoint(reference)["state_dict"]
    sd["module.conv1.weight"] = torch.randn(64, 1, 3, 3, 3)
    with pytest.raises(InputDataError, match="conv1.weight"):
        load_medicalnet_weights(Med3D(), sd)
    with pytest.raises(InputDataError, match="not found"):
        load_medicalnet_weights(Med3D(), tmp_path / "absent.pth")


def test_width_multiplier_for_the_cpu_demo():
    model = Med3D(Med3DConfig(width=0.25)).eval()
    assert model.config.feature_dim == 128
    assert model.encode(torch.randn(1, 16, 16, 16)).shape == (1, 1, 128)
