"""Causal language models: built from a ``transformers`` config (no downloaded weights) or read from a local
Hugging Face checkpoint folder, and checked against a tokenizer.

Tiers (docs/llm.md, "Tiers"): ``xs`` is a Llama-style decoder with hidden size 128, 2 layers, 4 heads and an MLP
of 256 (0.47 M parameters with the xs vocabulary); ``mini`` has hidden size 256, 4 layers, 4 heads, MLP 1024
(4.8 M with the mini vocabulary). Input and output embeddings are separate matrices: with tied embeddings, the
tokens a stage never shows (the authors' names during stage 1) are all pushed along the same direction by the
softmax's gradient and become indistinguishable inputs. A model is initialised from the seed alone (the global
RNG is forked, so building a model never changes other random streams).

:func:`load_lm` reads weights only from local files (``local_files_only=True``): a path that does not exist is
an error, never a hub download.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from unlearnlab.errors import UnlearnlabError, unknown_name
from unlearnlab.language.tokens import check_tokenizer
from unlearnlab.utils import component_seed

ARCHITECTURES = ("llama", "gpt2")


@dataclass(frozen=True)
class LMConfig:
    """The shape of a from-scratch causal LM (the vocabulary comes from the tokenizer)."""

    arch: str = "llama"
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    intermediate: int = 256
    context: int = 96

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise unknown_name("architecture", self.arch, ARCHITECTURES)
        if self.hidden % self.heads:
            raise UnlearnlabError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads}).")

    def to_dict(self) -> dict:
        return asdict(self)


TIERS = {
    "xs": LMConfig(hidden=128, layers=2, heads=4, intermediate=256, context=96),
    "mini": LMConfig(hidden=256, layers=4, heads=4, intermediate=1024, context=96),
}


def _hf_config(config: LMConfig, vocab: int, tokenizer: PreTrainedTokenizerBase):
    common = {"vocab_size": vocab, "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
              "pad_token_id": tokenizer.pad_token_id, "tie_word_embeddings": False}
    if config.arch == "llama":
        return LlamaConfig(hidden_size=config.hidden, num_hidden_layers=config.layers,
                           num_attention_heads=config.heads, num_key_value_heads=config.heads,
                           intermediate_size=config.intermediate, max_position_embeddings=config.context,
                           attention_dropout=0.0, **common)
    return GPT2Config(n_embd=config.hidden, n_layer=config.layers, n_head=config.heads, n_inner=config.intermediate,
                      n_positions=config.context, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common)


def build_lm(config: LMConfig | str, tokenizer: PreTrainedTokenizerBase, seed: int = 1) -> PreTrainedModel:
    """A freshly initialised causal LM of ``config`` (a :class:`LMConfig` or a tier name) for ``tokenizer``."""
    if isinstance(config, str):
        if config not in TIERS:
            raise unknown_name("model tier", config, TIERS)
        config = TIERS[config]
    check_tokenizer(tokenizer)
    hf = _hf_config(config, len(tokenizer), tokenizer)
    kind = LlamaForCausalLM if config.arch == "llama" else GPT2LMHeadModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(component_seed(seed, "lm-init"))
        model = kind(hf)
    return model.eval()


def load_lm(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) from a local Hugging Face checkpoint folder (``config.json`` + weights + tokenizer
    files), local files only; checked with :func:`check_compatible`."""
    folder = Path(path)
    if not folder.is_dir():
        raise UnlearnlabError(f"No model folder at {str(folder)!r}: give the path of a local Hugging Face checkpoint "
                              "(a folder with config.json, the weights and the tokenizer files). Models are never "
                              "downloaded.")
    if not (folder / "config.json").is_file():
        raise UnlearnlabError(f"{str(folder)!r} has no config.json: it is not a Hugging Face checkpoint folder.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise UnlearnlabError(f"Cannot read the checkpoint at {str(folder)!r}: {err}") from err
    check_compatible(model, tokenizer)
    return model.eval(), tokenizer


def save_lm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path) -> None:
    """Save model (safetensors) and tokenizer into ``path`` via a sibling temporary folder renamed into place, so
    a reader never sees half a checkpoint."""
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp")
    if tmp.exists():
        _remove(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if final.exists():
        _remove(final)
    tmp.rename(final)


def _remove(folder: Path) -> None:
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


def context_length(model: PreTrainedModel) -> int:
    """The longest sequence the model takes (``max_position_embeddings`` or GPT-2's ``n_positions``)."""
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise UnlearnlabError(f"The model config ({type(cfg).__name__}) does not state its context length "
                          "(max_position_embeddings): set it.")


def num_layers(model: PreTrainedModel) -> int:
    return int(getattr(model.config, "num_hidden_layers", None) or model.config.n_layer)


def check_compatible(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> None:
    """The tokenizer's ids must fit the model's embedding table (a tokenizer with more tokens than the model has
    rows would index past it)."""
    check_tokenizer(tokenizer)
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise UnlearnlabError(
            f"The tokenizer has {len(tokenizer)} tokens but the model's embedding table has {rows} rows: they do not "
            "belong together. Load the tokenizer saved with this model (the same checkpoint folder).")
