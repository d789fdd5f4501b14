"""Built-in architectures: ``mlp``, ``small_cnn`` (alias ``cifar_tiny``), ``mnist_tiny``, ``digits_tiny``,
``fmnist_cnn``, ``features_mlp``, ``resnet18``, ``bn_cnn`` (alias ``digits_cnn2``), ``sine_mlp``; layer tables,
parameter counts and the two initialisation schemes: docs/models.md.

``small_cnn`` is the certified-unlearning paper's CIFAR net: Conv(c→32, 3×3, pad 1) → ReLU →
AvgPool(2) → Conv(32→64, 3×3, pad 1) → ReLU → AvgPool(2) → global mean → Linear(64, C); 20,042 parameters at
3×32×32, no BatchNorm, He-scaled truncated-normal kernels and zero biases. ``mnist_tiny``: Flatten →
Linear(d, 5) → ReLU → Linear(5, C) (3,985 parameters at 28×28), LeCun scaling. ``resnet18``: the CIFAR variant
(3×3 stem, stride 1, no max-pool) used by the SalUn family.
``digits_tiny`` (the certified experiments' scaled CPU net): Flatten → Linear(64, 16) → ReLU → Linear(16, C)
(1,210 parameters at 8×8). ``fmnist_cnn``: the Fashion-MNIST headline model, a strided CNN that trains at ~14k
images/s on one CPU core (docs/protocols.md): Conv(c→16, 5×5, stride 2, pad 2) → ReLU → Conv(16→32, 3×3, stride 2,
pad 1) → ReLU → Flatten → Linear(32·⌈H/4⌉·⌈W/4⌉, 64) → ReLU → Linear(64, C); 106,122 parameters at 1×28×28, PyTorch
default init. ``features_mlp`` (the paper's feature-experiment head, reference ``three_layer_net``): Flatten →
Linear(512, 32) → ReLU → Linear(32, 32) → ReLU → Linear(32, C) on precomputed 512-d features (17,802 / 20,772
parameters for C = 10 / 100); the frozen ResNet-18 feature extractor is not part of the model. Both use
:class:`FlaxLinear` (LeCun-scaled
truncated normal, zero bias) so that a fresh re-initialisation through ``reset_parameters()`` (``retrain``)
reproduces the Flax initialisation too.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unlearnlab.models.registry import register_model

_TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def flax_trunc_normal_(layer: nn.Module, scale: float) -> None:
    """Kernel ~ truncated N(0,1) on [−2, 2] × sqrt(scale/fan_in)/0.8796…, bias 0 (docs/models.md, "Initialisation").

    Dividing by the truncated normal's std gives the kernel variance scale/fan_in, as Flax's initialiser does.
    """
    weight = layer.weight
    fan_in = weight[0].numel()
    with torch.no_grad():
        nn.init.trunc_normal_(weight, 0.0, 1.0, -2.0, 2.0)
        weight.mul_(math.sqrt(scale / fan_in) / _TRUNC_STD)
        if layer.bias is not None:
            layer.bias.zero_()


class FlaxLinear(nn.Linear):
    """``nn.Linear`` whose ``reset_parameters()`` is :func:`flax_trunc_normal_` with ``init_scale`` (1 = LeCun)."""

    def __init__(self, in_features: int, out_features: int, init_scale: float = 1.0):
        self.init_scale = init_scale  # read by reset_parameters(), which nn.Linear.__init__ calls
        super().__init__(in_features, out_features)

    def reset_parameters(self) -> None:
        flax_trunc_normal_(self, self.init_scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, init_scale={self.init_scale}"


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


@register_model("fmnist_cnn")
def fmnist_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Two strided convolutions and a 64-unit hidden layer (module docstring); 91 % test accuracy on
    Fashion-MNIST after 8 epochs of SGD (docs/protocols.md, "fmnist-random10")."""
    c, h, w = input_shape
    flat = 32 * math.ceil(h / 4) * math.ceil(w / 4)
    return nn.Sequential(nn.Conv2d(c, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(flat, 64), nn.ReLU(), nn.Linear(64, num_classes))


@register_model("mnist_tiny")
def mnist_tiny(input_shape: tuple[int, ...], num_classes: int, hidden: int = 5) -> nn.Module:
    net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                        nn.Linear(hidden, num_classes))
    for m in net.modules():
        if isinstance(m, nn.Linear):
            flax_trunc_normal_(m, 1.0)
    return net


