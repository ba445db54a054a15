"""Student tokens -> byte offsets, and teacher byte targets gathered per student position.

BLD needs no token alignment between teacher and student: the teacher's targets are indexed by
*byte offset* in the UTF-8 text (row ``i`` = distribution of the next byte after the first ``i``
bytes), so a student position only has to know where its next token starts and how many bytes
it has. Student position ``l - 1`` (after tokens ``t_<l``) sits at byte offset
``|bytes(t_<l)|``; byte slot ``j`` of the next token ``t_l`` reads teacher row
``|bytes(t_<l)| + j``. Token bytes come from the one token -> bytes table,
:func:`~sklearn_lts.distill.token_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sklearn_lts.distill._constants import IGNORE_INDEX
from sklearn_lts.distill._token_bytes import cached_token_bytes

__all__ = ["TokenAlignment", "align_text", "gather_byte_targets"]


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


def align_text(text: str, tokenizer) -> TokenAlignment:
    """Tokenize ``text`` and give every token its byte offset and byte length.

    The token bytes must concatenate to the text's UTF-8 bytes. A leading space that
    SentencePiece adds (its "dummy prefix") is removed from the first token; byte-fallback
    tokens (``<0xE6>``...) split a multi-byte character across tokens and are one byte each.

    Parameters
    ----------
    text : str
    tokenizer : transformers tokenizer

    Returns
    -------
    TokenAlignment

    Raises
    ------
    UnsupportedTokenizerError
        If the tokenizer cannot represent arbitrary bytes (e.g. lower-casing WordPiece).
    ValueError
        If the tokens do not spell the text byte for byte.

    Examples
    --------
    >>> from sklearn_lts.models import gpt2_tokenizer
    >>> a = align_text("né x", gpt2_tokenizer())
    >>> a.starts.tolist(), a.lengths.tolist(), a.n_bytes
    ([0, 1, 3], [1, 2, 2], 5)
    """
    table = cached_token_bytes(tokenizer).token_bytes
    data = text.encode("utf-8")
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    pieces = [(table[i] or b"") if i < len(table) else b"" for i in ids]  # specials: no bytes
    lens = [len(p) for p in pieces]
    joined = b"".join(pieces)
    if joined != data:
        if joined[:1] == b" " and joined[1:] == data and lens:
            lens[0] -= 1  # SentencePiece dummy prefix: the space is not in the text
        else:
            raise ValueError(
                "The tokens do not spell the text byte for byte: "
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
    gold = np.where(
        valid, buf[np.minimum(pos, max(len(data) - 1, 0))].astype(np.int64), IGNORE_INDEX
    )
    rows = None
    if teacher_rows is not None:
        rows = np.asarray(teacher_rows[pos.reshape(-1)], dtype=np.float32).reshape(
            *pos.shape, teacher_rows.shape[1]
        )
        rows[~valid] = 0.0
    return gold, rows
