"""``min_norm``: MinNorm-OG's update (minnorm_og.md §3, §4) and the loop its paper runs every baseline in.

Loop (§4): one epoch = one pass over the forget batches (only their count matters unless a forget objective is
set); each step takes the next batch of the accessible retain subset D′_r (``int(p_retain·|D_r|)`` examples drawn
once, reshuffled on exhaustion, last partial batch dropped iff |D′_r| > B). A step of a projection epoch
(``t < T − T_GD`` and ``t mod T_Proj == 0``) first shrinks θ toward the span of the model-output gradients of
``n_pert`` retain samples, θ ← θ − λ_cur·(θ − P_A θ), λ_cur ← γ_reg·λ_cur; then the loss on the retain batch is
back-propagated at the projected θ and the optimizer (AdamW, wd 0.01 in the presets) steps.

Options used by the paper's baselines (§5): ``retain_weight`` 0 (GA), a forget objective on the forget batch
(GA, NGP), per-entry Gaussian gradient noise ``grad_noise`` (NGD), a decaying ℓ2 penalty ``ridge`` (Ridge), the
ℓ1 penalty ``l1`` with its epoch schedule (ℓ1-Sparse), ``reinit`` (Retrain: PyTorch default init first),
``alternate`` (SCRUB: max-epochs step only the forget objective, min-epochs only the retain one, by epoch parity
and T_GD), ``median_mask`` (SalUn variant: |∇J(D_f)| ≥ its lower median at θ*, applied exactly). Objectives of the
§5 baselines: :class:`PaperNPO` (NPO), :class:`PaperDistill` (SCRUB's KL terms), :class:`PaperWrongLabel` (SalUn).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlearnlab.data.tensors import TensorData, batch_positions, iterate
from unlearnlab.errors import UnlearnlabError
from unlearnlab.methods.base import RunContext
from unlearnlab.methods.masks import ExactMask, Mask
from unlearnlab.methods.minnorm import RANK_RTOL, project, span_basis
from unlearnlab.methods.objectives import Objective, distill_kl
from unlearnlab.methods.rules.base import Job, Rule

log = logging.getLogger(__name__)

QUOTA_FALLBACKS = ("uniform", "one_per_class", "error")
TASKS = ("classifier", "regression")


def heads_of(out: Any) -> tuple[torch.Tensor, ...]:
    """A model output as a tuple of heads (a tensor is one head)."""
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def head_labels(y: torch.Tensor, heads: int) -> torch.Tensor:
    """Labels as ``[B, heads]`` (a 1-D ``y`` is the single head's labels)."""
    y2 = y[:, None] if y.ndim == 1 else y
    if y2.shape[1] != heads:
        raise UnlearnlabError(f"The model has {heads} heads but the labels have {y2.shape[1]} columns.")
    return y2


@dataclass
class PaperLoss(Objective):
    """J: classifier = Σ_heads mean CE on logits clamped to [−clamp, clamp]; regression = MSE (§3). ``sign`` −1: −J."""

    loss_type: str = "classifier"
    logit_clamp: float | None = 30.0
    sign: float = 1.0

    def __call__(self, model, x, y, ctx):
        out = model(x)
        if self.loss_type == "regression":
            return self.sign * F.mse_loss(out, y.to(out.dtype).view_as(out))
        heads = heads_of(out)
        labels = head_labels(y, len(heads))
        loss = 0.0
        for h, z in enumerate(heads):
            if self.logit_clamp is not None:
                z = z.clamp(-self.logit_clamp, self.logit_clamp)
            loss = loss + F.cross_entropy(z, labels[:, h])
        return self.sign * loss


def clamp_logits(z: torch.Tensor, clamp: float | None) -> torch.Tensor:
    return z if clamp is None else z.clamp(-clamp, clamp)


def teacher_heads(teacher: nn.Module, x: torch.Tensor, train_mode: bool = False) -> tuple[torch.Tensor, ...]:
    """The frozen teacher's logits per head, without gradient; eval mode unless ``train_mode`` (compat flag)."""
    if teacher is None:
        raise UnlearnlabError("This objective needs a teacher (the frozen original); none was attached.")
    teacher.train(train_mode)
    with torch.no_grad():
        return heads_of(teacher(x))


def npo_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, beta: float) -> torch.Tensor:
    """(2/β)·mean log(1 + (π_θ(y|x)/π_θ*(y|x))^β) for one head, π = softmax probability of the label y.

    Computed stably as (2/β)·mean softplus(β·(log π_θ − log π_θ*)).
    """
    log_ratio = (F.log_softmax(student, 1).gather(1, labels[:, None])
                 - F.log_softmax(teacher, 1).gather(1, labels[:, None])).flatten()
    return (2.0 / beta) * F.softplus(beta * log_ratio).mean()


