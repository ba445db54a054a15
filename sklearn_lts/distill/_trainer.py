"""Training loop of :class:`~sklearn_lts.distill._distiller.ByteDistiller`.

The corpus is cut into *windows* of at most ``max_length`` student tokens. A window is fed as
``[BOS, t_s, ..., t_{e-2}]`` and position ``p`` predicts ``t_{s+p}``, so every token of the text
is predicted exactly once, the first one from BOS alone. Byte targets are gathered per predicted
token from its byte offset (:func:`~sklearn_lts.distill._align.gather_byte_targets`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sklearn_lts.distill._align import TokenAlignment, gather_byte_targets
from sklearn_lts.distill._losses import bld_loss, token_byte_kl, token_ce, uld_distance

__all__ = ["Document", "make_windows", "collate", "train_student", "last_hidden"]


@dataclass
class Document:
    """One training text seen by the student, with its optional teacher targets."""

    data: bytes
    align: TokenAlignment
    teacher_rows: np.ndarray | None = None  # (n_bytes + 1, 257): BLD targets
    uld_offsets: dict = field(default_factory=dict)  # byte offset -> row of uld_sorted
    uld_sorted: np.ndarray | None = None  # (n_teacher_tokens, k) sorted teacher probs


def make_windows(docs: list[Document], max_length: int) -> list[tuple[int, int, int]]:
    """``(doc, start, end)`` token windows of at most ``max_length`` tokens covering each text.

    Examples
    --------
    >>> from sklearn_lts.distill._align import TokenAlignment
    >>> a = TokenAlignment(np.arange(5), np.arange(5), np.ones(5, int), 5)
    >>> make_windows([Document(b"abcde", a)], 2)
    [(0, 0, 2), (0, 2, 4), (0, 4, 5)]
    """
    out = []
    for d, doc in enumerate(docs):
        n = len(doc.align.ids)
        out.extend((d, s, min(s + max_length, n)) for s in range(0, n, max_length))
    return out


def collate(
    docs: list[Document],
    windows: list[tuple[int, int, int]],
    bos_id: int,
    pad_id: int,
    max_bytes: int | None = None,
    need_bytes: bool = False,
    need_uld: bool = False,
) -> dict[str, torch.Tensor]:
    """Pad a batch of windows and gather byte / ULD targets for the predicted tokens."""
    t_max = max(e - s for _, s, e in windows)
    b = len(windows)
    ids = np.full((b, t_max), pad_id, dtype=np.int64)
    labels = np.full((b, t_max), -100, dtype=np.int64)
    attn = np.zeros((b, t_max), dtype=np.int64)
    pos_b, pos_t, starts, lengths, doc_of = [], [], [], [], []
    uld_b, uld_t, uld_rows = [], [], []
    for i, (d, s, e) in enumerate(windows):
        a = docs[d].align
        toks = a.ids[s:e]
        ids[i, 0] = bos_id
        ids[i, 1 : e - s] = toks[:-1]
        labels[i, : e - s] = toks
        attn[i, : e - s] = 1
        for p in range(e - s):
            if a.lengths[s + p] > 0:
                pos_b.append(i)
                pos_t.append(p)
                starts.append(a.starts[s + p])
                lengths.append(a.lengths[s + p])
                doc_of.append(d)
            if need_uld and a.lengths[s + p] > 0:
                r = docs[d].uld_offsets.get(int(a.starts[s + p]))
                if r is not None:
                    uld_b.append(i)
                    uld_t.append(p)
                    uld_rows.append(docs[d].uld_sorted[r])
    out = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(attn),
        "labels": torch.from_numpy(labels),
    }
    if need_bytes:
        k = max_bytes if max_bytes is not None else (max(lengths) if lengths else 1)
        golds, rows = [], []
        doc_of_arr = np.asarray(doc_of)
        starts_arr, lengths_arr = np.asarray(starts), np.asarray(lengths)
        order = []
        for d in dict.fromkeys(doc_of):  # gather per document, keep the batch order
            sel = np.flatnonzero(doc_of_arr == d)
            g, r = gather_byte_targets(
                docs[d].data, starts_arr[sel], lengths_arr[sel], k, docs[d].teacher_rows
            )
            golds.append(g)
            rows.append(r)
            order.append(sel)
        inv = np.argsort(np.concatenate(order)) if order else np.zeros(0, np.int64)
        gold = np.concatenate(golds)[inv] if golds else np.zeros((0, k), np.int64)
        out["byte_pos"] = torch.tensor([pos_b, pos_t], dtype=torch.long).reshape(2, -1)
        out["gold_bytes"] = torch.from_numpy(gold)
        if rows and rows[0] is not None:
            out["teacher_rows"] = torch.from_numpy(np.concatenate(rows)[inv])
    if need_uld:
        out["uld_pos"] = torch.tensor([uld_b, uld_t], dtype=torch.long).reshape(2, -1)
        k = docs[0].uld_sorted.shape[1] if docs[0].uld_sorted is not None else 1
        out["uld_sorted"] = (
            torch.from_numpy(np.stack(uld_rows).astype(np.float32))
            if uld_rows
            else torch.zeros((0, k))
        )
    return out


def last_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Logits and last-layer hidden states (the ones the LM head reads) of a causal LM."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return out.logits, out.hidden_states[-1]


def compute_loss(
    model,
    head,
    batch: dict[str, torch.Tensor],
    loss: str,
    byte_ce_weight: float,
    kl_weight: float,
    temperature: float,
    token_kl_weight: float = 0.0,
    first_byte: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Loss of one collated batch for ``loss`` in ``{"bld", "sft", "uld"}``."""
    logits, hidden = last_hidden(model, batch["input_ids"], batch["attention_mask"])
    if loss == "sft":
        ce = token_ce(logits, batch["labels"])
        return {"loss": ce, "token_ce": ce}
    if loss == "uld":
        ce = token_ce(logits, batch["labels"])
        b, t = batch["uld_pos"]
        dist = uld_distance(logits[b, t], batch["uld_sorted"], temperature)
        return {"loss": ce + kl_weight * dist, "token_ce": ce, "uld": dist}
    b, t = batch["byte_pos"]
    gold = batch["gold_bytes"]
    byte_logits = head(hidden[b, t], gold)
    gold = gold[:, : byte_logits.shape[1]]
    rows = batch.get("teacher_rows")
    tkl = None
    if rows is not None and token_kl_weight and first_byte is not None:
        # rows whose gold token really starts with the text byte there (not, e.g., a
        # SentencePiece dummy-prefix space)
        fb = first_byte.to(gold.device)[batch["labels"][b, t]]
        tkl = token_byte_kl(logits[b, t], first_byte, rows[:, 0], fb == gold[:, 0], temperature)
    if rows is not None:
        rows = rows[:, : byte_logits.shape[1]]
    return bld_loss(
        logits, batch["labels"], byte_logits, gold, rows, byte_ce_weight, kl_weight, temperature,
        tkl, token_kl_weight,
    )


