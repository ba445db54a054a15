"""Token sequences that spell a byte string: the tokenizer's own, else greedy longest match."""

from __future__ import annotations

from typing import Any

from sklearn_lts.distill._token_bytes import TokenBytes

from ._vocab import Vocabulary

__all__ = ["canonical_ids", "greedy_ids"]


def canonical_ids(tokenizer: Any, vocab: Vocabulary, text: str | bytes, x: bytes) -> list[int]:
    """The tokenizer's own tokenization of ``text`` (whose scored bytes are ``x``).

    Greedy longest match (:func:`greedy_ids`) where the tokenizer cannot encode the text, fails,
    or gives ids that do not spell ``x`` exactly (e.g. a normalising pre-tokenizer).
    """
    tb = vocab.tb
    ids = None
    try:
        if isinstance(text, str) and hasattr(tokenizer, "encode_ordinary"):
            ids = list(tokenizer.encode_ordinary(text))
        elif isinstance(text, str) and callable(tokenizer) and not isinstance(
            tokenizer, TokenBytes
        ):
            ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    except Exception:  # any tokenizer failure: fall back to greedy
        ids = None
    if ids is not None:
        if all(0 <= t < len(tb) and tb.token_bytes[t] for t in ids) and b"".join(
            tb.token_bytes[t] for t in ids
        ) == x:
            return ids
    return greedy_ids(vocab, x, 0, len(x))


def greedy_ids(vocab: Vocabulary, x: bytes, a: int, b: int, limit: int | None = None) -> list[int]:
    """Greedy longest-match tokenization of ``x[a:b]`` (its first ``limit`` tokens).

    Raises
    ------
    ValueError
        If a byte of ``x[a:b]`` starts no token (the LM gives the text probability zero).
    """
    trie = vocab.trie
    out: list[int] = []
    while a < b and (limit is None or len(out) < limit):
        best = None
        for d in range(1, min(b - a, trie.max_len) + 1):
            node = trie.node(x[a : a + d])
            if node.hi <= node.lo:
                break
            if node.n_end:
                best = (d, int(trie.order[node.lo]))
        if best is None:
            raise ValueError(
                f"byte 0x{x[a]:02X} at offset {a - len(vocab.tb.prefix)} cannot be "
                "produced by any token of this tokenizer: the LM gives the text "
                "probability zero"
            )
        d, t = best
        out.append(t)
        a += d
    return out