@dataclass
class PaperNPO(Objective):
    """NPO (minnorm_og §5): Σ_heads (2/β)·mean log(1 + (π_θ(y|x)/π_θ*(y|x))^β), β = λ_reg.

    Student logits clamped to ±``logit_clamp``; teacher θ* frozen, eval mode, no gradient (README §2.7).
    """

    beta: float = 0.1
    logit_clamp: float | None = 30.0
    needs_teacher = True

    def __post_init__(self):
        if not self.beta > 0:
            raise UnlearnlabError(f"NPO: beta (reg_coef) must be > 0, got {self.beta}.")

    def __call__(self, model, x, y, ctx):
        heads = heads_of(model(x))
        labels = head_labels(y, len(heads))
        t_heads = teacher_heads(self.teacher, x)
        return sum(npo_loss(clamp_logits(z, self.logit_clamp), t, labels[:, h], self.beta)
                   for h, (z, t) in enumerate(zip(heads, t_heads)))


@dataclass
class PaperDistill(Objective):
    """``ce_weight``·J(B) + ``kl_weight``·Σ_heads KL(p_teacher ‖ p_student) on one student forward (SCRUB, §5).

    KL = ``kl_div(log_softmax(student), softmax(teacher), reduction="batchmean")`` (``distill_kl`` at T = 1);
    student logits clamped, teacher frozen in eval mode (``teacher_train_mode`` reproduces the reference).
    Min phase: ce_weight 1, kl_weight λ_reg; max phase: ce_weight 0, kl_weight −λ_GA.
    """

    kl_weight: float = 1.0
    ce_weight: float = 0.0
    logit_clamp: float | None = 30.0
    teacher_train_mode: bool = False
    needs_teacher = True

    @property
    def can_be_negative(self) -> bool:
        return self.kl_weight < 0

    def __call__(self, model, x, y, ctx):
        heads = [clamp_logits(z, self.logit_clamp) for z in heads_of(model(x))]
        t_heads = teacher_heads(self.teacher, x, self.teacher_train_mode)
        loss = self.kl_weight * sum(distill_kl(z, t, 1.0) for z, t in zip(heads, t_heads))
        if self.ce_weight:
            labels = head_labels(y, len(heads))
            loss = loss + self.ce_weight * sum(F.cross_entropy(z, labels[:, h]) for h, z in enumerate(heads))
        return loss


def wrong_labels(y: torch.Tensor, classes: int, generator: torch.Generator) -> torch.Tensor:
    """A label ≠ y per example, uniform over the other ``classes`` − 1: (y + U{1..C−1}) mod C."""
    if classes < 2:
        raise UnlearnlabError("A wrong label needs at least 2 classes.")
    offset = torch.randint(1, classes, y.shape, generator=generator)
    return (y + offset.to(y.device)) % classes


@dataclass
class PaperWrongLabel(Objective):
    """``weight``·Σ_heads CE(f(x), ỹ), ỹ a wrong label per head, drawn uniformly per example per step (SalUn, §5)."""

    weight: float = 1.0
    logit_clamp: float | None = 30.0

    def __call__(self, model, x, y, ctx):
        heads = heads_of(model(x))
        labels = head_labels(y, len(heads))
        gen = ctx.generator("wrong-labels")
        return self.weight * sum(
            F.cross_entropy(clamp_logits(z, self.logit_clamp), wrong_labels(labels[:, h], z.shape[1], gen))
            for h, z in enumerate(heads))


def median_threshold_mask(grads: dict[str, torch.Tensor]) -> tuple[Mask, float]:
    """``(mask, thr)``: thr = torch.median of |g| over all entries (the lower median), mask = |g| ≥ thr."""
    thr = torch.median(torch.cat([g.detach().abs().flatten() for g in grads.values()]))
    return {n: g.detach().abs() >= thr for n, g in grads.items()}, float(thr)


