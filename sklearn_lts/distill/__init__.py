"""Distillation half: byte-level cross-tokenizer distillation (text in, a student model out)."""

from sklearn_lts.distill._byte_lm import ByteLevelLM, ConversionStats
from sklearn_lts.distill._targets import ByteTargetCache, byte_lm_fingerprint, text_hash
from sklearn_lts.distill._token_bytes import (
    TokenBytes,
    UnsupportedTokenizerError,
    VocabTrie,
    token_bytes,
    token_bytes_table,
)

__all__ = [
    "ByteLevelLM",
    "ConversionStats",
    "ByteTargetCache",
    "byte_lm_fingerprint",
    "text_hash",
    "TokenBytes",
    "UnsupportedTokenizerError",
    "VocabTrie",
    "token_bytes",
    "token_bytes_table",
]