@register_model("digits_tiny")
def digits_tiny(input_shape: tuple[int, ...], num_classes: int, hidden: int = 16) -> nn.Module:
    """Flatten → Linear(64, 16) → ReLU → Linear(16, C); d = 1,210 at 8×8, C = 10."""
    return nn.Sequential(nn.Flatten(), FlaxLinear(math.prod(input_shape), hidden), nn.ReLU(),
                         FlaxLinear(hidden, num_classes))


@register_model("features_mlp")
def features_mlp(input_shape: tuple[int, ...], num_classes: int, hidden: int = 32) -> nn.Module:
    """The reference ``three_layer_net`` on 512-d features: d = 17,802 (C = 10) / 20,772 (C = 100).

    Through :func:`unlearnlab.models.create` (whose ``Normalize`` is 4-D, ``(1, C, 1, 1)``), give the features a
    3-D per-sample shape: ``input_shape=(1, 1, 512)`` (one scalar mean/std) or ``(512, 1, 1)`` (per feature).
    """
    return nn.Sequential(nn.Flatten(), FlaxLinear(math.prod(input_shape), hidden), nn.ReLU(),
                         FlaxLinear(hidden, hidden), nn.ReLU(), FlaxLinear(hidden, num_classes))


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


# ------------------------------------------------------------------ MinNorm-OG models (docs/minnorm_experiments.md)


class MultiHead(nn.Module):
    """Linear heads on one feature vector: a tensor for one head, a tuple (content, colour, …) for several."""

    def __init__(self, features: int, heads: tuple[int, ...]):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(features, h) for h in heads)

    def forward(self, z: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outs = tuple(head(z) for head in self.heads)
        return outs[0] if len(outs) == 1 else outs


@register_model("bn_cnn", "digits_cnn2")
def bn_cnn(input_shape: tuple[int, ...], num_classes: int, heads: tuple[int, ...] | None = None) -> nn.Module:
    """The MinNorm-OG image experiments' net: Conv(c→16, 3×3, pad 1, no bias) → BN → ReLU → Conv(16→32) →
    BN → ReLU → MaxPool(2) → Conv(32→64) → BN → ReLU → global mean → heads (default one head of ``num_classes``).

    PyTorch default init. d = 24,058 (1 channel, heads 10), 24,346 (3 channels, 10), 24,541 (3 channels, 10 + 3).
    BatchNorm makes the conv weights scale-invariant, which MinNorm-OG's shrinkage needs (docs/models.md, "Why
    `bn_cnn` has BatchNorm").
    """
    c = input_shape[0]
    heads = tuple(heads) if heads is not None else (num_classes,)
    return nn.Sequential(
        nn.Conv2d(c, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        GlobalMean(), MultiHead(64, heads),
    )


class SineMLP(nn.Module):
    """Linear(n_in, w) → SiLU → Linear(w, w) → SiLU → Linear(w, C) on inputs reshaped to (−1, n_in).

    The reshape lets it sit behind ``create``'s image-shaped :class:`Normalize` (which broadcasts a (B, 1) input
    to (1, 1, B, 1)); the values are unchanged (scalar constants).
    """

    def __init__(self, n_in: int, width: int, outputs: int):
        super().__init__()
        self.n_in = n_in
        self.net = nn.Sequential(nn.Linear(n_in, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, self.n_in))


@register_model("sine_mlp")
def sine_mlp(input_shape: tuple[int, ...], num_classes: int, width: int = 300) -> nn.Module:
    """The MinNorm-OG sine-poisoning net (PyTorch default init): d = 91,201 at width 300, 4,353 at width 64 (S1)."""
    return SineMLP(math.prod(input_shape), width, num_classes)
