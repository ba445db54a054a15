"""Distillation half: byte-level cross-tokenizer distillation (text in, a student model out).

Public surface:

* :class:`ByteDistiller`: the estimator (teacher byte targets -> student + byte head);
* :class:`ByteLevelLM`: a token-level causal LM seen as a next-byte model;
* :class:`ByteTargetCache`: teacher byte targets on disk, computed once per text;
* :class:`TextSource` / :func:`iter_texts`: training corpora (lists, generators, folders,
  ``.jsonl`` files, Hugging Face datasets), read once and sharded for distributed training;
* :func:`token_bytes` / :class:`TokenBytes`: the token -> bytes table of a tokenizer, and
  :class:`VocabTrie`, the byte trie over it.
"""

from sklearn_lts.distill._byte_lm import ByteLevelLM, ConversionStats
from sklearn_lts.distill._constants import EOT, N_BYTE_SYMBOLS, ROW_WIDTH
from sklearn_lts.distill._distiller import ByteDistiller
from sklearn_lts.distill._sources import TextSource, iter_texts
from sklearn_lts.distill._targets import (
    ByteTargetCache,
    TargetCacheWarning,
    byte_lm_fingerprint,
    text_hash,
)
from sklearn_lts.distill._token_bytes import (
    TokenBytes,
    UnsupportedTokenizerError,
    token_bytes,
    token_bytes_table,
)
from sklearn_lts.distill._trie import VocabTrie

__all__ = [
    "ByteDistiller",
    "ByteLevelLM",
    "ConversionStats",
    "ByteTargetCache",
    "TextSource",
    "iter_texts",
    "TargetCacheWarning",
    "byte_lm_fingerprint",
    "text_hash",
    "TokenBytes",
    "UnsupportedTokenizerError",
    "VocabTrie",
    "token_bytes",
    "token_bytes_table",
    "EOT",
    "N_BYTE_SYMBOLS",
    "ROW_WIDTH",
]
