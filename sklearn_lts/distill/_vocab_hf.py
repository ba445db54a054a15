"""What a Hugging Face tokenizer's pipeline does to text, read from its ``tokenizers`` JSON.

:func:`~sklearn_lts.distill._token_bytes.token_bytes` needs four facts about a tokenizer: its
model type, whether it falls back to raw bytes, whether it normalises text (lower-casing,
accent stripping: then no byte-level LM exists), and whether it puts a dummy-prefix space
before every text. :func:`read_pipeline` collects the pipeline components once; the predicates
below answer those questions from them.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

__all__ = ["Pipeline", "read_pipeline", "is_normalizing", "is_byte_level", "is_byte_fallback",
           "has_dummy_prefix"]

_NORMALIZING = ("Lowercase", "BertNormalizer", "StripAccents")


class Pipeline(NamedTuple):
    """Components of a fast tokenizer's pipeline (all empty for a slow tokenizer)."""

    model_type: str  # "BPE", "Unigram", "WordPiece", ... ("" when unknown)
    byte_fallback: bool  # the model itself falls back to <0xNN> byte pieces
    normalizers: list[dict]
    pretokenizers: list[dict]
    decoders: list[dict]
    known: bool  # False for a slow tokenizer: the caller must guess from the vocabulary


def _walk(obj: Any) -> list[dict]:
    """All dicts with a ``"type"`` in a tokenizers JSON component (which may be a Sequence)."""
    if not isinstance(obj, dict):
        return []
    out = [obj] if "type" in obj else []
    for k in ("normalizers", "pretokenizers", "decoders", "processors"):
        for sub in obj.get(k) or []:
            out += _walk(sub)
    return out


def read_pipeline(tok: Any) -> Pipeline:
    """Read the pipeline of ``tok``: component by component (the whole JSON is slow to parse).

    Examples
    --------
    >>> from sklearn_lts.models import gpt2_tokenizer
    >>> p = read_pipeline(gpt2_tokenizer())
    >>> p.model_type, is_byte_level(p), is_normalizing(p)
    ('BPE', True, False)
    """
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        return Pipeline("", False, [], [], [], known=False)
    parts = {}
    for part in ("normalizer", "pre_tokenizer", "decoder"):
        comp = getattr(backend, part, None)
        parts[part] = json.loads(comp.__getstate__()) if comp is not None else None
    return Pipeline(
        model_type=type(backend.model).__name__,
        byte_fallback=bool(getattr(backend.model, "byte_fallback", False)),
        normalizers=_walk(parts["normalizer"]),
        pretokenizers=_walk(parts["pre_tokenizer"]),
        decoders=_walk(parts["decoder"]),
        known=True,
    )


def is_normalizing(p: Pipeline) -> bool:
    """WordPiece or a normaliser that changes the text: token sequences do not spell bytes."""
    return p.model_type == "WordPiece" or any(n["type"] in _NORMALIZING for n in p.normalizers)


def is_byte_level(p: Pipeline) -> bool:
    """Byte-level BPE: every byte is shown as a printable character (GPT-2's alphabet)."""
    return any(d["type"] == "ByteLevel" for d in p.decoders + p.pretokenizers)


def is_byte_fallback(p: Pipeline) -> bool:
    """SentencePiece-style ``<0xNN>`` pieces for bytes that have no piece of their own."""
    return p.byte_fallback or any(d["type"] == "ByteFallback" for d in p.decoders)


def has_dummy_prefix(p: Pipeline, byte_level: bool) -> bool:
    """Whether the tokenizer puts a space before every text (byte-level or Metaspace style)."""
    if byte_level:
        return any(
            t["type"] == "ByteLevel" and t.get("add_prefix_space") for t in p.pretokenizers
        )
    metaspace = any(
        t["type"] == "Metaspace"
        and t.get("prepend_scheme", "always") in ("first", "always")
        and t.get("add_prefix_space", True)
        for t in p.pretokenizers
    )
    prepend = any(n["type"] == "Prepend" and n.get("prepend") == "\u2581" for n in p.normalizers)
    return metaspace or prepend
