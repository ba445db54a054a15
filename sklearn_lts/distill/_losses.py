"""Training losses as pure functions on tensors: token CE, byte CE, byte KL (BLD), ULD.

Reductions (the paper does not give them; these follow Eq. 5 literally):

- token CE: mean over predicted tokens (labels ``-100`` ignored);
- byte CE and byte KL: **sum over the byte slots of a token, mean over tokens** that have at
  least one supervised slot. Summed over the bytes of a token, the byte CE is the negative
  log-likelihood of the token's bytes, so it lives on the same scale as the token CE;
- ULD: mean over aligned positions.

The KL is forward, ``KL(teacher || student)`` as in Eq. 5. With temperature ``T`` the student
distribution is ``softmax(z / T)`` and the teacher's ``p ** (1 / T)`` renormalised (the teacher
targets are probabilities, not logits); the KL is multiplied by ``T ** 2`` (Hinton et al.) so its
gradient scale does not depend on ``T``. ``T = 1`` (the default) is plain KL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "token_ce",
    "byte_ce",
    "byte_kl",
    "temper",
    "bld_loss",
    "token_byte_kl",
    "first_byte_index",
    "uld_distance",
    "sorted_topk",
]


def token_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) over labels that are not ``-100``.

    ``logits[b, t]`` predicts ``labels[b, t]`` (already shifted).

    Examples
    --------
    >>> import torch
    >>> round(token_ce(torch.zeros(1, 2, 4), torch.tensor([[1, -100]])).item(), 4)  # log 4
    1.3863
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=-100)


def _token_mean(per_slot: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # sum over slots, mean over tokens with at least one valid slot
    per_token = (per_slot * mask).sum(dim=1)
    has = mask.any(dim=1)
    if not bool(has.any()):
        return per_slot.sum() * 0.0
    return per_token[has].mean()


def byte_ce(byte_logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Next-byte cross-entropy on the gold bytes: sum over slots, mean over tokens.

    Parameters
    ----------
    byte_logits : Tensor, shape (P, K, V)
    gold : LongTensor, shape (P, K)
        Gold byte of each slot, ``-100`` for padding.

    Examples
    --------
    >>> import torch
    >>> z = torch.zeros(2, 2, 4)
    >>> g = torch.tensor([[0, 1], [2, -100]])
    >>> round(byte_ce(z, g).item(), 4)  # (2 log 4 + log 4) / 2
    2.0794
    """
    mask = gold != -100
    nll = F.cross_entropy(
        byte_logits.float().reshape(-1, byte_logits.shape[-1]),
        gold.clamp(min=0).reshape(-1),
        reduction="none",
    ).view(gold.shape)
    return _token_mean(nll, mask.to(nll.dtype))


