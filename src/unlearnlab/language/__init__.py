"""Language-model unlearning on TOFU-format tasks (optional extra ``unlearnlab[llm]``: transformers, tokenizers,
rouge-score). Importing this package registers the ``language_model`` task family and the ``llm/*`` presets.

Typical use (docs/llm.md)::

    from unlearnlab import language as lm
    data = lm.generate("tofu-mini-xs", seed=0)          # or lm.load_tofu("path/to/TOFU")
    tok = lm.build_tokenizer(data)
    model = lm.build_lm("xs", tok, seed=1)
    lm.stage1(model, data, tok); lm.stage2(model, data, tok, "full")
    task = lm.make_task(data, tok, "forget10")
    result = ul.unlearn(model, task, method="llm/npo-gd")
    report = lm.evaluate_lm(result.model, task, reference=retain_model)
"""

from importlib.util import find_spec

from unlearnlab.errors import UnlearnlabError

_MISSING = [name for name in ("transformers", "tokenizers", "rouge_score") if find_spec(name) is None]
if _MISSING:
    raise UnlearnlabError(f"unlearnlab.language needs {', '.join(_MISSING)}: install the extra with "
                          "`pip install 'unlearnlab[llm]'`.")

from unlearnlab.language.evaluation import TofuReport, evaluate_lm, write_openunlearning  # noqa: E402
from unlearnlab.language.family import LANGUAGE_MODEL, LanguageModel  # noqa: E402
from unlearnlab.language.gates import GateResult, validity_gates  # noqa: E402
from unlearnlab.language.generator import GENERATOR_VERSION, SIZES, TofuSize, generate, split_hash  # noqa: E402
from unlearnlab.language.loader import load_tofu  # noqa: E402
from unlearnlab.language.models import TIERS, LMConfig, build_lm, load_lm, save_lm  # noqa: E402
from unlearnlab.language.presets import PRESETS  # noqa: E402
from unlearnlab.language.records import SPLITS, QARecord, TofuData  # noqa: E402
from unlearnlab.language.stages import STAGE1, STAGE2, build_tokenizer, model_key, stage1, stage2  # noqa: E402
from unlearnlab.language.task import LanguageTask, make_task  # noqa: E402
from unlearnlab.language.tokens import encode_pairs, train_tokenizer  # noqa: E402

__all__ = ["GENERATOR_VERSION", "LANGUAGE_MODEL", "PRESETS", "SIZES", "SPLITS", "STAGE1", "STAGE2", "TIERS",
           "GateResult", "LMConfig", "LanguageModel", "LanguageTask", "QARecord", "TofuData", "TofuReport",
           "TofuSize", "build_lm", "build_tokenizer", "encode_pairs", "evaluate_lm", "generate", "load_lm",
           "load_tofu", "make_task", "model_key", "save_lm", "split_hash", "stage1", "stage2", "train_tokenizer",
           "validity_gates", "write_openunlearning"]
