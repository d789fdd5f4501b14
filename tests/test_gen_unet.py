"""diffusers UNet noise predictors built from config (optional extra ``gen``)."""

from __future__ import annotations

import pytest
import torch

from unlearnlab.errors import UnlearnlabError
from unlearnlab.generation import SamplerSettings, sample, unet_denoiser
from unlearnlab.generation.family import GENERATION
from unlearnlab.generation.unet import ConditionalUNet, unet_layout
from unlearnlab.methods.reinit import reinitialise

diffusers = pytest.importorskip("diffusers")


def test_layouts_keep_every_size_even():
    assert unet_layout(28, (16, 32, 32), "lowest") == (
        (16, 32, 32), ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))
    assert unet_layout(14, (16, 32, 32), "lowest")[:2] == ((16, 32), ("DownBlock2D", "AttnDownBlock2D"))
    assert unet_layout(32, (128, 256, 256, 256), (16,))[1] == (
        "DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D")
    with pytest.raises(UnlearnlabError, match="even image size"):
        unet_layout(7, (16, 32), "lowest")


def test_fmnist_unet_trains_samples_and_reinitialises():
    model = unet_denoiser("fmnist", (1, 14, 14), 10, timesteps=100)
    assert model.net.unet.config.num_class_embeds == 11 and model.net.unet.config.block_out_channels == (16, 32)
    batch = {"x": torch.rand(4, 1, 14, 14), "y": torch.tensor([0, 1, 2, 9])}
    loss = GENERATION.loss(model, batch, reduction="none")
    loss.mean().backward()
    assert loss.shape == (4,) and all(p.grad is not None for p in model.parameters() if p.requires_grad)
    images = sample(model, torch.tensor([0, 5]), SamplerSettings(steps=2), torch.Generator().manual_seed(0))
    assert images.shape == (2, 1, 14, 14) and float(images.min()) >= 0 and float(images.max()) <= 1
    before = [p.detach().clone() for p in model.parameters()]
    reinitialise(model, seed=3)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_cifar10_unet_has_the_papers_size():
    model = unet_denoiser("cifar10", (3, 32, 32), 10)
    unet = model.net.unet
    assert unet.config.block_out_channels == (128, 256, 256, 256) and unet.config.layers_per_block == 2
    params = sum(p.numel() for p in model.parameters())
    assert 30e6 < params < 45e6  # the reference DDPM CIFAR-10 UNet has ≈ 36 M
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 32, 32), torch.tensor([999]), torch.tensor([10]))
    assert out.shape == (1, 3, 32, 32)


def test_unconditioned_unet_and_unknown_config_are_refused():
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
                                 layers_per_block=1, norm_num_groups=8,
                                 down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D",) * 2)
    with pytest.raises(UnlearnlabError, match="no class conditioning"):
        ConditionalUNet(unet)
    with pytest.raises(UnlearnlabError, match="Unknown UNet config"):
        unet_denoiser("imagenet", (3, 32, 32))
    with pytest.raises(UnlearnlabError, match="square"):
        unet_denoiser("fmnist", (1, 28, 14))