def temper(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``p ** (1 / T)`` renormalised over the last axis (identity for ``T = 1``)."""
    if temperature == 1.0:
        return probs
    logp = torch.log(probs.clamp_min(1e-30)) / temperature
    logp = logp.masked_fill(probs <= 0, float("-inf"))
    out = torch.softmax(logp, dim=-1)
    return torch.nan_to_num(out, nan=0.0)


def byte_kl(
    byte_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Forward ``KL(teacher || student)`` per byte slot: sum over slots, mean over tokens.

    Parameters
    ----------
    byte_logits : Tensor, shape (P, K, V)
        Student byte logits (``V >= C``).
    teacher_probs : Tensor, shape (P, K, C)
        Teacher next-byte distributions (``C = 257``: 256 bytes + end-of-text); the student's
        extra columns ``C..V-1`` get teacher probability 0.
    mask : BoolTensor, shape (P, K)
    temperature : float, default=1.0

    Examples
    --------
    >>> import torch
    >>> z = torch.zeros(1, 1, 2)
    >>> t = torch.tensor([[[1.0, 0.0]]])
    >>> round(byte_kl(z, t, torch.tensor([[True]])).item(), 4)  # log 2
    0.6931
    """
    v, c = byte_logits.shape[-1], teacher_probs.shape[-1]
    logq = F.log_softmax(byte_logits.float() / temperature, dim=-1)
    p = temper(teacher_probs.float(), temperature)
    if c < v:
        p = F.pad(p, (0, v - c))
    kl = (torch.xlogy(p, p) - p * logq).sum(-1)  # xlogy: 0 log 0 = 0
    return _token_mean(kl, mask.to(kl.dtype)) * temperature**2


def first_byte_index(table: list, n_logits: int) -> torch.Tensor:
    """Column of each token id in a 257-way byte row: its first byte, or 256 (end of text /
    special) for tokens without bytes and for logit slots past the tokenizer's vocabulary.

    Examples
    --------
    >>> first_byte_index([b"a", None, b"bc"], 4).tolist()
    [97, 256, 98, 256]
    """
    idx = torch.full((n_logits,), 256, dtype=torch.long)
    for i, b in enumerate(table[:n_logits]):
        if b:
            idx[i] = b[0]
    return idx


def token_byte_kl(
    logits: torch.Tensor,
    first_byte: torch.Tensor,
    teacher_row: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``KL(teacher next byte || student token head's next-byte marginal)``, mean over rows.

    The student's next-token distribution implies an exact distribution of the next byte: the
    total probability of the tokens that start with each byte. Matching it to the teacher's
    next-byte distribution distils into the token head itself (the one that is scored), not
    only into the byte head through the shared trunk.

    Parameters
    ----------
    logits : Tensor, shape (P, V)
        Student next-token logits at the positions that start a token.
    first_byte : LongTensor, shape (V,)
        See :func:`first_byte_index`.
    teacher_row : Tensor, shape (P, 257)
        Teacher next-byte distributions at those byte offsets.
    mask : BoolTensor, shape (P,)
        Rows to use.
    temperature : float, default=1.0

    Examples
    --------
    >>> import torch
    >>> fb = torch.tensor([0, 0, 1])  # tokens 0 and 1 start with byte 0, token 2 with byte 1
    >>> t = torch.zeros(1, 257); t[0, 0] = 1.0
    >>> z = torch.log(torch.tensor([[0.25, 0.25, 0.5]]))
    >>> round(token_byte_kl(z, fb, t, torch.tensor([True])).item(), 4)  # log 2
    0.6931
    """
    if not bool(mask.any()):
        return logits.sum() * 0.0
    q = torch.softmax(logits[mask].float() / temperature, dim=-1)
    marg = q.new_zeros(q.shape[0], 257).index_add_(1, first_byte.to(q.device), q)
    p = temper(teacher_row[mask].float(), temperature)
    kl = (torch.xlogy(p, p) - torch.xlogy(p, marg.clamp_min(1e-30))).sum(-1)
    return kl.mean() * temperature**2


def bld_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    byte_logits: torch.Tensor,
    gold: torch.Tensor,
    teacher_probs: torch.Tensor | None,
    byte_ce_weight: float = 1.0,
    kl_weight: float = 0.1,
    temperature: float = 1.0,
    token_kl: torch.Tensor | None = None,
    token_kl_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """BLD objective (Eq. 5): ``CE_token + byte_ce_weight * CE_byte + kl_weight * KL_byte``,
    plus ``token_kl_weight * token_kl`` when ``token_kl`` (:func:`token_byte_kl`) is given.

    Returns a dict with ``"loss"`` and its parts ``"token_ce"``, ``"byte_ce"``, ``"kl"`` (and
    ``"token_kl"``).

    Examples
    --------
    >>> import torch
    >>> out = bld_loss(torch.zeros(1, 1, 4), torch.tensor([[0]]), torch.zeros(1, 1, 2),
    ...                torch.tensor([[0]]), torch.tensor([[[0.5, 0.5]]]))
    >>> round(out["loss"].item(), 4)  # log 4 + log 2 + 0.1 * 0
    2.0794
    """
    parts = {"token_ce": token_ce(logits, labels), "byte_ce": byte_ce(byte_logits, gold)}
    if teacher_probs is not None and kl_weight:
        parts["kl"] = byte_kl(byte_logits, teacher_probs, gold != -100, temperature)
    else:
        parts["kl"] = parts["token_ce"].new_zeros(())
    parts["loss"] = parts["token_ce"] + byte_ce_weight * parts["byte_ce"] + kl_weight * parts["kl"]
    if token_kl is not None and token_kl_weight:
        parts["token_kl"] = token_kl
        parts["loss"] = parts["loss"] + token_kl_weight * token_kl
    return parts


def sorted_topk(probs: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` largest probabilities of each row, in decreasing order (zero-padded to ``k``)."""
    k_eff = min(k, probs.shape[-1])
    out = torch.topk(probs, k_eff, dim=-1, sorted=True).values
    if k_eff < k:
        out = F.pad(out, (0, k - k_eff))
    return out


def uld_distance(
    student_logits: torch.Tensor, teacher_sorted: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Universal Logit Distillation (Boizard et al. 2024): sorted-probability L1, mean over rows.

    Both distributions are sorted in decreasing order and compared rank by rank, which needs no
    vocabulary mapping. The teacher side is stored as its ``k`` largest probabilities
    (``teacher_sorted``); the rest of both distributions enters as one "tail" bucket
    (``|tail_s - tail_t|``), a lower bound of the full ULD term that is exact when the tails
    are ranked alike. Positions are aligned by byte offset (where both tokenizers start a
    token), not by index.

    Parameters
    ----------
    student_logits : Tensor, shape (N, V_s)
    teacher_sorted : Tensor, shape (N, k)
        Teacher probabilities sorted in decreasing order (tempered beforehand if wanted).
    temperature : float, default=1.0
        Applied to the student logits.

    Examples
    --------
    >>> import torch
    >>> s = torch.log(torch.tensor([[0.25, 0.75]]))
    >>> round(uld_distance(s, torch.tensor([[1.0, 0.0]])).item(), 4)  # |.75-1| + |.25-0|
    0.5
    """
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    q = torch.softmax(student_logits.float() / temperature, dim=-1)
    k = teacher_sorted.shape[-1]
    qs = sorted_topk(q, k)
    t = teacher_sorted.float()
    tail = ((1.0 - qs.sum(-1)) - (1.0 - t.sum(-1))).abs()
    return ((qs - t).abs().sum(-1) + tail).mean()
