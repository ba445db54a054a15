"""Student tokens -> byte offsets, and teacher byte targets gathered per student position.

BLD needs no token alignment between teacher and student: the teacher's targets are indexed by
*byte offset* in the UTF-8 text (row ``i`` = distribution of the next byte after the first ``i``
bytes), so a student position only has to know where its next token starts and how many bytes
it has. Student position ``l - 1`` (after tokens ``t_<l``) sits at byte offset
``|bytes(t_<l)|``; byte slot ``j`` of the next token ``t_l`` reads teacher row
``|bytes(t_<l)| + j``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from sklearn_lts.distill._token_bytes import _BYTE_DECODER

__all__ = [
    "N_BYTE_SYMBOLS",
    "EOT",
    "TokenAlignment",
    "token_bytes_table",
    "align_text",
    "gather_byte_targets",
]

#: Size of the student byte vocabulary: 256 byte values + end-of-text (256) + 3 reserved slots
#: (257 end-of-token, 258 padding, 259 spare), the paper's "260-way byte vocabulary".
N_BYTE_SYMBOLS = 260
#: Index of the end-of-text symbol, the same column as in the teacher targets (n + 1, 257).
EOT = 256

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's printable-character -> byte table (shared with the teacher-side mapping)."""
    return _BYTE_DECODER


def _own_token_bytes_table(tokenizer) -> list[bytes]:
    """Token id -> bytes for byte-level BPE and SentencePiece tokenizers (special tokens -> b"")."""
    n = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    dec = _gpt2_byte_decoder()
    # byte-level BPE if (almost) every piece is spelt in the bytes_to_unicode alphabet
    normal = [p for i, p in enumerate(pieces) if i not in special and p]
    byte_level = sum(all(c in dec for c in p) for p in normal) > 0.99 * max(len(normal), 1)
    table: list[bytes] = []
    for i, p in enumerate(pieces):
        if i in special or p is None:
            table.append(b"")
        elif byte_level:
            table.append(bytes(dec[c] for c in p) if all(c in dec for c in p) else p.encode())
        else:
            m = _BYTE_FALLBACK.match(p)
            if m:
                table.append(bytes([int(m.group(1), 16)]))
            elif p.startswith("<") and p.endswith(">") and len(p) > 2 and i < 3:
                table.append(b"")  # <unk>, <s>, </s> when not flagged as special
            else:
                table.append(p.replace("\u2581", " ").encode("utf-8"))
    return table


def token_bytes_table(tokenizer) -> list[bytes]:
    """Bytes of every token id of ``tokenizer`` (special tokens map to ``b""``).

    Uses ``sklearn_lts.distill._token_bytes`` (the teacher side's mapping) when it is available,
    else a local implementation for byte-level BPE (GPT-2 style ``Ġ`` alphabet) and SentencePiece
    (``▁`` = space, ``<0xNN>`` byte-fallback pieces). The table is cached on the tokenizer.

    Parameters
    ----------
    tokenizer : transformers tokenizer

    Returns
    -------
    table : list of bytes, length ``len(tokenizer)``

    Examples
    --------
    >>> from sklearn_lts._models import gpt2_tokenizer
    >>> tok = gpt2_tokenizer()
    >>> table = token_bytes_table(tok)
    >>> [table[i] for i in tok("Hé!")["input_ids"]]
    [b'H', b'\\xc3\\xa9', b'!']
    """
    cached = getattr(tokenizer, "_sklearn_lts_token_bytes", None)
    if cached is not None and len(cached) == len(tokenizer):
        return cached
    table = None
    try:  # the shared mapping of the teacher side, when present
        from sklearn_lts.distill import _token_bytes as tb  # type: ignore[attr-defined]

        fn = getattr(tb, "token_bytes_table", None) or getattr(tb, "token_bytes", None)
        if fn is not None:
            out = fn(tokenizer)
            table = [bytes(b) if b is not None else b"" for b in out]
    except Exception:  # noqa: BLE001 - any failure there falls back to the local mapping
        table = None
    if table is None or len(table) != len(tokenizer):
        table = _own_token_bytes_table(tokenizer)
    try:
        tokenizer._sklearn_lts_token_bytes = table
    except AttributeError:  # pragma: no cover - exotic tokenizer objects
        pass
    return table


