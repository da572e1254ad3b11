"""Med3D whole-brain encoder: 3D ResNet-18 in the MedicalNet layout (paper 4.2.1 eqs. 8–9, 4.5.1).

Chen, Ma & Zheng 2019 ("Med3D", github.com/Tencent/MedicalNet): a 3D ResNet whose last two
stages keep their resolution and dilate instead (layer3: dilation 2, layer4: dilation 4,
both stride 1), pretrained for segmentation on 23 medical datasets. We rebuild the backbone
with the same parameter names, so MedicalNet checkpoints (``resnet_18.pth``, saved from
``nn.DataParallel`` with ``module.`` prefixes, ``{"state_dict": ...}``) load directly; the
segmentation head ``conv_seg.*`` is dropped. The feature is the global average of layer4:
one 512-d token per subject (docs/design.md, "Med3D"). Without ``med3d.weights`` in the config the
backbone is randomly initialised, and :attr:`Med3D.init_source` says so in every output.

Departures
----------
- Paper eq. 8 writes the Med3D feature as 256-d; ResNet-18's last stage has 512 channels, so
  our token is 512-d (the connector maps it to the LLM width either way).
- MedicalNet's shortcut "A" (used by resnet_18.pth) detaches the zero-padded identity from
  the graph (``Variable(out.data)``); ours keeps the gradient. It has no weights either way,
  so checkpoints are unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from rgenima_lib.errors import InputDataError

FEATURE_DIM = 512


def _conv3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class ShortcutA(nn.Module):
    """Parameter-free shortcut: subsample by ``stride``, zero-pad the new channels."""

    def __init__(self, planes: int, stride: int):
        super().__init__()
        self.planes, self.stride = planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.planes - x.shape[1]))


class BasicBlock(nn.Module):
    """3×3×3 conv – BN – ReLU – 3×3×3 conv – BN, plus the shortcut, then ReLU."""

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3(cin, planes, stride, dilation)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


@dataclass(frozen=True)
class Med3DConfig:
    """Sizes of a :class:`Med3D`.

    Parameters
    ----------
    layers : tuple of int
        Blocks per stage; (2, 2, 2, 2) is ResNet-18.
    shortcut : {"A", "B"}
        "A": zero-padding identity (MedicalNet resnet_18 / resnet_34); "B": 1×1×1 conv + BN.
    n_classes : int
        Stage-1 head outputs.
    dropout : float
        Before the stage-1 head.
    width : float
        Channel multiplier: 1.0 is ResNet-18 (64-128-256-512 channels, a 512-d token, and
        the only width MedicalNet weights fit). The CPU demo uses 0.25 (a 128-d token): a
        full-width 3D ResNet-18 costs ~40 GFLOP per 64³ volume, too much for a 2-core demo.
    """

    layers: tuple[int, ...] = (2, 2, 2, 2)
    shortcut: str = "A"
    n_classes: int = 4
    dropout: float = 0.2
    width: float = 1.0

    def __post_init__(self):
        if self.shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', not {self.shortcut!r}")
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def channels(self) -> tuple[int, int, int, int]:
        """Channels of the four stages (the token dimension is the last)."""
        return tuple(max(4, int(round(c * self.width))) for c in (64, 128, 256, 512))

    @property
    def feature_dim(self) -> int:
        return self.channels[-1]

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {**asdict(self), "layers": list(self.layers)}


class Med3D(nn.Module):
    """3D ResNet (MedicalNet layout) with a pooled 512-d token and a stage-1 head.

    Parameters
    ----------
    config : Med3DConfig

    Attributes
    ----------
    init_source : str
        "random init" or "MedicalNet weights from <path>"; written into checkpoints and
        embedding caches so every downstream output says which it was.
    """

    def __init__(self, config: Med3DConfig = Med3DConfig()):
        super().__init__()
        self.config = config
        self.init_source = "random init"
        c1, c2, c3, c4 = config.channels
        self.conv1 = nn.Conv3d(1, c1, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(c1)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        self._cin = c1
        self.layer1 = self._stage(c1, config.layers[0])
        self.layer2 = self._stage(c2, config.layers[1], stride=2)
        self.layer3 = self._stage(c3, config.layers[2], dilation=2)
        self.layer4 = self._stage(c4, config.layers[3], dilation=4)
        self.head_drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(c4, config.n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        down = None
        if stride != 1 or self._cin != planes:
            if self.config.shortcut == "A":
                down = ShortcutA(planes, stride)
            else:
                down = nn.Sequential(nn.Conv3d(self._cin, planes, 1, stride=stride, bias=False),
                                     nn.BatchNorm3d(planes))
        layers = [BasicBlock(self._cin, planes, stride, dilation, down)]
        self._cin = planes
        layers += [BasicBlock(planes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @staticmethod
    def _as_volume(volume: torch.Tensor) -> torch.Tensor:
        if volume.dim() == 4:
            volume = volume[:, None]
        if volume.dim() != 5 or volume.shape[1] != 1:
            raise ValueError(f"volume must be [B, D, H, W] or [B, 1, D, H, W], got {list(volume.shape)}")
        return volume.float()

    def features(self, volume: torch.Tensor) -> torch.Tensor:
        """Pooled layer4 feature (paper eq. 8).

        Parameters
        ----------
        volume : float[B, D, H, W] or float[B, 1, D, H, W]
            Whole-brain T1 (skull-stripped, intensity-normalised).

        Returns
        -------
        float32[B, feature_dim]
            512 at full width.
        """
        x = self.maxpool(F.relu(self.bn1(self.conv1(self._as_volume(volume)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))

    def encode(self, volume: torch.Tensor) -> torch.Tensor:
        """The cached token: float[B, D, H, W] -> float32[B, 1, feature_dim] (512 at full width)."""
        return self.features(volume)[:, None, :]

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        """Stage-1 logits: float[B, D, H, W] -> float32[B, n_classes]."""
        return self.head(self.head_drop(self.features(volume)))


@dataclass
class LoadReport:
    """What :func:`load_medicalnet_weights` did.

    Attributes
    ----------
    loaded : list of str
        Backbone tensors copied from the checkpoint.
    ignored : list of str
        Checkpoint tensors dropped on purpose (the segmentation head ``conv_seg.*``).
    missing : list of str
        Backbone tensors the checkpoint did not have (left at their initial values).
    """

    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def read_medicalnet_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a MedicalNet checkpoint as a flat tensor dict with ``module.`` prefixes stripped.

    Parameters
    ----------
    path : str or Path
        ``.pth`` / ``.pt`` (``torch.save`` of ``{"state_dict": ...}`` or of the state dict
        itself; read with ``weights_only=True``, no code is unpickled) or ``.safetensors``.

    Returns
    -------
    dict of str -> Tensor
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError("MedicalNet weights not found.", path=path,
                             fix="set med3d.weights to a local resnet_18.pth, or to null for random init.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        raw = load_file(str(path))
    else:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(raw, dict) and "state_dict" in raw:
            raw = raw["state_dict"]
    if not isinstance(raw, dict):
        raise InputDataError("not a state dict.", path=path, fix="give MedicalNet's resnet_18.pth.")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in raw.items()}


def shortcut_of(state_dict: dict[str, torch.Tensor]) -> str:
    """"B" when the checkpoint has 1×1×1 downsample convs, else "A" (resnet_18.pth is A)."""
    return "B" if any(".downsample.0.weight" in k for k in state_dict) else "A"


def load_medicalnet_weights(model: Med3D, source: str | Path | dict) -> LoadReport:
    """Copy MedicalNet backbone weights into ``model`` (in place).

    Parameters
    ----------
    model : Med3D
        Its ``config.shortcut`` must match the checkpoint's (see :func:`shortcut_of`).
    source : path or dict
        A checkpoint file, or a state dict (``module.`` prefixes allowed).

    Returns
    -------
    LoadReport

    Raises
    ------
    InputDataError
        A backbone tensor has another shape, the shortcut types differ, or nothing matched.
    """
    path = None
    if isinstance(source, dict):
        sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in source.items()}
    else:
        path = Path(source)
        sd = read_medicalnet_state_dict(path)
    if shortcut_of(sd) != model.config.shortcut:
        raise InputDataError(
            f"checkpoint uses shortcut {shortcut_of(sd)}, the model {model.config.shortcut}.", path=path,
            fix=f"set med3d.shortcut: {shortcut_of(sd)} (MedicalNet: resnet_18/34 use A, the others B).")
    own = model.state_dict()
    report = LoadReport()
    update = {}
    for key, value in sd.items():
        if key.startswith("conv_seg.") or key.startswith("fc."):
            report.ignored.append(key)
            continue
        if key not in own:
            report.ignored.append(key)
            continue
        if tuple(own[key].shape) != tuple(value.shape):
            raise InputDataError(f"tensor {key} has shape {list(value.shape)}, the model expects "
                                 f"{list(own[key].shape)}.", path=path,
                                 fix="give a ResNet-18 MedicalNet checkpoint (resnet_18.pth).")
        update[key] = value.to(own[key].dtype)
        report.loaded.append(key)
    backbone = [k for k in own if not k.startswith("head.")]
    report.missing = [k for k in backbone if k not in update]
    if not update:
        raise InputDataError("no tensor of the checkpoint matches the Med3D backbone.", path=path,
                             fix="give a MedicalNet 3D ResNet-18 checkpoint.")
    model.load_state_dict(update, strict=False)
    model.init_source = f"MedicalNet weights from {path}" if path else "MedicalNet weights (state dict)"
    return report
