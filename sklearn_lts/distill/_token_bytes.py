"""Token ids -> byte strings for the tokenizer families we meet: the one token->bytes table.

A causal LM over tokens defines a distribution over byte strings once every token is mapped to
the bytes it decodes to. This module builds that map (:func:`token_bytes`) for

* byte-level BPE (GPT-2, SmolLM2, Llama-3, Qwen: every byte is shown as a printable character);
* SentencePiece with byte fallback (Llama-2, Mistral, Gemma: ``"▁"`` is a space, ``<0xNN>`` is
  the raw byte ``NN``, and a dummy-prefix space is added before the text);
* tiktoken-style vocabularies (a ``tiktoken.Encoding`` or a ``{bytes: rank}`` dict);

and gives ``None`` to added and special tokens, which are never produced from text bytes.
Tokenizers that cannot represent arbitrary bytes (lower-casing WordPiece, SentencePiece without
byte fallback) are rejected with an error that says why.

The byte trie over such a table lives in :mod:`sklearn_lts.distill._trie`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from typing import Any

from sklearn_lts.distill._vocab_hf import (
    has_dummy_prefix,
    is_byte_fallback,
    is_byte_level,
    is_normalizing,
    read_pipeline,
)

__all__ = [
    "TokenBytes",
    "token_bytes",
    "token_bytes_table",
    "cached_token_bytes",
    "UnsupportedTokenizerError",
]


class UnsupportedTokenizerError(ValueError):
    """The tokenizer cannot represent arbitrary byte strings, so no byte-level LM exists."""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}
_UTF8_BYTES = [b for b in range(256) if b not in (0xC0, 0xC1) and b < 0xF5]


@dataclass(frozen=True)
class TokenBytes:
    """Byte string of every token id, plus the tokenizer conventions a byte LM needs.

    Attributes
    ----------
    token_bytes : tuple of (bytes or None)
        ``token_bytes[i]`` is what token ``i`` decodes to; ``None`` for added/special tokens and
        for ids beyond the tokenizer (padding rows of the model's output layer).
    family : str
        ``"byte_level_bpe"``, ``"sentencepiece_byte_fallback"``, ``"tiktoken"`` or ``"plain"``.
    prefix : bytes
        Bytes the tokenizer puts before every text (``b" "`` for a SentencePiece dummy prefix).
        The byte LM conditions on them, i.e. it scores ``prefix + text``.
    bos_token_id : int
        Token the sequences are conditioned on (the BOS token, else the EOS token).
    eos_token_id : int or None
        Token that ends a sequence; its probability is column 256 of the byte distribution.
    """

    token_bytes: tuple[bytes | None, ...]
    family: str
    prefix: bytes = b""
    bos_token_id: int = 0
    eos_token_id: int | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.token_bytes)

    def __getitem__(self, i: int) -> bytes | None:
        return self.token_bytes[i]

    def __iter__(self):
        return iter(self.token_bytes)


def _check_coverage(tb: list[bytes | None], what: str) -> list[int]:
    """Reject vocabularies that cannot spell text byte by byte; return the few missing bytes.

    Real byte-level vocabularies may lack a handful of single-byte tokens (SmolLM2 has no token
    for a few control characters and for the 0xF1/0xF2 lead bytes); texts with those bytes then
    have probability zero, which :class:`ByteLevelLM` reports. More gaps than that (or a gap in
    printable ASCII) means the tokenizer is not byte-complete at all.
    """
    singles = {b[0] for b in tb if b is not None and len(b) == 1}
    missing = [b for b in _UTF8_BYTES if b not in singles]
    ascii_gap = [b for b in missing if 0x20 <= b < 0x7F or b in (0x09, 0x0A)]
    if len(missing) > 16 or ascii_gap:
        shown = ", ".join(f"0x{b:02X}" for b in (ascii_gap or missing)[:8])
        raise UnsupportedTokenizerError(
            f"{what} cannot represent arbitrary bytes: no single-byte token for {len(missing)} "
            f"byte values that occur in UTF-8 text ({shown}{', ...' if len(missing) > 8 else ''}). "
            "A byte-level LM needs a tokenizer with byte-level BPE or byte fallback."
        )
    return missing


def _normalizing_error(name: str, model_type: str) -> UnsupportedTokenizerError:
    return UnsupportedTokenizerError(
        f"{name} ({model_type or 'unknown model'}) cannot represent arbitrary bytes: it "
        "normalises the text (lower-casing / accent stripping), maps unknown characters to "
        "an [UNK] token and decodes word pieces with context-dependent spaces, so its token "
        "sequences do not define a distribution over byte strings."
    )


def _byte_level_table(strs: list[str | None], skip: set[int], size: int) -> list[bytes | None]:
    """Byte-level BPE pieces -> bytes through GPT-2's printable alphabet."""
    tb: list[bytes | None] = [None] * size
    for i, s in enumerate(strs):
        if s is None or i in skip or not s or any(c not in _BYTE_DECODER for c in s):
            continue
        tb[i] = bytes(_BYTE_DECODER[c] for c in s)
    return tb


def _piece_table(strs: list[str | None], skip: set[int], size: int) -> list[bytes | None]:
    """SentencePiece pieces -> bytes: ``"\u2581"`` is a space, ``<0xNN>`` the raw byte NN."""
    tb: list[bytes | None] = [None] * size
    for i, s in enumerate(strs):
        if s is None or i in skip or not s:
            continue
        if len(s) == 6 and s.startswith("<0x") and s.endswith(">"):
            try:
                tb[i] = bytes([int(s[3:5], 16)])
                continue
            except ValueError:
                pass
        tb[i] = s.replace("\u2581", " ").encode("utf-8")
    return tb


def _slow_tokenizer_family(tok: Any, strs: list[str | None]) -> tuple[bool, bool, bool]:
    """(byte-level, byte fallback, dummy prefix) guessed from a slow tokenizer's vocabulary."""
    vocab = set(s for s in strs if s is not None)
    byte_level = all(c in vocab for c in _BYTE_DECODER)
    fallback = not byte_level and all(f"<0x{b:02X}>" in vocab for b in range(256))
    dummy = bool(getattr(tok, "add_prefix_space", True)) and getattr(
        tok, "legacy", True
    ) is not None
    return byte_level, fallback, dummy


def _hf_token_bytes(tok: Any, vocab_size: int | None) -> TokenBytes:
    """TokenBytes of a Hugging Face tokenizer (fast: from its pipeline; slow: guessed)."""
    name = type(tok).__name__
    pipe = read_pipeline(tok)
    if is_normalizing(pipe):
        raise _normalizing_error(name, pipe.model_type)
    n_tok = len(tok)
    size = max(n_tok, vocab_size or 0)
    special = set(getattr(tok, "all_special_ids", []) or [])
    special |= set((getattr(tok, "added_tokens_decoder", None) or {}).keys())
    pieces = tok.convert_ids_to_tokens(list(range(n_tok)))
    strs = [t if isinstance(t, str) else None for t in pieces]
    if pipe.known:
        byte_level, fallback = is_byte_level(pipe), is_byte_fallback(pipe)
        dummy = has_dummy_prefix(pipe, byte_level)
    else:
        byte_level, fallback, dummy = _slow_tokenizer_family(tok, strs)
    if byte_level:
        family, tb = "byte_level_bpe", _byte_level_table(strs, special, size)
    else:
        family = "sentencepiece_byte_fallback" if fallback else "plain"
        tb = _piece_table(strs, special, size)
    missing = _check_coverage(tb, name)
    bos = getattr(tok, "bos_token_id", None)
    eos = getattr(tok, "eos_token_id", None)
    if bos is None:
        bos = eos
    if bos is None:
        raise UnsupportedTokenizerError(f"{name} has neither a BOS nor an EOS token to start from.")
    return TokenBytes(
        tuple(tb), family, b" " if dummy else b"", int(bos), None if eos is None else int(eos),
        {"missing_bytes": missing},
    )


def _tiktoken_bytes(
    enc: Any, vocab_size: int | None, bos: int | None, eos: int | None
) -> TokenBytes:
    if isinstance(enc, dict):  # {bytes: rank}: a tiktoken "mergeable ranks" table
        ranks = enc
        specials: dict[str, int] = {}
    else:
        ranks = enc._mergeable_ranks
        specials = dict(enc._special_tokens)
    size = max([vocab_size or 0, max(ranks.values()) + 1] + [v + 1 for v in specials.values()])
    tb: list[bytes | None] = [None] * size
    for b, r in ranks.items():
        tb[r] = bytes(b) if b else None
    if eos is None:
        eos = specials.get("<|endoftext|>")
    if bos is None:
        bos = specials.get("<|begin_of_text|>", eos)
    if bos is None:
        raise UnsupportedTokenizerError("pass bos_token_id= for a vocabulary without specials")
    missing = _check_coverage(tb, "this tiktoken vocabulary")
    return TokenBytes(tuple(tb), "tiktoken", b"", int(bos), eos, {"missing_bytes": missing})


def token_bytes(
    tokenizer: Any,
    vocab_size: int | None = None,
    *,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> TokenBytes:
    """Map every token id of ``tokenizer`` to the bytes it decodes to.

    Parameters
    ----------
    tokenizer : transformers tokenizer, ``tiktoken.Encoding``, dict or TokenBytes
        A Hugging Face tokenizer (fast or slow), a tiktoken encoding, a ``{bytes: rank}``
        dict of tiktoken-style mergeable ranks, or an existing :class:`TokenBytes`.
    vocab_size : int, optional
        Size of the model's output layer; ids beyond the tokenizer get ``None``.
    bos_token_id, eos_token_id : int, optional
        Override the tokenizer's BOS / EOS token.

    Returns
    -------
    TokenBytes

    Raises
    ------
    UnsupportedTokenizerError
        If the tokenizer cannot represent every byte value (e.g. lower-casing WordPiece).

    Examples
    --------
    >>> tb = token_bytes({b"a": 0, b"b": 1, b"ab": 2, **{bytes([i]): 3 + i for i in range(256)
    ...                   if i not in (97, 98)}}, bos_token_id=0)
    >>> tb.family, tb.token_bytes[2]
    ('tiktoken', b'ab')
    """
    if isinstance(tokenizer, TokenBytes):
        tb = tokenizer
    elif isinstance(tokenizer, dict) or hasattr(tokenizer, "_mergeable_ranks"):
        tb = _tiktoken_bytes(tokenizer, vocab_size, bos_token_id, eos_token_id)
    else:
        tb = _hf_token_bytes(tokenizer, vocab_size)
    if vocab_size is not None and vocab_size > len(tb):
        tb = replace(tb, token_bytes=tb.token_bytes + (None,) * (vocab_size - len(tb)))
    if bos_token_id is not None:
        tb = replace(tb, bos_token_id=int(bos_token_id))
    if eos_token_id is not None:
        tb = replace(tb, eos_token_id=int(eos_token_id))
    # BOS and EOS are special whatever their spelling: they never come from text bytes
    specials = {tb.bos_token_id, tb.eos_token_id} - {None}
    if any(s < len(tb) and tb.token_bytes[s] is not None for s in specials):
        seq = list(tb.token_bytes)
        for s in specials:
            if s < len(seq):
                seq[s] = None
        tb = replace(tb, token_bytes=tuple(seq))
    return tb


def token_bytes_table(tokenizer: Any) -> list[bytes | None]:
    """Plain list version of :func:`token_bytes`: ``table[i]`` is the bytes of token ``i``.

    Examples
    --------
    >>> table = token_bytes_table({bytes([i]): i for i in range(256)} | {b"hi": 256})
    >>> table[256], len(table)
    (b'hi', 257)
    """
    if isinstance(tokenizer, dict):
        return list(_tiktoken_bytes(tokenizer, None, 0, None).token_bytes)
    return list(token_bytes(tokenizer).token_bytes)


_CACHE: list[tuple[weakref.ref, tuple, TokenBytes]] = []  # a few recently used tokenizers


def _mutable_state(tokenizer: Any) -> tuple:
    """What can change in a tokenizer object in place: its size (added tokens), BOS and EOS."""
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else None
    return size, getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)


def cached_token_bytes(
    tokenizer: Any,
    vocab_size: int | None = None,
    *,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> TokenBytes:
    """:func:`token_bytes`, remembered per tokenizer object (reading a vocabulary takes ~1 s).

    Entries are keyed by the tokenizer's identity (a weak reference: nothing is written onto the
    user's object), its current size and special ids, and the arguments, so a tokenizer that
    gained tokens, or another vocabulary size or BOS/EOS id, never gets a table built for
    something else.

    Examples
    --------
    >>> from sklearn_lts.models import gpt2_tokenizer
    >>> tok = gpt2_tokenizer()
    >>> cached_token_bytes(tok) is cached_token_bytes(tok)
    True
    >>> cached_token_bytes(tok, eos_token_id=0).eos_token_id
    0
    """
    key = (vocab_size, bos_token_id, eos_token_id, _mutable_state(tokenizer))
    for ref, k, tb in _CACHE:
        if ref() is tokenizer and k == key:
            return tb
    tb = token_bytes(tokenizer, vocab_size, bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    try:
        ref = weakref.ref(tokenizer)
    except TypeError:  # e.g. a plain dict vocabulary: cheap to rebuild, not cached
        return tb
    _CACHE.append((ref, key, tb))
    del _CACHE[:-4]
    return tb
