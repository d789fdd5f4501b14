"""``diffusers.UNet2DModel`` noise predictors built from a config, with class embeddings (docs/generation.md, "Models").

``diffusers`` is the optional extra ``unlearnlab[gen]``; it is imported when a UNet is built, never at package import,
and nothing is downloaded (the model is built from its config, weights initialised locally).

Configs (:data:`UNET_CONFIGS`):

* ``fmnist``: 1 channel, widths (16, 32, 32), one res block per level, attention only at the lowest resolution,
  dropout 0.1 (28×28: levels 28/14/7; 14×14: the first two levels, 14/7, so every down/up size divides evenly);
* ``cifar10``: the SalUn/EUPMU/DualOptim DDPM size: 3 channels, width 128 × (1, 2, 2, 2), two res blocks per
  level, attention at resolution 16 (and in the middle block), dropout 0.1, 32×32.

The class embedding table has C + 1 rows (row C is the null class); diffusers adds it to the time embedding. A UNet
without class embeddings (``num_class_embeds`` unset) is refused.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from unlearnlab.errors import UnlearnlabError
from unlearnlab.generation.diffusion import ScheduleSpec
from unlearnlab.generation.models import Denoiser

#: name → widths per level, res blocks per level, attention ("lowest" level or a tuple of resolutions), dropout
UNET_CONFIGS: dict[str, dict[str, Any]] = {
    "fmnist": {"block_out_channels": (16, 32, 32), "layers_per_block": 1, "attention": "lowest", "dropout": 0.1},
    "cifar10": {"block_out_channels": (128, 256, 256, 256), "layers_per_block": 2, "attention": (16,),
                "dropout": 0.1},
}


def require_diffusers() -> Any:
    """The ``diffusers`` module, or an error naming the extra to install."""
    try:
        return importlib.import_module("diffusers")
    except ImportError as err:
        raise UnlearnlabError("The UNet models need the optional extra 'gen': pip install 'unlearnlab[gen]' "
                              "(diffusers >= 0.27). The digits tier's model needs only torch.") from err


def unet_layout(resolution: int, channels: Sequence[int], attention: str | Sequence[int]) -> tuple[
        tuple[int, ...], tuple[str, ...], tuple[str, ...]]:
    """(widths, down block types, up block types) for ``resolution``: as many levels of ``channels`` as keep every
    down-sampled size even (at most ``len(channels)``), attention at the resolutions listed or at the lowest one."""
    levels, size = 1, resolution
    while levels < len(channels) and size % 2 == 0:
        levels, size = levels + 1, size // 2
    if levels < 2:
        raise UnlearnlabError(f"Resolution {resolution} cannot be halved evenly: use an even image size (e.g. 14, "
                              "28 or 32).")
    widths = tuple(channels[:levels])
    sizes = [resolution // 2 ** i for i in range(levels)]
    attend = [s == sizes[-1] for s in sizes] if attention == "lowest" else [s in attention for s in sizes]
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attend)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attend))
    return widths, down, up


class ConditionalUNet(nn.Module):
    """``net(x_t, t, y)`` calling convention around a ``diffusers.UNet2DModel`` with class embeddings."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        classes = getattr(getattr(unet, "config", None), "num_class_embeds", None)
        if classes is None:
            raise UnlearnlabError("This UNet has no class conditioning (num_class_embeds is not set): build it with "
                                  "num_class_embeds = C + 1 (C classes plus the null class of guidance).")
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, class_labels=y, return_dict=False)[0]


def unet_denoiser(config: str | Mapping[str, Any], image_shape: Sequence[int], num_classes: int = 10, *,
                  timesteps: int = 1000, class_dropout: float = 0.1, seed: int = 1) -> Denoiser:
    """A :class:`Denoiser` around a ``UNet2DModel`` of ``config`` (a name in :data:`UNET_CONFIGS` or a mapping with
    the same keys) for images ``image_shape`` = (channels, H, W) with H = W."""
    if isinstance(config, str):
        if config not in UNET_CONFIGS:
            raise UnlearnlabError(f"Unknown UNet config {config!r}: use one of {', '.join(UNET_CONFIGS)}.")
        config = UNET_CONFIGS[config]
    channels, height, width = (int(s) for s in image_shape)
    if height != width:
        raise UnlearnlabError(f"The UNet configs take square images, got {height}×{width}.")
    widths, down, up = unet_layout(height, config["block_out_channels"], config["attention"])
    diffusers = require_diffusers()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = diffusers.UNet2DModel(
            sample_size=height, in_channels=channels, out_channels=channels, block_out_channels=widths,
            layers_per_block=config["layers_per_block"], down_block_types=down, up_block_types=up,
            dropout=config["dropout"], norm_num_groups=min(32, widths[0]), attention_head_dim=None,
            num_class_embeds=num_classes + 1)
    return Denoiser(ConditionalUNet(unet), num_classes, image_shape, ScheduleSpec(timesteps), class_dropout)
