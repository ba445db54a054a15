"""Byte heads: predict the bytes of the student's next token from its last hidden state.

Both heads map hidden states ``h`` of shape ``(P, d)`` (one row per student position) and the
gold bytes of the next token ``(P, K)`` (teacher forcing; ``-100`` = padding) to byte logits
``(P, K, 260)``: 256 byte values + end-of-text + 3 reserved slots.

- :class:`LinearByteHead` is the paper's head: ``K`` parallel linear projections, one per byte
  position; slot ``j`` sees only ``h`` (it ignores the gold bytes), so it can only learn the
  average of ``P(b_j | b_<j)`` over the prefixes seen in training.
- :class:`TransformerByteHead` is the improvement the authors propose but did not build: a small
  causal transformer over ``[h, b_1, ..., b_{K-1}]``, so slot ``j`` is conditioned on the
  previous bytes of the token. Positions are sinusoidal, so it has no length cap.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sklearn_lts.distill._constants import N_BYTE_SYMBOLS

__all__ = ["LinearByteHead", "TransformerByteHead", "make_byte_head"]


class LinearByteHead(nn.Module):
    """``max_bytes`` parallel linear projections ``d -> 260`` (the BLD paper's byte head).

    Parameters
    ----------
    d_model : int
        Width of the student's hidden state.
    max_bytes : int, default=10
        Number of byte slots (bytes of a token after the 10th are not supervised).
    n_symbols : int, default=260

    Examples
    --------
    >>> import torch
    >>> head = LinearByteHead(8, max_bytes=3)
    >>> head(torch.zeros(5, 8)).shape
    torch.Size([5, 3, 260])
    """

    kind = "linear"

    def __init__(self, d_model: int, max_bytes: int = 10, n_symbols: int = N_BYTE_SYMBOLS):
        super().__init__()
        self.d_model, self.max_bytes, self.n_symbols = int(d_model), int(max_bytes), n_symbols
        self.proj = nn.Linear(self.d_model, self.max_bytes * n_symbols)

    def config(self) -> dict:
        return {"kind": self.kind, "d_model": self.d_model, "max_bytes": self.max_bytes}

    def forward(self, hidden: torch.Tensor, prev_bytes: torch.Tensor | None = None) -> torch.Tensor:
        """Byte logits ``(P, K, 260)``; ``K = max_bytes`` or ``prev_bytes.shape[1]`` if smaller.

        ``prev_bytes`` (the gold bytes) is accepted for a common interface and only sets ``K``.
        """
        out = self.proj(hidden).view(hidden.shape[0], self.max_bytes, self.n_symbols)
        if prev_bytes is not None:
            out = out[:, : min(prev_bytes.shape[1], self.max_bytes)]
        return out


def _sinusoid(n: int, d: int, device=None) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]
    idx = torch.arange(0, d, 2, dtype=torch.float32, device=device)
    div = torch.exp(idx * (-math.log(1e4) / d))
    pe = torch.zeros(n, d, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


class TransformerByteHead(nn.Module):
    """Small autoregressive byte decoder conditioned on the student hidden state.

    Input sequence for one student position: ``x_0 = W h``, ``x_j = E[b_j] + W h`` for the gold
    bytes ``b_1..b_{K-1}`` of the next token, plus sinusoidal positions; a causal
    ``n_layers``-layer transformer reads it and slot ``j`` predicts byte ``b_{j+1}``. At training
    time this is teacher forcing, exactly what the teacher targets are conditioned on.

    Parameters
    ----------
    d_model : int
        Width of the student's hidden state.
    d_byte : int, default=128
        Width of the byte decoder.
    n_layers : int, default=2
    n_heads : int, default=4
    max_bytes : int or None, default=None
        Cap on the byte slots (``None``: every byte of the token).
    n_symbols : int, default=260

    Examples
    --------
    >>> import torch
    >>> head = TransformerByteHead(8, d_byte=16, n_layers=1, n_heads=2)
    >>> gold = torch.tensor([[104, 105, -100], [33, -100, -100]])
    >>> head(torch.zeros(2, 8), gold).shape
    torch.Size([2, 3, 260])
    """

    kind = "transformer"

    def __init__(
        self,
        d_model: int,
        d_byte: int = 128,
        n_layers: int = 2,
        n_heads: int = 4,
        max_bytes: int | None = None,
        n_symbols: int = N_BYTE_SYMBOLS,
    ):
        super().__init__()
        self.d_model, self.d_byte, self.n_layers, self.n_heads = d_model, d_byte, n_layers, n_heads
        self.max_bytes, self.n_symbols = max_bytes, n_symbols
        self.cond = nn.Linear(d_model, d_byte)
        self.embed = nn.Embedding(n_symbols, d_byte)
        layer = nn.TransformerEncoderLayer(
            d_byte, n_heads, dim_feedforward=4 * d_byte, dropout=0.0, batch_first=True,
            norm_first=True,
        )
        self.decoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_byte)
        self.out = nn.Linear(d_byte, n_symbols)

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "d_model": self.d_model,
            "d_byte": self.d_byte,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "max_bytes": self.max_bytes,
        }

    def forward(self, hidden: torch.Tensor, prev_bytes: torch.Tensor | None = None) -> torch.Tensor:
        """Byte logits ``(P, K, 260)`` with ``K = prev_bytes.shape[1]`` (1 if omitted)."""
        p = hidden.shape[0]
        if prev_bytes is None:
            prev_bytes = torch.full((p, 1), -100, dtype=torch.long, device=hidden.device)
        if self.max_bytes is not None:
            prev_bytes = prev_bytes[:, : self.max_bytes]
        k = prev_bytes.shape[1]
        c = self.cond(hidden)[:, None, :]  # (P, 1, d_byte)
        # shift right: slot j reads byte j-1 (slot 0 reads only the hidden state)
        shifted = prev_bytes[:, : k - 1].clamp(min=0)
        x = torch.cat([c, self.embed(shifted) + c], dim=1) + _sinusoid(k, self.d_byte, c.device)
        mask = nn.Transformer.generate_square_subsequent_mask(k, device=c.device)
        y = self.decoder(x, mask=mask, is_causal=True)
        return self.out(self.norm(y))


def make_byte_head(kind: str, d_model: int, max_bytes: int | None, **kwargs) -> nn.Module:
    """Build a byte head by name (``"linear"`` or ``"transformer"``).

    Examples
    --------
    >>> make_byte_head("linear", 16, 4).max_bytes
    4
    """
    if kind == "linear":
        if max_bytes is None:
            raise ValueError("the linear byte head needs a finite max_token_bytes")
        return LinearByteHead(d_model, max_bytes=max_bytes)
    if kind == "transformer":
        return TransformerByteHead(d_model, max_bytes=max_bytes, **kwargs)
    raise ValueError(f"byte_head must be 'linear' or 'transformer', got {kind!r}")