def train_student(
    model,
    head,
    docs: list[Document],
    *,
    loss: str,
    bos_id: int,
    pad_id: int,
    max_length: int,
    batch_size: int,
    max_steps: int,
    learning_rate: float,
    max_bytes: int | None,
    byte_ce_weight: float,
    kl_weight: float,
    temperature: float,
    rng: np.random.Generator,
    verbose: bool = False,
    callback=None,
    token_kl_weight: float = 0.0,
    first_byte: torch.Tensor | None = None,
) -> list[dict]:
    """Train ``model`` (and ``head``) in place for ``max_steps`` AdamW steps; return the history.

    Batches are windows drawn without replacement from a shuffled epoch order (reshuffled each
    epoch). The learning rate warms up linearly over the first 10% of the steps, then decays
    linearly to 10% of ``learning_rate``; the gradients of the student and of the byte head
    are clipped at norm 1 separately.

    ``callback(step, model, head)``, if given, is called after every step (used for learning
    curves).
    """
    windows = make_windows(docs, max_length)
    if not windows:
        raise ValueError("no tokens to train on")
    params = [p for p in model.parameters() if p.requires_grad]
    head_params = list(head.parameters()) if head is not None else []
    opt = torch.optim.AdamW(params + head_params, lr=learning_rate, weight_decay=0.01)
    warm = max(1, int(0.1 * max_steps))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        frac = (step - warm) / max(1, max_steps - warm)
        return 1.0 - 0.9 * min(frac, 1.0)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    need_bytes, need_uld = loss == "bld", loss == "uld"
    order: list[int] = []
    history: list[dict] = []
    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_steps, desc=f"ByteDistiller[{loss}]")
    model.train()
    if head is not None:
        head.train()
    t0 = time.perf_counter()
    for step in range(max_steps):
        if len(order) < batch_size:
            order.extend(rng.permutation(len(windows)).tolist())
        pick, order = order[:batch_size], order[batch_size:]
        batch = collate(
            docs, [windows[i] for i in pick], bos_id, pad_id, max_bytes, need_bytes, need_uld
        )
        parts = compute_loss(model, head, batch, loss, byte_ce_weight, kl_weight, temperature,
                             token_kl_weight, first_byte)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        # clip student and byte head apart: one global norm would let a large byte-head
        # gradient shrink the student's token-CE update
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        if head_params:
            torch.nn.utils.clip_grad_norm_(head_params, 1.0)
        opt.step()
        sched.step()
        rec = {"step": step + 1, "time": time.perf_counter() - t0}
        rec.update({k: float(v.detach()) for k, v in parts.items()})
        if not math.isfinite(rec["loss"]):
            raise FloatingPointError(f"non-finite loss at step {step + 1}: {rec}")
        history.append(rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
        if callback is not None:
            callback(step + 1, model, head)
    if bar is not None:
        bar.close()
    model.eval()
    if head is not None:
        head.eval()
    return history
