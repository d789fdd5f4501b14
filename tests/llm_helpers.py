"""Small TOFU-format data and models shared by the tests/test_llm_*.py files (import after importorskip)."""

from __future__ import annotations

from pathlib import Path

from unlearnlab import language as lm

#: a from-scratch model small enough for unit tests (~40 k parameters with the tiny vocabulary)
TINY = lm.LMConfig(hidden=32, layers=2, heads=2, intermediate=64, context=64)


def tiny_data(seed: int = 0) -> lm.TofuData:
    """10 authors × 4 QA, one training phrasing per fact (forget10 = one author, 4 records)."""
    return lm.generate("tofu-mini-xs", seed, authors=10, qa_per_author=4, train_templates=1)


def trained_tiny(data: lm.TofuData, split: str = "full", epochs: int = 40, seed: int = 1):
    """(model, tokenizer): the tiny model trained on ``split`` until it knows it (loss ≈ 0.1)."""
    tok = lm.build_tokenizer(data)
    model = lm.build_lm(TINY, tok, seed)
    lm.stage2(model, data, tok, split, lm.STAGE2.replace(epochs=epochs, lr=1e-2, batch_size=16), seed=seed)
    return model, tok


def write_paper_files(root: Path) -> Path:
    """The paper tier's inputs under ``root``: TOFU's files of :func:`tiny_data` (``TOFU/``), a target checkpoint
    trained on ``full`` (``target/``) and a retain checkpoint trained on ``retain90`` (``retain/``)."""
    data = tiny_data()
    data.write(root / "TOFU")
    for split, name in (("full", "target"), ("retain90", "retain")):
        model, tok = trained_tiny(data, split)
        lm.save_lm(model, tok, root / name)
    return root
