"""The protocol object: everything a reported number depends on, pinned under one name and version.

:class:`Protocol` is a frozen, strict pydantic model (docs/protocols.md, "Protocol object"): a *grid* protocol
pins the dataset and split rule, the model, the forget spec, the recipes, the methods and their values, the seeds,
the MIAs (one primary), the attack draws, U-LiRA's shadow count, the noise floor and the aggregation; an
*experiment* protocol names a function. :class:`QuickSize` holds the fields its ``--quick`` size changes. The
named protocols and their registry live in :mod:`unlearnlab.protocols`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, InstanceOf, field_validator, model_validator

from unlearnlab.bench.config import DEFAULT_ATTACK_DRAWS, GRID_MIAS, RunConfig, Validated
from unlearnlab.errors import UnlearnlabError
from unlearnlab.evaluation import DEFAULT_MIAS, PRIMARY_MIAS
from unlearnlab.training import Recipe

SALUN_MIA = "mia_efficacy_svc_conf"
DUALOPTIM_MIA = "mia_lr_entropy_member_rate"
KIT_MIA = "mia_loss_lr_cv"
#: the protocol parameters of a family (``digits-class<c>``, ``neurips23-official-N<N>``)
FAMILY_PARAMS = ("c", "N")

#: gap variants a protocol may show (docs/metrics.md); "avg_gap_matched" is the table's Avg.Gap column
GAP_VARIANTS = ("avg_gap_matched", "avg_gap_means", "gap_means_ua_ra_ta", "mean_metric_std")

#: compatibility flags (docs/protocols.md; ``std_ddof=0`` is the only one a grid protocol honours itself)
COMPAT_FLAGS = (
    "compat_val_seed_follows_run_seed", "batching=mixed", "saliency_augment", "teacher_train_mode", "decay_masked",
    "prune_shadow=False", "mask_before_surgery=False", "lambda_projection=use_only", "signal_mode=reference",
    "joint_forward", "eu_error", "accounting=reference", "val_transform=train", "std_ddof=0", "select_on=test",
)
GRID_COMPAT = ("std_ddof=0",)
#: run options an experiment protocol may accept besides out, root, seeds, device, threads and the cache
EXPERIMENT_OPTIONS = ("methods", "hparams", "original", "parallel")

class QuickSize(Validated):
    """The ``--quick`` size of a grid protocol: fields that differ from the full size (``None``: same)."""

    what: ClassVar[str] = "quick-size field"

    dataset: str | None = None
    model: str | None = None
    forget: str | None = None
    methods: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    recipe: InstanceOf[Recipe] | None = None
    retrain_recipe: InstanceOf[Recipe] | None = None
    profile: str | None = None
    hparams: dict[str, dict[str, Any]] | None = None
    searched: dict[str, tuple[str, ...]] | None = None
    forget_quality_n: int | None = Field(None, ge=2)
    attack_draws: int | None = Field(None, ge=0)
    ulira_shadows: int | None = Field(None, ge=0)


class Protocol(Validated):
    """One named protocol (docs/protocols.md). Grid protocols set ``dataset`` … ``recipe``; experiment
    protocols set ``experiment`` (``"module:function"``) and ``seeds``.

    Field types and the closed vocabularies (gap variants, compat flags) are checked when a protocol is built;
    :func:`validate` adds the checks that need the registries (dataset, model and method names).
    """

    what: ClassVar[str] = "protocol field"

    name: str
    version: int = Field(ge=1)
    description: str
    paper: str
    # ---- grid protocols
    dataset: str | None = None
    model: str | None = None
    forget: str | None = None
    #: original-model recipe; ``None`` = :meth:`Recipe.default` of the task (what a plain ``unlearnlab run`` uses)
    recipe: InstanceOf[Recipe] | None = None
    #: retrain recipe; ``None`` = the original recipe on D_r
    retrain_recipe: InstanceOf[Recipe] | None = None
    methods: tuple[str, ...] = ()
    profile: str = "default"
    #: per-setting method values the paper's code used (method → {key: value}); a run may not change them
    hparams: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: method → keys the paper searched without publishing a value: a run must pass them (``--set``)
    searched: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    primary_mia: str = SALUN_MIA
    #: the MIA definitions every cell computes (the primary one among them)
    mias: tuple[str, ...] = GRID_MIAS
    #: K resampled attack sets per MIA cell (docs/metrics.md, "Attack spread"); 0: the reference draw only
    attack_draws: int = Field(DEFAULT_ATTACK_DRAWS, ge=0)
    #: U-LiRA's shadow-model count K (even); 0 or None: no U-LiRA
    ulira_shadows: int | None = Field(None, ge=0)
    #: a second, independent Retrain row (the noise floor)
    noise_floor: bool = True
    #: one original model per seed (trained with that seed), so the original's variance is in the seed spread
    original_per_seed: bool = False
    #: TA and the MIAs on the NeurIPS 2023 kit's half of D_test
    test_half: bool = False
    val_seed: int = Field(1, ge=1)
    # ---- aggregation
    seeds: tuple[int, ...] = ()
    std_ddof: int = 1
    gap_variants: tuple[str, ...] = ("avg_gap_matched",)
    compat: tuple[str, ...] = ()
    #: N per family of the NeurIPS 2023 forget score on the first seed (bench/forget_quality.py); None = off
    forget_quality_n: int | None = Field(None, ge=2)
    quick: QuickSize | None = None
    # ---- experiment protocols
    experiment: str | None = None
    #: run options this experiment takes (:data:`EXPERIMENT_OPTIONS`): ``methods`` (a subset of its methods),
    #: ``hparams`` (``--set``), ``original`` (``--original``), ``parallel`` (runs under torchrun, ``--parallel``)
    accepts: tuple[str, ...] = ()
    quick_description: str = ""
    aliases: tuple[str, ...] = ()
    #: ``"c"`` for a family such as ``digits-class<c>``, ``"N"`` for ``neurips23-official-N<N>`` (instantiate
    #: with :func:`unlearnlab.protocols.get_protocol`)
    family_param: str | None = None

    @field_validator("gap_variants")
    @classmethod
    def _gaps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if set(value) - set(GAP_VARIANTS) or "avg_gap_matched" not in value:
            raise UnlearnlabError(f"gap variants must include avg_gap_matched and come from {GAP_VARIANTS}, got "
                                  f"{value}.")
        return value

    @field_validator("compat")
    @classmethod
    def _compat(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in value if c not in COMPAT_FLAGS]
        if bad:
            raise UnlearnlabError(f"unknown compat flag(s) {bad}; known: {', '.join(COMPAT_FLAGS)}.")
        return value

    @field_validator("accepts")
    @classmethod
    def _accepts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [o for o in value if o not in EXPERIMENT_OPTIONS]
        if bad:
            raise UnlearnlabError(f"unknown experiment option(s) {bad}; known: {', '.join(EXPERIMENT_OPTIONS)}.")
        return value

    @field_validator("mias")
    @classmethod
    def _mias(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [m for m in value if m not in DEFAULT_MIAS]
        if bad or not value:
            raise UnlearnlabError(f"protocol mias {value}: use some of {', '.join(DEFAULT_MIAS)}.")
        return value

    @field_validator("family_param")
    @classmethod
    def _family(cls, value: str | None) -> str | None:
        if value is not None and value not in FAMILY_PARAMS:
            raise UnlearnlabError(f"family_param {value!r}: use one of {FAMILY_PARAMS}.")
        return value

    @model_validator(mode="after")
    def _evaluation(self) -> Protocol:
        if self.primary_mia not in PRIMARY_MIAS or self.primary_mia not in self.mias:
            raise UnlearnlabError(f"protocol {self.name!r}: primary MIA {self.primary_mia!r} must be one of its mias "
                                  f"{self.mias}.")
        for shadows in (self.ulira_shadows, self.quick.ulira_shadows if self.quick else None):
            if shadows and shadows % 2:
                raise UnlearnlabError(f"protocol {self.name!r}: ulira_shadows must be even, got {shadows}.")
        return self

    @model_validator(mode="after")
    def _ddof(self) -> Protocol:
        if self.std_ddof not in (0, 1) or (self.std_ddof == 0) != ("std_ddof=0" in self.compat):
            raise UnlearnlabError(f"protocol {self.name!r}: std_ddof is 1, or 0 with the compat flag 'std_ddof=0'.")
        return self

    @property
    def is_experiment(self) -> bool:
        return self.experiment is not None

    def label(self, quick: bool = False) -> str:
        """The value stored in every row's ``protocol`` column."""
        return f"{self.name} v{self.version}" + (" quick" if quick else "")

    def sized(self, quick: bool) -> Protocol:
        """The protocol at its full size, or with the :class:`QuickSize` fields applied."""
        if not quick or self.quick is None:
            return self
        changes = {name: getattr(self.quick, name) for name in QuickSize.model_fields}
        return self.model_copy(update={k: v for k, v in changes.items() if v is not None})

    def run_config(self, quick: bool = False, **overrides: Any) -> RunConfig:
        """The :class:`~unlearnlab.bench.config.RunConfig` of a grid protocol (``overrides`` applied on top)."""
        if self.is_experiment:
            raise UnlearnlabError(f"Protocol {self.name!r} is an experiment, not a grid: it has no RunConfig.")
        p = self.sized(quick)
        base = RunConfig(
            dataset=p.dataset, model=p.model, forget=p.forget, methods=p.methods, seeds=p.seeds,
            profile=p.profile, primary_mia=p.primary_mia, hparams={m: dict(v) for m, v in p.hparams.items()},
            recipe=p.recipe.to_dict() if p.recipe is not None else {},
            retrain_recipe=p.retrain_recipe.to_dict() if p.retrain_recipe is not None else {},
            protocol=self.name, quick=quick, forget_quality_n=p.forget_quality_n, mias=p.mias,
            attack_draws=p.attack_draws, ulira_shadows=p.ulira_shadows or None, noise_floor=p.noise_floor,
            original_per_seed=p.original_per_seed, test_half=p.test_half,
        )
        if "hparams" in overrides:  # the user's values join the protocol's (check_pinned refuses changed ones)
            given = overrides["hparams"] or {}
            overrides = {**overrides, "hparams": {m: {**p.hparams.get(m, {}), **given.get(m, {})}
                                                  for m in {*p.hparams, *given}}}
        return base.updated(**overrides) if overrides else base

    def pinned(self, quick: bool = False) -> dict[str, Any]:
        """Config keys a run of this protocol may not change (changing any of them is another protocol)."""
        config = self.run_config(quick)
        return {k: getattr(config, k) for k in ("dataset", "model", "forget", "primary_mia", "recipe",
                                                "retrain_recipe", "mias", "original_per_seed", "test_half",
                                                "attack_draws", "ulira_shadows")}

    def summary(self, quick: bool = False) -> dict[str, str]:
        """Short strings for the ``unlearnlab protocols`` table."""
        p = self.sized(quick)
        if self.is_experiment:
            target = str(self.experiment).removeprefix("unlearnlab.experiments.")
            return {"data": f"experiment {target}", "forget": p.forget or "(experiment)", "mia": "(experiment)",
                    "seeds": _seed_text(p.seeds)}
        recipe = p.recipe.epochs if p.recipe is not None else "default"
        return {"data": f"{p.dataset} / {p.model} / {recipe} ep", "forget": str(p.forget), "mia": p.primary_mia,
                "seeds": _seed_text(p.seeds)}


def _seed_text(seeds: tuple[int, ...]) -> str:
    if not seeds:
        return "-"
    if list(seeds) == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))
