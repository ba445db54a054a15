"""What a trained student computes on new text: bits per byte, pooled states, byte-head rows."""

from __future__ import annotations

import numpy as np
import torch

from sklearn_lts.distill._align import align_text
from sklearn_lts.distill._constants import EOT, IGNORE_INDEX, ROW_WIDTH
from sklearn_lts.distill._student import bos_pad
from sklearn_lts.distill._trainer import last_hidden
from sklearn_lts.distill._windows import context_windows, make_windows, pad_windows

__all__ = ["windows_nll", "mean_hidden", "byte_head_rows"]


def windows_nll(model, tok, texts: list[str], max_length: int, batch: int = 8):
    """Summed next-token NLL (nats) of ``texts`` under ``model``, and their UTF-8 byte count.

    Each text is scored in predictive windows of ``max_length`` tokens that start with BOS.
    """
    bos, pad = bos_pad(tok)
    ids = [align_text(t, tok).ids for t in texts]
    windows = make_windows([len(i) for i in ids], max_length)
    device = next(model.parameters()).device
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            b = pad_windows([ids[d][s:e] for d, s, e in windows[i : i + batch]], bos, pad)
            logits = model(
                input_ids=torch.from_numpy(b.input_ids).to(device),
                attention_mask=torch.from_numpy(b.attention_mask).to(device),
            ).logits
            total += float(
                torch.nn.functional.cross_entropy(
                    logits.float().reshape(-1, logits.shape[-1]),
                    torch.from_numpy(b.labels).to(device).reshape(-1),
                    ignore_index=IGNORE_INDEX,
                    reduction="sum",
                )
            )
    return total, int(sum(len(t.encode("utf-8")) for t in texts))


def mean_hidden(model, tok, text: str, max_length: int) -> np.ndarray:
    """Mean of the student's last hidden states over the tokens of ``text`` (BOS if empty)."""
    bos, _ = bos_pad(tok)
    device = next(model.parameters()).device
    acc, n = None, 0
    with torch.no_grad():
        for _, window in context_windows(align_text(text, tok).ids, max_length, bos):
            x = torch.tensor([window], device=device)
            _, h = last_hidden(model, x, torch.ones_like(x))
            h = h[0, 1:] if x.shape[1] > 1 else h[0]  # pool over the text tokens, not BOS
            acc = h.sum(0) if acc is None else acc + h.sum(0)
            n += h.shape[0]
    return (acc / n).float().cpu().numpy()


def _slot_golds(a, data: bytes, preds: list[int], k: int) -> tuple[torch.Tensor, list[int]]:
    """Teacher-forcing bytes (gold) of each predicted token and its byte count."""
    L = len(a.ids)
    lens = [int(a.lengths[t]) if t < L else 1 for t in preds]
    gold = torch.full((len(preds), k), IGNORE_INDEX, dtype=torch.long)
    for r, t in enumerate(preds):
        if t < L:
            st = int(a.starts[t])
            seg = data[st : st + min(lens[r], k)]
            gold[r, : len(seg)] = torch.tensor(list(seg), dtype=torch.long)
        else:
            gold[r, 0] = 0  # slot 0 only; its value is not read by the decoder
    return gold, lens


def byte_head_rows(model, head, tok, text: str, max_length: int, max_token_bytes: int | None):
    """The byte head's next-byte rows along ``text`` (see ``ByteDistiller.next_byte_proba``)."""
    bos, _ = bos_pad(tok)
    a = align_text(text, tok)
    data = text.encode("utf-8")
    n, L = len(data), len(a.ids)
    out = np.full((n + 1, ROW_WIDTH), np.nan, dtype=np.float64)
    device = next(model.parameters()).device
    with torch.no_grad():
        for s, window in context_windows(a.ids, max_length, bos):
            e = s + len(window) - 1
            x = torch.tensor([window], device=device)
            _, h = last_hidden(model, x, torch.ones_like(x))
            # position p predicts token s + p; position e - s predicts what follows e
            preds = list(range(s, e)) + ([L] if e == L else [])
            k = max(max(int(a.lengths[t]) if t < L else 1 for t in preds), 1)
            if max_token_bytes is not None:
                k = min(k, max_token_bytes)
            gold, lens = _slot_golds(a, data, preds, k)
            logits = head(h[0, : len(preds)], gold.to(device))
            probs = torch.softmax(logits.float()[..., : EOT + 1], -1).cpu().numpy()
            for r, t in enumerate(preds):
                st = int(a.starts[t]) if t < L else n
                for j in range(min(lens[r], probs.shape[1])):
                    out[st + j] = probs[r, j]
    return out
