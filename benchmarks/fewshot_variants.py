"""Benchmark-only variants of the adapted pipeline for issue #13 (stop 24), around its defaults.

``SentenceEmbedder(fine_tune="prototypes")`` trains on texts cut to ``fine_tune_max_length=64``
word pieces, their first ones (the tokenizer's truncation), with the prototype loss at
temperature 0.05, and the classifier reads the adapted embeddings only. This script registers,
as text methods of ``fewshot.py``,

- ``x_headtail_<head>``: a text longer than 64 word pieces keeps its first 32 and last 32
  (read from the whole, untruncated text), since a review often ends with its verdict;
- ``x_temp<T>_slp``: the prototype loss at temperature ``T`` instead of 0.05;
- ``x_concat_<head>``: the classifier reads the frozen and the adapted embeddings side by side
  (a ``FeatureUnion``; a feature-level ensemble of the two encoders);

everything else at the library's defaults. Dev rows first (the selection), then eval rows::

    python benchmarks/fewshot_variants.py --data ../shared/data/leopard --dev \
        --text-methods frozen_logreg adapted_slp_t64_s4_lr0.002 x_headtail_slp --shots 4 8 \
        --dev-episodes 5 6 --max-eval 500 --threads 1 \
        --out benchmarks/results/fewshot_variants_dev
    python benchmarks/fewshot_variants.py --data ../shared/data/leopard \
        --text-methods frozen_logreg adapted_slp x_headtail_slp --shots 4 8 --episodes 3 \
        --threads 1 --out benchmarks/results/fewshot_variants

The library ships none of them: the head and tail won on dev rows and lost on eval rows; the
other temperatures and the concatenation lost on dev rows (``results/fewshot_variants_dev.md``,
``results/fewshot_variants.md``).
"""

from __future__ import annotations

import sys
from functools import partial

import fewshot  # this script's folder is first on sys.path when run as a script
from fewshot_losses import ORIGINAL, swapped
from sklearn.pipeline import FeatureUnion, Pipeline

_PROTO = ORIGINAL["prototype_loss"]
_BATCHES = ORIGINAL["_batches"]
_UNCUT = 1_000_000  # tokenizer length while a text is read whole


def cut_head_tail(features: dict, max_length: int) -> dict:
    """Right-padded token rows longer than ``max_length`` keep their first ``max_length // 2``
    and last ``max_length - max_length // 2`` tokens (the special tokens at both ends)."""
    import torch

    ids = features["input_ids"]
    n = features["attention_mask"].sum(1, keepdim=True)
    head = max_length // 2
    width = min(int(n.max()), max_length)
    pos = torch.arange(width, device=ids.device)[None, :]
    # position p >= head of a long row reads token n - (max_length - head) + (p - head)
    src = torch.where((n > max_length) & (pos >= head), n - max_length + pos, pos)
    src = src.expand(len(ids), -1)
    return {k: v.gather(1, src) if torch.is_tensor(v) and v.shape == ids.shape else v
            for k, v in features.items()}


def head_tail_batches(model, texts, max_batch, max_length=None):
    """``_adapt._batches`` with each text cut to its head and tail instead of its head."""
    if max_length is None:
        return _BATCHES(model, texts, max_batch)
    out = _BATCHES(model, texts, max_batch, _UNCUT)  # whole texts, then the cut below
    for b in out:
        b["features"] = cut_head_tail(b["features"], max_length)
    return out


class Ablated:
    """A text pipeline fitted with functions of ``_adapt`` swapped (``swaps``: name -> function)."""

    def __init__(self, tag: str, inner: object, **swaps: object) -> None:
        self.tag, self.inner, self.swaps = tag, inner, swaps

    def fit(self, X, y):
        with swapped(**self.swaps):
            self.inner.fit(X, y)
        return self

    def predict(self, X):
        return self.inner.predict(X)

    def __repr__(self) -> str:
        return f"Ablated({self.tag!r}, {self.inner!r})"


def _at_temperature(Z, y, _default, *, temperature):
    return _PROTO(Z, y, temperature)


def _make(ctx, tag: str, head: str = "slp", **swap: object) -> Ablated:
    return Ablated(tag, fewshot._adapted(ctx, head=head), **swap)


for _head in ("slp", "logreg"):
    fewshot.TEXT_METHODS[f"x_headtail_{_head}"] = partial(
        _make, tag="head_tail", head=_head, _batches=head_tail_batches)
for _t in (0.02, 0.2):
    fewshot.TEXT_METHODS[f"x_temp{_t:g}_slp"] = partial(
        _make, tag=f"temperature={_t:g}", prototype_loss=partial(_at_temperature, temperature=_t))


def _concat(ctx, head: str = "slp") -> Pipeline:
    frozen = fewshot._frozen(lambda: "passthrough", ctx)[0]  # the frozen rows' cached encoder
    adapted = fewshot._adapted(ctx, head=head)
    return Pipeline([("embed", FeatureUnion([("frozen", frozen), ("adapted", adapted[0])])),
                     ("clf", adapted[-1])])


for _head in ("slp", "logreg"):
    fewshot.TEXT_METHODS[f"x_concat_{_head}"] = partial(_concat, head=_head)

if __name__ == "__main__":
    fewshot.__file__ = __file__  # the results name this script as the command
    fewshot.main(sys.argv[1:])
