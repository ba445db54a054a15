"""One encode call of a sentence-transformers model: progress bar, several processes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EncodeSettings", "encode"]

#: seconds an encode runs before its progress bar appears
PROGRESS_DELAY = 3.0
#: a multi-process encode shows sentence-transformers' own bar (no delay) from this many texts
_POOL_BAR_MIN_TEXTS = 2000


@dataclass(frozen=True)
class EncodeSettings:
    """The arguments of ``SentenceTransformer.encode`` that a :class:`SentenceEmbedder` sets."""

    normalize: bool
    prompt: str | None
    prompt_name: str | None
    batch_size: int
    verbose: int
    devices: tuple[str, ...] | None = None  # several: a multi-process pool


@contextmanager
def _progress(model: Any, total: int, verbose: int) -> Iterator[None]:
    """A tqdm bar fed by a forward hook (one update per batch), shown after PROGRESS_DELAY s."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="Embedding", unit="text", delay=PROGRESS_DELAY,
               disable=verbose <= 0, leave=False)

    def hook(module: Any, args: Any, out: Any) -> None:
        # sentence-transformers returns its features as a BatchEncoding (a Mapping)
        emb = out.get("sentence_embedding") if isinstance(out, Mapping) else None
        if emb is not None:
            bar.update(len(emb))

    handle = model.register_forward_hook(hook) if verbose > 0 else None
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()
        bar.close()


def encode(model: Any, texts: list[str], s: EncodeSettings) -> np.ndarray:
    """Embeddings of ``texts`` as a float32 array, in one ``encode`` call.

    With several ``devices`` sentence-transformers starts a pool of processes for the call
    (and stops it after); the rows equal single-process ones up to float rounding.
    """
    kwargs: dict[str, Any] = {}
    if s.prompt is not None:
        kwargs["prompt"] = s.prompt
    if s.prompt_name is not None:
        kwargs["prompt_name"] = s.prompt_name
    common = dict(batch_size=s.batch_size, convert_to_numpy=True,
                  normalize_embeddings=s.normalize, **kwargs)
    if s.devices is not None and len(s.devices) > 1:
        show = s.verbose > 0 and len(texts) >= _POOL_BAR_MIN_TEXTS
        emb = model.encode(texts, device=list(s.devices), show_progress_bar=show, **common)
    else:
        with _progress(model, len(texts), s.verbose):
            emb = model.encode(texts, show_progress_bar=False, **common)
    return np.asarray(emb, dtype=np.float32)
