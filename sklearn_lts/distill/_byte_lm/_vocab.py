"""The byte table and trie of a tokenizer, cached per tokenizer object."""

from __future__ import annotations

from typing import Any, NamedTuple

from sklearn_lts.distill._token_bytes import TokenBytes, cached_token_bytes
from sklearn_lts.distill._trie import VocabTrie

__all__ = ["Vocabulary", "vocabulary"]


class Vocabulary(NamedTuple):
    """The bytes of every token id and the byte trie over them."""

    tb: TokenBytes
    trie: VocabTrie


_TRIES: list[tuple[TokenBytes, VocabTrie]] = []  # tries of the last few tables, most recent last
_CACHE_SIZE = 4


def vocabulary(tokenizer: Any, vocab_size: int, bos: int | None, eos: int | None) -> Vocabulary:
    """TokenBytes and trie of a tokenizer, cached: reading a vocabulary takes 0.1-1 s.

    ``vocab_size`` is the size of the model's output layer; ``bos``/``eos`` override the
    tokenizer's own ids. The table comes from the one token -> bytes cache
    (:func:`~sklearn_lts.distill._token_bytes.cached_token_bytes`, which never reuses a table
    for another tokenizer state or override); the trie is kept per table object.
    """
    tb = cached_token_bytes(tokenizer, vocab_size, bos_token_id=bos, eos_token_id=eos)
    for t, trie in _TRIES:
        if t is tb:
            return Vocabulary(tb, trie)
    trie = VocabTrie(tb)
    _TRIES.append((tb, trie))
    del _TRIES[:-_CACHE_SIZE]
    return Vocabulary(tb, trie)