def paper_saliency_mask(model: nn.Module, forget: TensorData, batch_size: int, loss: Objective,
                        ctx: RunContext) -> tuple[Mask, float]:
    """SalUn variant's mask (§5): Σ over all forget batches of ∇J(B_f) at θ*, model in its current (train) mode,
    deterministic order, no augmentation; every buffer restored bit-identically (README §2.7); then
    :func:`median_threshold_mask`."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    saved = snapshot_buffers(model)
    try:
        for x, y in iterate(forget, batch_size, shuffle=False):
            g = torch.autograd.grad(loss(model, x, y, ctx), list(params.values()), allow_unused=True)
            for (n, _), gi in zip(params.items(), g):
                if gi is not None:
                    grads[n] += gi
    finally:
        restore_buffers(saved)
    return median_threshold_mask(grads)


def subsample(y: torch.Tensor | None, size: int, n_pert: int, generator: torch.Generator,
              fallback: str = "uniform") -> tuple[torch.Tensor, bool]:
    """``(positions in the batch, fallback used?)`` of the Jacobian subsample (§3.1).

    ``y`` = first-head labels (classifier) or ``None`` (regression: uniform min(n_pert, size)). With K classes
    present and K ≤ n_pert: min(⌊n_pert/K⌋, n_c) per class, uniformly without replacement, classes ascending.
    K > n_pert (the reference's zero quota): ``"uniform"`` n_pert members uniformly, ``"one_per_class"`` one per
    class (m = K), ``"error"`` raises. Never empty; an empty batch is an error.
    """
    if size == 0:
        raise UnlearnlabError("MinNorm-OG: the retain batch is empty, no Jacobian can be formed.")
    if n_pert < 1:
        raise UnlearnlabError(f"MinNorm-OG: grad_sample_size must be >= 1, got {n_pert}.")
    if fallback not in QUOTA_FALLBACKS:
        raise UnlearnlabError(f"Unknown quota_fallback {fallback!r}: use one of {', '.join(QUOTA_FALLBACKS)}.")
    if y is None:
        return torch.randperm(size, generator=generator)[: min(n_pert, size)], False
    y = y.cpu()
    classes = torch.unique(y)
    k = len(classes)
    if k > n_pert:
        if fallback == "error":
            raise UnlearnlabError(
                f"MinNorm-OG: the retain batch has {k} classes > grad_sample_size {n_pert}: the per-class quota "
                "⌊n_pert/K⌋ is 0 and the Jacobian would be empty (the projection would degrade to plain "
                "shrinkage). Raise grad_sample_size or use quota_fallback='uniform' / 'one_per_class'."
            )
        if fallback == "uniform":
            return torch.randperm(size, generator=generator)[:n_pert], True
        quota = 1
    else:
        quota = n_pert // k
    picks = []
    for cls in classes:
        members = torch.nonzero(y == cls).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[: min(quota, len(members))]])
    return torch.cat(picks), k > n_pert


def snapshot_buffers(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(b, b.detach().clone()) for b in model.buffers()]


def restore_buffers(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for buf, value in saved:
            buf.copy_(value)


def couples_samples(model: nn.Module) -> bool:
    """Whether a forward mixes samples of a batch (BatchNorm in training mode uses batch statistics)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules())


