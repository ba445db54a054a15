"""Training objectives of the student: what each needs from a batch, and its loss.

An objective gathers its own targets for a batch of windows (:meth:`Objective.targets`) and
turns the student's outputs into a dict of loss parts, ``"loss"`` being the one to minimise
(:meth:`Objective.loss`). Adding an objective means adding one class here.

* :class:`SFT`: next-token cross-entropy on the text (no teacher);
* :class:`BLD`: byte-level distillation (Singh et al., Eq. 5): token CE + byte-head CE on the
  gold bytes + KL(teacher bytes || byte head), optionally + KL(teacher next byte || the token
  head's next-byte marginal);
* :class:`ULD`: token CE + Universal Logit Distillation at shared token starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from sklearn_lts.distill._align import gather_byte_targets
from sklearn_lts.distill._document import Document
from sklearn_lts.distill._losses import bld_loss, token_byte_kl, token_ce, uld_distance
from sklearn_lts.distill._windows import Window

__all__ = ["Objective", "SFT", "BLD", "ULD"]


def _token_positions(docs: list[Document], windows: list[Window]) -> list[tuple[int, int]]:
    """``(window, position)`` of every predicted token that covers text bytes, in batch order."""
    out = []
    for i, (d, s, e) in enumerate(windows):
        lengths = docs[d].align.lengths
        out.extend((i, p) for p in range(e - s) if lengths[s + p] > 0)
    return out


def _index(pairs: list[tuple[int, int]]) -> torch.Tensor:
    """``[[window...], [position...]]`` as a (2, P) index tensor."""
    return torch.tensor([[b for b, _ in pairs], [t for _, t in pairs]], dtype=torch.long).reshape(
        2, -1
    )


class Objective:
    """Base class: an objective with no targets beyond the token labels."""

    name: ClassVar[str] = ""
    uses_byte_head: ClassVar[bool] = False

    def targets(self, docs: list[Document], windows: list[Window]) -> dict[str, torch.Tensor]:
        """Extra batch entries this objective reads (beyond ids, mask and labels)."""
        return {}

    def loss(self, logits, hidden, batch, head) -> dict[str, torch.Tensor]:
        """Loss parts of one batch from the student's logits and last hidden states."""
        raise NotImplementedError


@dataclass
class SFT(Objective):
    """Next-token cross-entropy only."""

    name: ClassVar[str] = "sft"

    def loss(self, logits, hidden, batch, head) -> dict[str, torch.Tensor]:
        ce = token_ce(logits, batch["labels"])
        return {"loss": ce, "token_ce": ce}


@dataclass
class BLD(Objective):
    """Byte-level distillation: token CE + byte CE + byte KL (+ token-head byte KL).

    ``first_byte`` (token id -> column of its first byte) is needed only when
    ``token_kl_weight`` is non-zero.
    """

    max_bytes: int | None
    byte_ce_weight: float = 1.0
    kl_weight: float = 0.1
    temperature: float = 1.0
    token_kl_weight: float = 0.0
    first_byte: torch.Tensor | None = None
    name: ClassVar[str] = "bld"
    uses_byte_head: ClassVar[bool] = True

    def targets(self, docs: list[Document], windows: list[Window]) -> dict[str, torch.Tensor]:
        """Gold bytes and teacher rows of every predicted token, gathered per document."""
        pairs = _token_positions(docs, windows)
        doc_of = np.asarray([windows[i].doc for i, _ in pairs])
        starts = np.asarray([docs[windows[i].doc].align.starts[windows[i].start + p]
                             for i, p in pairs], dtype=np.int64)
        lengths = np.asarray([docs[windows[i].doc].align.lengths[windows[i].start + p]
                              for i, p in pairs], dtype=np.int64)
        k = self.max_bytes if self.max_bytes is not None else (max(lengths) if pairs else 1)
        golds, rows, order = [], [], []
        for d in dict.fromkeys(doc_of.tolist()):  # gather per document, keep the batch order
            sel = np.flatnonzero(doc_of == d)
            g, r = gather_byte_targets(
                docs[d].data, starts[sel], lengths[sel], k, docs[d].teacher_rows
            )
            golds.append(g)
            rows.append(r)
            order.append(sel)
        inv = np.argsort(np.concatenate(order)) if order else np.zeros(0, np.int64)
        gold = np.concatenate(golds)[inv] if golds else np.zeros((0, k), np.int64)
        out = {"byte_pos": _index(pairs), "gold_bytes": torch.from_numpy(gold)}
        if rows and rows[0] is not None:
            out["teacher_rows"] = torch.from_numpy(np.concatenate(rows)[inv])
        return out

    def loss(self, logits, hidden, batch, head) -> dict[str, torch.Tensor]:
        b, t = batch["byte_pos"]
        gold = batch["gold_bytes"]
        byte_logits = head(hidden[b, t], gold)
        gold = gold[:, : byte_logits.shape[1]]
        rows = batch.get("teacher_rows")
        tkl = None
        if rows is not None and self.token_kl_weight and self.first_byte is not None:
            # rows whose gold token really starts with the text byte there (not, e.g., a
            # SentencePiece dummy-prefix space)
            fb = self.first_byte.to(gold.device)[batch["labels"][b, t]]
            tkl = token_byte_kl(
                logits[b, t], self.first_byte, rows[:, 0], fb == gold[:, 0], self.temperature
            )
        if rows is not None:
            rows = rows[:, : byte_logits.shape[1]]
        return bld_loss(
            logits, batch["labels"], byte_logits, gold, rows, self.byte_ce_weight,
            self.kl_weight, self.temperature, tkl, self.token_kl_weight,
        )


@dataclass
class ULD(Objective):
    """Token CE + Universal Logit Distillation where both tokenizers start a token."""

    kl_weight: float = 0.1
    temperature: float = 1.0
    name: ClassVar[str] = "uld"

    def targets(self, docs: list[Document], windows: list[Window]) -> dict[str, torch.Tensor]:
        """Sorted teacher probabilities at the student tokens that start where a teacher's does."""
        pairs, rows = [], []
        for i, p in _token_positions(docs, windows):
            doc = docs[windows[i].doc]
            r = doc.uld_offsets.get(int(doc.align.starts[windows[i].start + p]))
            if r is not None:
                pairs.append((i, p))
                rows.append(doc.uld_sorted[r])
        k = docs[0].uld_sorted.shape[1] if docs[0].uld_sorted is not None else 1
        srt = torch.from_numpy(np.stack(rows).astype(np.float32)) if rows else torch.zeros((0, k))
        return {"uld_pos": _index(pairs), "uld_sorted": srt}

    def loss(self, logits, hidden, batch, head) -> dict[str, torch.Tensor]:
        ce = token_ce(logits, batch["labels"])
        b, t = batch["uld_pos"]
        dist = uld_distance(logits[b, t], batch["uld_sorted"], self.temperature)
        return {"loss": ce + self.kl_weight * dist, "token_ce": ce, "uld": dist}
