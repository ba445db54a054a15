"""Validation of text input: a sequence of strings, or of string pairs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import numpy as np

__all__ = ["validate_text_input"]


def _describe(item: Any) -> str:
    text = repr(item)
    return f"{type(item).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def _check_strings(items: Sequence[Any], what: str) -> list[str]:
    out = []
    for i, item in enumerate(items):
        if isinstance(item, np.str_):
            item = str(item)
        if not isinstance(item, str):
            raise TypeError(
                f"SentenceEmbedder expects strings, but {what}item {i} is a {_describe(item)}. "
                "Convert missing values (None/NaN) to strings or drop them first."
            )
        out.append(item)
    return out


def _columns(X: Any) -> list[list]:
    """One or two columns of raw items, before the string check."""
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] in (1, 2):
            return [list(X[:, j]) for j in range(X.shape[1])]
        if X.ndim == 1:
            return [list(X)]
        raise ValueError(
            "SentenceEmbedder expects a 1-d array of texts or a 2-column array of text "
            f"pairs, got an array of shape {X.shape}."
        )
    try:
        items = list(X)
    except TypeError:
        raise TypeError(
            f"SentenceEmbedder expects an iterable of strings, got {type(X).__name__}."
        ) from None
    if items and all(isinstance(it, tuple | list | np.ndarray) for it in items):
        bad = [i for i, it in enumerate(items) if len(it) != 2]
        if bad:
            raise ValueError(
                f"Text pairs must have exactly two items; item {bad[0]} has "
                f"{len(items[bad[0]])}."
            )
        return [[it[0] for it in items], [it[1] for it in items]]
    return [items]


def validate_text_input(X: Any) -> tuple[list[str], list[str] | None]:
    """Split ``X`` into ``(first, second)`` string lists; ``second`` is None for single texts.

    Accepts a list / tuple / 1-d array / pandas Series of strings, or pairs: a 2-column array or
    DataFrame, or a sequence of 2-tuples. Mappings (which would give their keys) and sets
    (whose order is arbitrary, so rows would not match ``y``) raise ``TypeError``.

    Examples
    --------
    >>> validate_text_input(["a", "b"])
    (['a', 'b'], None)
    >>> validate_text_input([("a", "x"), ("b", "y")])
    (['a', 'b'], ['x', 'y'])
    >>> validate_text_input({"a", "b"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: SentenceEmbedder expects an ordered sequence of texts, got a set ...
    """
    if isinstance(X, str | bytes):
        raise TypeError(
            "SentenceEmbedder expects an iterable of strings, got a single string; "
            "wrap it in a list: [text]."
        )
    if isinstance(X, Mapping | AbstractSet):
        kind = "mapping" if isinstance(X, Mapping) else "set"
        raise TypeError(
            f"SentenceEmbedder expects an ordered sequence of texts, got a {kind} "
            f"({type(X).__name__}): a mapping would embed its keys and a set has no fixed "
            "order. Pass a list, e.g. list(d.values()) or sorted(s)."
        )
    if hasattr(X, "iloc"):  # pandas Series or DataFrame
        X = X.to_numpy(dtype=object)
    cols = _columns(X)
    if len(cols[0]) == 0:
        raise ValueError("SentenceEmbedder got an empty input: at least one text is required.")
    if len(cols) == 1:
        return _check_strings(cols[0], ""), None
    return _check_strings(cols[0], "pair column 0, "), _check_strings(cols[1], "pair column 1, ")