def per_sample_max_logit_jacobian(model: nn.Module, x: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """The classifier Jacobian of :func:`output_jacobian` from per-sample gradients (``torch.func``).

    Valid when no layer couples the samples of a batch (:func:`couples_samples` is False): then column (h, i)
    depends on sample i alone and equals ∇θ max_k z_h(x_i)_k computed on x_i by itself. One vmapped backward
    over the batch (``jacrev`` for the H heads) costs about H batch backwards, instead of one full-batch backward
    per column.
    """
    from torch.func import functional_call, jacrev, vmap

    tracked = {id(p) for p in params}
    names = [n for n, p in model.named_parameters() if id(p) in tracked]
    rest = {n: p.detach() for n, p in model.named_parameters() if id(p) not in tracked}
    rest.update(dict(model.named_buffers()))
    order = {id(p): i for i, p in enumerate(params)}
    by_name = dict(model.named_parameters())
    names.sort(key=lambda n: order[id(by_name[n])])

    def max_logits(theta: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        """[H]: each head's max logit on one sample."""
        heads = heads_of(functional_call(model, {**theta, **rest}, (xi.unsqueeze(0),)))
        return torch.cat([z.gather(1, z.detach().argmax(1, keepdim=True)).reshape(1) for z in heads])

    theta = {n: by_name[n].detach() for n in names}
    g = vmap(jacrev(max_logits), in_dims=(None, 0))(theta, x)  # name → [n, H, *shape]
    n, heads = len(x), g[names[0]].shape[1]
    rows = torch.cat([g[k].reshape(n, heads, -1) for k in names], dim=2)  # [n, H, d]
    return rows.transpose(0, 1).reshape(heads * n, -1).T  # columns head-major, as output_jacobian


def output_jacobian(model: nn.Module, x: torch.Tensor, task: str = "classifier",
                    params: list[nn.Parameter] | None = None, vectorised: bool = True) -> torch.Tensor:
    """The d × M output-gradient Jacobian on the inputs ``x`` (§3.2), in the parameters' dtype.

    One forward of ``x`` as a batch (in the model's current mode); columns are the gradients of the max logit of
    each (head, sample) (head-major; argmax at the current θ, a constant) or of each regression output
    coordinate, flattened over ``params`` (trainable parameters in ``model.parameters()`` order; zeros where an
    output does not reach a parameter). All VJPs in one batched backward (``is_grads_batched``), else M
    backward passes. Every buffer (BatchNorm running statistics) is restored bit-identically afterwards.
    """
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    if vectorised and task == "classifier" and not couples_samples(model):
        with torch.enable_grad():
            return per_sample_max_logit_jacobian(model, x, params)
    saved = snapshot_buffers(model)
    try:
        with torch.enable_grad():
            out = model(x)
            if task == "regression":
                s = torch.cat([z.reshape(len(x), -1).T.reshape(-1) for z in heads_of(out)])
            else:
                s = torch.cat([z.gather(1, z.detach().argmax(1, keepdim=True)).flatten() for z in heads_of(out)])
            cols = s.numel()
            grads = None
            if vectorised:
                try:
                    eye = torch.eye(cols, dtype=s.dtype, device=s.device)
                    grads = torch.autograd.grad(s, params, grad_outputs=eye, is_grads_batched=True,
                                                allow_unused=True, retain_graph=True)
                except (RuntimeError, NotImplementedError) as err:  # an op without a batching rule
                    log.debug("batched VJPs unavailable (%s); falling back to %d backward passes", err, cols)
                    grads = None
            if grads is None:
                rows = []
                for i in range(cols):
                    g = torch.autograd.grad(s[i], params, retain_graph=i < cols - 1, allow_unused=True)
                    rows.append(g)
                grads = [torch.stack([r[j] if r[j] is not None else torch.zeros_like(p) for r in rows])
                         if any(r[j] is not None for r in rows) else None for j, p in enumerate(params)]
    finally:
        restore_buffers(saved)
    blocks = [(g.reshape(cols, -1) if g is not None else
               torch.zeros(cols, p.numel(), dtype=p.dtype, device=p.device)) for g, p in zip(grads, params)]
    return torch.cat(blocks, dim=1).T


def flat_params(params: list[nn.Parameter]) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def write_params(params: list[nn.Parameter], flat: torch.Tensor) -> None:
    with torch.no_grad():
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(flat[offset:offset + n].view_as(p).to(p.dtype))
            offset += n


def project_params(params: list[nn.Parameter], a: torch.Tensor, strength: float, dtype: torch.dtype = torch.float64,
                   rtol: float = RANK_RTOL) -> int:
    """θ ← θ − strength·(θ − P_A θ) on ``params`` in ``dtype`` (§3.3); returns rank(A) kept by the guard."""
    a = a.to(dtype)
    basis = span_basis(a, rtol)
    del a
    theta = flat_params(params).to(dtype)
    write_params(params, theta - strength * (theta - project(theta, basis)))
    return int(basis[1].shape[1])


def reinitialise(model: nn.Module, ctx: RunContext) -> None:
    """Every parameter and buffer back to PyTorch's default init (``reset_parameters``), seeded from the run.

    Raises if a trainable parameter belongs to no module with ``reset_parameters`` (it would keep θ*).
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=ctx.generator("reinit")))
    covered: set[int] = set()
    devices = [p.device for p in model.parameters() if p.device.type == "cuda"]
    with torch.random.fork_rng(devices=devices[:1]):
        torch.manual_seed(seed)
        for mod in model.modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
                covered.update(id(p) for p in mod.parameters(recurse=False))
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
    if missing:
        raise UnlearnlabError(f"Retrain: no reset_parameters() for {', '.join(missing)}; cannot re-initialise.")


def retain_stream(data: TensorData, batch_size: int, generator: torch.Generator) -> Iterator[tuple]:
    """§4 retain loader over D′_r: batches of B, reshuffled on exhaustion, last partial dropped iff |D′_r| > B."""
    drop_last = len(data) > batch_size
    while True:
        for pos in batch_positions(len(data), batch_size, generator, True):
            if drop_last and len(pos) < batch_size:
                continue
            pos = pos.to(data.device)
            yield data.x[pos], data.y[pos]


@dataclass
class MinNorm(Rule):
    """MinNorm-OG's projection inside the paper's loop; with ``reg_coef = 0`` or ``num_gd_epochs = T`` it is GD."""

    reg_coef: float = 0.1
    reg_coef_decay: float = 0.8
    proj_pd: int = 1
    num_gd_epochs: int = 0
    grad_sample_size: int = 50
    p_retain: float = 1.0
    quota_fallback: str = "uniform"
    loss_type: str = "classifier"
    projection_dtype: str = "float64"
    rank_rtol: float = RANK_RTOL
    project: bool = True
    retain_weight: float = 1.0
    grad_noise: float = 0.0
    ridge: float = 0.0
    ridge_decay: float = 1.0
    l1: float = 0.0
    reinit: bool = False
    alternate: bool = False
    median_mask: bool = False
    #: compatibility flags in force (README §2.14), copied to ``stats["compat"]``
    compat: tuple[str, ...] = ()
    name: str = "min_norm"
    stats: dict[str, Any] = field(default_factory=dict)

    def check(self, epochs: int) -> None:
        if self.project and not 0.0 <= self.reg_coef <= 1.0:
            raise UnlearnlabError(f"MinNorm-OG: reg_coef (λ_reg) must lie in [0, 1], got {self.reg_coef}.")
        if self.project and not 0.0 < self.reg_coef_decay <= 1.0:
            raise UnlearnlabError(f"MinNorm-OG: reg_coef_decay (γ_reg) must lie in (0, 1], got {self.reg_coef_decay}.")
        if self.proj_pd < 1:
            raise UnlearnlabError(f"MinNorm-OG: proj_pd (T_Proj) must be >= 1, got {self.proj_pd}.")
        if not 0 <= self.num_gd_epochs <= epochs:
            raise UnlearnlabError(f"MinNorm-OG: num_gd_epochs (T_GD) must lie in [0, {epochs}], got "
                                  f"{self.num_gd_epochs}.")
        if not 0.0 < self.p_retain <= 1.0:
            raise UnlearnlabError(f"MinNorm-OG: p_retain must lie in (0, 1], got {self.p_retain}.")
        if self.loss_type not in TASKS:
            raise UnlearnlabError(f"Unknown loss_type {self.loss_type!r}: use one of {', '.join(TASKS)}.")
        if self.projection_dtype not in ("float64", "float32"):
            raise UnlearnlabError(f"projection_dtype must be 'float64' or 'float32', got {self.projection_dtype!r}.")

    def max_epoch(self, epoch: int, epochs: int) -> bool:
        """SCRUB (§5): epoch t is a max-epoch iff t is odd and t < T − T_GD (else a min-epoch)."""
        return self.alternate and epoch % 2 == 1 and epoch < epochs - self.num_gd_epochs

    def projects_in(self, epoch: int, epochs: int) -> bool:
        return self.project and epoch < epochs - self.num_gd_epochs and epoch % self.proj_pd == 0

    def accessible_retain(self, data: TensorData, ctx: RunContext) -> TensorData:
        """D′_r: int(p_retain·|D_r|) examples drawn uniformly once (not stratified)."""
        if self.p_retain >= 1.0:
            return data
        n = int(self.p_retain * len(data))
        if n == 0:
            raise UnlearnlabError(f"MinNorm-OG: p_retain {self.p_retain} of {len(data)} retain examples is 0.")
        return data.subset(torch.randperm(len(data), generator=ctx.generator("retain-subset"))[:n])

    def run(self, job: Job) -> None:
        self.check(job.epochs)
        model, ctx, stepper = job.model, job.ctx, job.stepper
        params = [p for p in model.parameters() if p.requires_grad]
        retain = self.accessible_retain(job.data.retain, ctx)
        if len(retain) == 0 and (self.retain_weight or self.project):
            raise UnlearnlabError("MinNorm-OG: the retain set is empty.")
        stream = retain_stream(retain, job.batch_size, ctx.generator("retain-loader")) if len(retain) else None
        n_fb = math.ceil(len(job.data.forget) / job.forget_batch_size)
        dtype = torch.float64 if self.projection_dtype == "float64" else torch.float32
        gen = ctx.generator("jacobian-subsample")
        noise_gen = ctx.generator("gradient-noise")
        opt = stepper.optimizers["joint"]
        lam, ridge, l1 = self.reg_coef, self.ridge, self.l1
        if self.reinit:
            reinitialise(model, ctx)
        st = self.stats
        st.clear()
        st.update(projections=0, jacobian_columns=0, jacobian_columns_total=0, jacobian_fallbacks=0,
                  jacobian_rank_min=None, forget_batches_per_epoch=n_fb)
        if self.median_mask:
            if stepper.mask is not None:
                raise UnlearnlabError("median_mask: the method already has a mask.")
            j = job.retain if isinstance(job.retain, PaperLoss) else PaperLoss(self.loss_type)  # J, with its clamp
            mask, thr = paper_saliency_mask(model, job.data.forget, job.forget_batch_size, j, ctx)
            stepper.mask = ExactMask(model, mask, "both")
            st["mask_threshold"] = thr
            st["mask_fraction_trainable"] = (sum(int(m.sum()) for m in mask.values())
                                             / sum(m.numel() for m in mask.values()))
        if self.alternate:
            st.update(max_epochs=0, min_epochs=0)
        if self.compat:
            st["compat"] = list(self.compat)
        warned = False
        for epoch in range(job.epochs):
            stepper.set_multiplier(job.schedule(epoch))
            forget_batches = job.batches("forget") if job.forget is not None else iter([None] * n_fb)
            for i, fb in enumerate(forget_batches):
                xr, yr = next(stream) if stream is not None else (None, None)
                if self.projects_in(epoch, job.epochs):
                    labels = None if self.loss_type == "regression" else head_labels(yr, yr.shape[1] if yr.ndim == 2
                                                                                else 1)[:, 0]
                    pos, fell_back = subsample(labels, len(xr), self.grad_sample_size, gen, self.quota_fallback)
                    if fell_back:
                        st["jacobian_fallbacks"] += 1
                        if not warned:
                            log.warning("MinNorm-OG: %d classes in a retain batch > grad_sample_size %d: quota "
                                        "fallback %r (counted in jacobian_fallbacks).",
                                        len(torch.unique(labels)), self.grad_sample_size, self.quota_fallback)
                            warned = True
                    a = output_jacobian(model, xr[pos.to(xr.device)], self.loss_type, params)
                    if not torch.isfinite(a).all():
                        raise UnlearnlabError(f"MinNorm-OG: non-finite output Jacobian at epoch {epoch}, step {i}.")
                    rank = project_params(params, a, lam, dtype, self.rank_rtol)
                    st["projections"] += 1
                    st["jacobian_columns"] = a.shape[1]
                    st["jacobian_columns_total"] += a.shape[1]
                    st["jacobian_rank_min"] = rank if st["jacobian_rank_min"] is None else min(
                        rank, st["jacobian_rank_min"])
                    del a
                    lam *= self.reg_coef_decay
                loss = torch.zeros((), device=params[0].device)
                maximise = self.max_epoch(epoch, job.epochs)
                if self.retain_weight and not maximise:
                    loss = loss + self.retain_weight * job.retain(model, xr, yr, ctx)
                if job.forget is not None and (maximise or not self.alternate):
                    loss = loss + job.forget(model, fb[0], fb[1], ctx)
                if ridge:
                    loss = loss + ridge * sum((p * p).sum() for p in params)
                if l1:
                    loss = loss + l1 * sum(p.abs().sum() for p in params)
                if not loss.requires_grad:
                    raise UnlearnlabError("The paper loop has nothing to optimise: no retain, forget or ridge term.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if self.grad_noise:
                    with torch.no_grad():
                        for p in params:
                            if p.grad is not None:
                                noise = torch.randn(p.shape, generator=noise_gen, dtype=p.dtype)
                                p.grad.add_(self.grad_noise * noise.to(p.device))
                stepper.apply("joint", loss.detach())
                ridge *= self.ridge_decay
                l1 = (2 - 2 * epoch / job.epochs) * self.l1  # ℓ1-Sparse: λ for the step after one in epoch e
                ctx.report((epoch + (i + 1) / n_fb) / job.epochs)
            if self.alternate:
                st["max_epochs" if self.max_epoch(epoch, job.epochs) else "min_epochs"] += 1
            stepper.end_epoch(f"{self.name} epoch {epoch}")
        st["final_loss"] = float(loss.detach()) if job.epochs and n_fb else 0.0
        st["lambda_final"] = lam
        if self.ridge:
            st["ridge_final"] = ridge
        if self.l1:
            st["l1_final"] = l1
