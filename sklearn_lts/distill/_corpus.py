"""Training and evaluation texts: what ``X`` may be, checked before any work starts."""

from __future__ import annotations

__all__ = ["check_texts", "refuse_unordered"]


def check_texts(X, what: str = "X") -> list[str]:
    """``X`` as a non-empty list of strings, or a TypeError that says what was given.

    Examples
    --------
    >>> check_texts(("a", "b"))
    ['a', 'b']
    >>> check_texts("ab")
    Traceback (most recent call last):
    ...
    TypeError: X must be a list of strings, not a single string
    """
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, not a single string")
    refuse_unordered(X, what)
    texts = list(X)
    if not texts:
        raise ValueError(f"{what} is empty: pass at least one text")
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"{what} must hold strings only, found {type(bad).__name__}")
    return texts


def refuse_unordered(X, what: str = "X") -> None:
    """A TypeError for a dict or a set: no order, or keys instead of texts."""
    if isinstance(X, (dict, set, frozenset)):
        raise TypeError(f"{what} must be a list of strings, not a {type(X).__name__} "
                        "(no order, or keys instead of texts)")
