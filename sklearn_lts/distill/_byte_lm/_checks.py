"""What ByteLevelLM accepts: parameters, texts, the model/tokenizer pair, text lengths.

Each check raises before any model call, with the parameter (or text) at fault and the fix,
instead of an IndexError deep inside the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

from sklearn.utils._param_validation import Interval, StrOptions

from sklearn_lts.distill._token_bytes import TokenBytes

from ._state import TextState

__all__ = [
    "PARAMETER_CONSTRAINTS", "check_text", "check_texts", "check_vocabulary", "depth_bound",
    "check_context",
]

PARAMETER_CONSTRAINTS: dict = {
    "model": "no_validation",
    "tokenizer": "no_validation",
    "method": [StrOptions({"beam", "exact", "lattice", "boundary"})],
    "beam_width": [Interval(Integral, 1, None, closed="left")],
    "prune_threshold": [Interval(Real, 0, 1, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "lookahead": [Interval(Integral, 0, None, closed="left")],
    "window": [Interval(Integral, 0, None, closed="left")],
    "merge": ["boolean"],
    "device": "no_validation",  # a str or a torch.device
    "bos_token_id": [Interval(Integral, 0, None, closed="left"), None],
    "eos_token_id": [Interval(Integral, 0, None, closed="left"), None],
}

_TEXT_TYPES = (str, bytes, bytearray)


def check_text(text: Any) -> None:
    """Raise a TypeError unless ``text`` is a str or bytes (an int would be NUL bytes)."""
    if not isinstance(text, _TEXT_TYPES):
        raise TypeError(f"a text must be a str or bytes, not {type(text).__name__}")


def check_texts(texts: Any) -> list:
    """The texts of a batch as a list; a TypeError for a single text or a non-text item."""
    if isinstance(texts, _TEXT_TYPES):
        raise TypeError(
            f"texts must be an iterable of str or bytes, not a single {type(texts).__name__} "
            "(use next_byte_proba for one text, or wrap it in a list)"
        )
    if not isinstance(texts, Iterable):
        raise TypeError(f"texts must be an iterable of str or bytes, not {type(texts).__name__}")
    texts = list(texts)
    for text_id, t in enumerate(texts):
        if not isinstance(t, _TEXT_TYPES):
            raise TypeError(f"texts[{text_id}] must be a str or bytes, not {type(t).__name__}")
    return texts


def check_vocabulary(tb: TokenBytes, n_out: int, bos: int | None, eos: int | None) -> None:
    """Raise a ValueError if the model's output layer (``n_out`` rows) misses a token.

    ``bos``/``eos`` are the overrides the user passed (to name the right parameter).
    """
    beyond = [i for i in range(n_out, len(tb)) if tb.token_bytes[i] is not None]
    if beyond:
        raise ValueError(
            f"the tokenizer has text tokens up to id {beyond[-1]}, but the model's output layer "
            f"has only {n_out} rows: the tokenizer does not belong to this model. Pass the "
            "model's own tokenizer (or resize the model's token embeddings to the tokenizer)."
        )
    for name, tid, given in (("bos_token_id", tb.bos_token_id, bos),
                             ("eos_token_id", tb.eos_token_id, eos)):
        if tid is not None and not 0 <= tid < n_out:
            where = f"{name}={tid}" if given is not None else f"the tokenizer's {name} ({tid})"
            raise ValueError(
                f"{where} is not a token of the model, whose output layer has {n_out} rows: "
                f"pass {name}= an id below {n_out}"
            )


def depth_bound(method: str, text: TextState) -> int:
    """Most tokens after BOS that any state the method evaluates can have.

    ``"beam"``/``"exact"``: a state spells a prefix of the text with tokens of at least one
    byte, so at most ``len(x)`` tokens (prefix included). ``"boundary"``: the canonical
    tokenization. ``"lattice"``: at byte offsets inside canonical token ``j``, the ``j`` canonical
    tokens before it and a greedy tokenization of at most ``len(token j) - 1`` bytes.

    Examples
    --------
    >>> from sklearn_lts.distill import VocabTrie, token_bytes
    >>> tb = token_bytes({bytes([i]): i for i in range(256)} | {b"abcd": 256}, bos_token_id=0)
    >>> text = TextState(0, b"abcdab", 0, [256, 97, 98], [4, 5, 6], 0, VocabTrie(tb), 0)
    >>> [depth_bound(m, text) for m in ("beam", "boundary", "lattice")]
    [6, 3, 3]
    """
    if method in ("beam", "exact"):
        return len(text.x)
    if method == "boundary" or not text.canon:
        return len(text.canon)
    starts = [0, *text.bounds[:-1]]
    return max(max(j + 1, j + int(b - a) - 1) for j, (a, b) in enumerate(zip(starts, text.bounds)))


def check_context(method: str, text: TextState, max_positions: int | None) -> None:
    """Raise a ValueError if a state of ``text`` could need a position the model lacks."""
    if max_positions is None:
        return
    bound = depth_bound(method, text)
    if bound + 1 > max_positions:  # BOS takes position 0
        if method in ("beam", "exact"):
            fix = f"split it into texts of at most {max_positions - 1 - text.n_prefix} bytes"
            why = "one token per byte"
        else:
            fix = "split it into shorter texts"
            why = "its canonical tokenization"
        raise ValueError(
            f"text {text.text_id} is too long for the model's context: with method={method!r} a "
            f"token sequence covering it can be {bound} tokens long ({why}), but the model "
            f"has {max_positions} positions (BOS included); {fix}"
        )
