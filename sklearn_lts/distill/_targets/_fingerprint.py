"""Cache keys: what a teacher's byte rows depend on, hashed.

Rows depend on every weight and buffer of the model, its configuration, the token -> bytes
table with its BOS/EOS/prefix conventions, and the conversion method with the parameters that
change its output. :func:`byte_lm_fingerprint` hashes all of them, every tensor byte included
(about 1.4 s for the 538 MB of SmolLM2-135M in float32 on one busy CPU core): a sample of the
weights would let two checkpoints that differ in a few layers share, and corrupt, one cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["PLAIN_NAME", "byte_lm_fingerprint", "check_key", "text_hash"]

# config entries that say where a model came from, not what it computes
_PROVENANCE_KEYS = ("_name_or_path", "_commit_hash")
# ByteLevelLM parameters that change the rows of a method (the others only change speed)
_METHOD_PARAMS = {"beam": ("beam_width", "prune_threshold", "merge")}
#: A file or folder name that stays where it is joined: no separator, no leading dot
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def text_hash(text: str | bytes) -> str:
    """SHA-1 of the text's UTF-8 bytes (the per-text key of the cache).

    Examples
    --------
    >>> from sklearn_lts.distill import text_hash
    >>> text_hash("abc")
    'a9993e364706816aba3e25717850c26c9cd0d89d'
    >>> text_hash(b"abc") == text_hash("abc")
    True
    """
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return hashlib.sha1(raw).hexdigest()


def check_key(key: str) -> str:
    """Return ``key`` if it is one plain folder name, else raise ``ValueError``.

    A key names a folder below the cache root, so it may not contain separators, start with a
    dot (``..``) or be absolute: letters, digits, ``.``, ``_`` and ``-``, at most 128.

    Examples
    --------
    >>> check_key("beam-0123abcd")
    'beam-0123abcd'
    >>> check_key("../../escaped")
    Traceback (most recent call last):
    ...
    ValueError: cache key '../../escaped' is not a plain folder name ...
    """
    if not isinstance(key, str) or PLAIN_NAME.fullmatch(key) is None:
        raise ValueError(
            f"cache key {key!r} is not a plain folder name (letters, digits, '.', '_', '-'; "
            "not starting with '.'; at most 128 characters)"
        )
    return key


def tensor_bytes(tensor: Any) -> memoryview:
    """The raw bytes of a torch tensor, without a copy when it is contiguous on the CPU.

    Examples
    --------
    >>> import torch
    >>> bytes(tensor_bytes(torch.tensor([1, 2], dtype=torch.int16)))
    b'\\x01\\x00\\x02\\x00'
    """
    import torch

    t = tensor.detach()
    if t.is_meta:
        raise ValueError(
            "cannot fingerprint a model whose weights are on the meta device (offloaded); "
            "pass ByteTargetCache(..., key=...) instead"
        )
    t = t.cpu().contiguous().reshape(-1)
    return memoryview(t.view(torch.uint8).numpy())


def hash_tensors(h: Any, named: Iterable[tuple[str, Any]]) -> None:
    """Feed name, dtype, shape and every byte of each tensor into the hash object ``h``.

    Examples
    --------
    >>> import hashlib, torch
    >>> a, b = hashlib.sha256(), hashlib.sha256()
    >>> hash_tensors(a, [("w", torch.zeros(3))])
    >>> hash_tensors(b, [("w", torch.tensor([0.0, 0.0, 1e-45]))])
    >>> a.hexdigest() == b.hexdigest()
    False
    """
    for name, t in named:
        h.update(f"{name}\x00{t.dtype}\x00{tuple(t.shape)}\x00".encode())
        h.update(tensor_bytes(t))


def _model_config(model: Any) -> bytes:
    cfg = getattr(model, "config", None)
    if cfg is None:
        return type(model).__qualname__.encode()
    d = {k: v for k, v in cfg.to_dict().items() if k not in _PROVENANCE_KEYS}
    return json.dumps(d, sort_keys=True, default=str).encode()


def _vocabulary(token_bytes: Any) -> bytes:
    head = repr(
        (token_bytes.family, token_bytes.prefix, token_bytes.bos_token_id,
         token_bytes.eos_token_id)
    ).encode()
    parts = [b"\x00" if b is None else b"\x01" + len(b).to_bytes(4, "little") + b
             for b in token_bytes.token_bytes]
    return head + b"".join(parts)


def byte_lm_fingerprint(byte_lm: Any) -> str:
    """Cache key of a :class:`~sklearn_lts.distill.ByteLevelLM`: ``"<method>-<16 hex>"``.

    SHA-256 of everything the rows depend on: the model configuration (without its path), every
    byte of every parameter and buffer, the token -> bytes table (``token_bytes_``) with its
    prefix, BOS and EOS, and the method with the parameters that change its rows
    (``beam_width``, ``prune_threshold`` and ``merge`` for ``"beam"``). Changing any single weight
    changes the key. Cost: one pass over the weights (about 1.4 s for SmolLM2-135M in float32).

    Examples
    --------
    >>> import torch
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> from sklearn_lts.distill import ByteLevelLM, byte_lm_fingerprint, token_bytes
    >>> vocab = {bytes([i]): i for i in range(256)} | {b"<eos>": 256}
    >>> tb = token_bytes(vocab, bos_token_id=256, eos_token_id=256)
    >>> model = GPT2LMHeadModel(GPT2Config(vocab_size=257, n_layer=1, n_embd=8, n_head=2))
    >>> key = byte_lm_fingerprint(ByteLevelLM(model, tb))
    >>> with torch.no_grad():
    ...     model.transformer.h[0].mlp.c_proj.bias[-1] += 1e-3
    >>> key.startswith("beam-"), key == byte_lm_fingerprint(ByteLevelLM(model, tb))
    (True, False)
    """
    model = byte_lm.model
    h = hashlib.sha256()
    h.update(_model_config(model))
    hash_tensors(h, list(model.named_parameters()) + list(model.named_buffers()))
    h.update(_vocabulary(byte_lm.token_bytes_))
    method = byte_lm.method
    params = tuple(getattr(byte_lm, p) for p in _METHOD_PARAMS.get(method, ()))
    h.update(repr((method, params)).encode())
    return f"{method}-{h.hexdigest()[:16]}"
