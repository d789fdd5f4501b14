"""Built-in architectures: ``mlp``, ``small_cnn`` (alias ``cifar_tiny``), ``mnist_tiny``, ``resnet18``.

``small_cnn`` is the certified-unlearning paper's CIFAR net (certified.md §9.2): Conv(c→32, 3×3, pad 1) → ReLU →
AvgPool(2) → Conv(32→64, 3×3, pad 1) → ReLU → AvgPool(2) → global mean → Linear(64, C); 20,042 parameters at
3×32×32, no BatchNorm, He-scaled truncated-normal kernels and zero biases. ``mnist_tiny``: Flatten →
Linear(d, 5) → ReLU → Linear(5, C) (3,985 parameters at 28×28), LeCun scaling. ``resnet18``: the CIFAR variant
(3×3 stem, stride 1, no max-pool) used by the SalUn family.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unlearnlab.models.registry import register_model

_TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def flax_trunc_normal_(layer: nn.Module, scale: float) -> None:
    """Kernel ~ truncated N(0,1) on [−2, 2] × sqrt(scale/fan_in)/0.8796…, bias 0 (certified.md §9.2)."""
    weight = layer.weight
    fan_in = weight[0].numel()
    with torch.no_grad():
        nn.init.trunc_normal_(weight, 0.0, 1.0, -2.0, 2.0)
        weight.mul_(math.sqrt(scale / fan_in) / _TRUNC_STD)
        if layer.bias is not None:
            layer.bias.zero_()


@register_model("mlp")
def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (128,)) -> nn.Module:
    """Flatten → [Linear → ReLU]·len(hidden) → Linear(C); PyTorch default init."""
    dims = [math.prod(input_shape), *hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(dims[-1], num_classes))
    return nn.Sequential(*layers)


class GlobalMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@register_model("small_cnn", "cifar_tiny")
def small_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    c = input_shape[0]
    net = nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        GlobalMean(), nn.Linear(64, num_classes),
    )
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            flax_trunc_normal_(m, 2.0)
    return net


@register_model("mnist_tiny")
def mnist_tiny(input_shape: tuple[int, ...], num_classes: int, hidden: int = 5) -> nn.Module:
    net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                        nn.Linear(hidden, num_classes))
    for m in net.modules():
        if isinstance(m, nn.Linear):
            flax_trunc_normal_(m, 1.0)
    return net


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 conv-BN layers with an identity or 1×1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@register_model("resnet18")
def resnet18(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(input_shape[0], 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)
