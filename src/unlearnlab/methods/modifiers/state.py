"""Modifiers that change the model or the data once: frozen BatchNorm statistics, re-initialisation, and
MinNorm-OG's accessible retain subset."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.modifiers.base import Modifier
from unlearnlab.methods.reinit import reinitialise


@dataclass
class FrozenBatchNorm(Modifier):
    """BatchNorm layers stay in eval mode during unlearning: running statistics are used and never updated."""

    fsdp: ClassVar[bool] = True

    def start(self, job) -> None:
        for module in job.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


@dataclass
class Reinitialise(Modifier):
    """Every module back to its default initialisation before unlearning (a budget-matched retrain), seeded from
    the run's ``reinit`` generator; refuses a model with parameters it cannot re-initialise."""

    def setup(self, job) -> None:
        seed = int(torch.randint(0, 2**62, (1,), generator=job.ctx.generator("reinit")))
        reinitialise(job.model, seed)


@dataclass
class RetainSubset(Modifier):
    """Only ``int(p_retain·|D_r|)`` retain examples, drawn uniformly once (not stratified) from the run's
    ``retain-subset`` generator, are accessible to the method (MinNorm-OG's D′_r)."""

    p_retain: float = 1.0
    fsdp: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not 0.0 < self.p_retain <= 1.0:
            raise UnlearnlabError(f"p_retain must lie in (0, 1], got {self.p_retain}.")

    def setup(self, job) -> None:
        if self.p_retain >= 1.0:
            return
        data = job.data.retain
        n = int(self.p_retain * len(data))
        if n == 0:
            raise UnlearnlabError(f"p_retain {self.p_retain} of {len(data)} retain examples is 0: raise p_retain.")
        if not data.in_memory:
            raise UnlearnlabError("p_retain < 1 draws a subset of D_r: pass the retain set in memory, not streamed.")
        pick = torch.randperm(len(data), generator=job.ctx.generator("retain-subset"))[:n]
        job.data = dataclasses.replace(job.data, retain=data.subset(pick))