@dataclass
class TokenAlignment:
    """A text tokenized by one tokenizer, with each token's place in the UTF-8 bytes.

    Attributes
    ----------
    ids : ndarray of int64, shape (L,)
        Token ids (no special tokens).
    starts : ndarray of int64, shape (L,)
        Byte offset of the first byte of each token in ``text.encode("utf-8")``.
    lengths : ndarray of int64, shape (L,)
        Number of text bytes of each token (0 for a token that only holds the SentencePiece
        dummy-prefix space).
    n_bytes : int
        Length of the UTF-8 text.
    """

    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    n_bytes: int


def align_text(text: str, tokenizer, table: list[bytes] | None = None) -> TokenAlignment:
    """Tokenize ``text`` and give every token its byte offset and byte length.

    The token bytes must concatenate to the text's UTF-8 bytes. A leading space that
    SentencePiece adds (its "dummy prefix") is removed from the first token; byte-fallback
    tokens (``<0xE6>``...) split a multi-byte character across tokens and are one byte each.

    Parameters
    ----------
    text : str
    tokenizer : transformers tokenizer
    table : list of bytes, optional
        Output of :func:`token_bytes_table` (computed if omitted).

    Returns
    -------
    TokenAlignment

    Raises
    ------
    ValueError
        If the tokens do not spell the text (e.g. a normalising tokenizer).

    Examples
    --------
    >>> from sklearn_lts._models import gpt2_tokenizer
    >>> a = align_text("né x", gpt2_tokenizer())
    >>> a.starts.tolist(), a.lengths.tolist(), a.n_bytes
    ([0, 1, 3], [1, 2, 2], 5)
    """
    if table is None:
        table = token_bytes_table(tokenizer)
    data = text.encode("utf-8")
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    lens = [len(table[i]) for i in ids]
    joined = b"".join(table[i] for i in ids)
    if joined != data:
        if joined[:1] == b" " and joined[1:] == data and lens:
            lens[0] -= 1  # SentencePiece dummy prefix: the space is not in the text
        else:
            raise ValueError(
                "The tokens do not spell the text byte for byte (normalising tokenizer?): "
                f"{joined[:60]!r} vs {data[:60]!r}"
            )
    lengths = np.asarray(lens, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if lens else lengths
    return TokenAlignment(np.asarray(ids, dtype=np.int64), starts, lengths, len(data))


def gather_byte_targets(
    data: bytes,
    starts: np.ndarray,
    lengths: np.ndarray,
    max_bytes: int | None,
    teacher_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gold bytes and teacher next-byte rows for each predicted token, slot by slot.

    Parameters
    ----------
    data : bytes
        The UTF-8 text.
    starts, lengths : ndarray of int, shape (P,)
        Byte offset and byte length of each predicted student token.
    max_bytes : int or None
        Number of byte slots ``K`` per token; ``None``: the longest token (every byte).
    teacher_rows : ndarray, shape (n_bytes + 1, 257), optional
        Teacher targets of the whole text (row ``i`` = next byte after ``i`` bytes).

    Returns
    -------
    gold : ndarray of int64, shape (P, K)
        ``data[start + j]``, or ``-100`` where slot ``j`` is past the token's end.
    rows : ndarray of float32, shape (P, K, 257), or None
        ``teacher_rows[start + j]`` (zeros where ``gold`` is ``-100``).

    Examples
    --------
    >>> gold, rows = gather_byte_targets(b"ab c", [0, 2], [2, 2], max_bytes=3)
    >>> gold.tolist()
    [[97, 98, -100], [32, 99, -100]]
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if max_bytes is None:
        max_bytes = int(lengths.max()) if lengths.size else 1
    max_bytes = max(int(max_bytes), 1)
    j = np.arange(max_bytes)
    valid = j[None, :] < lengths[:, None]
    pos = np.where(valid, starts[:, None] + j[None, :], 0)
    buf = np.frombuffer(data, dtype=np.uint8) if len(data) else np.zeros(1, np.uint8)
    gold = np.where(valid, buf[np.minimum(pos, max(len(data) - 1, 0))].astype(np.int64), -100)
    rows = None
    if teacher_rows is not None:
        rows = np.asarray(teacher_rows[pos.reshape(-1)], dtype=np.float32).reshape(
            *pos.shape, teacher_rows.shape[1]
        )
        rows[~valid] = 0.0
    return gold, rows
