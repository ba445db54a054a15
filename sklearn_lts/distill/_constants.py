"""Sizes and sentinel values shared by the byte-level side of the distillation half.

A teacher *byte row* is a distribution over the 256 byte values plus one end-of-text column;
the student's byte head predicts a slightly wider alphabet (the paper's "260-way byte
vocabulary"), whose first :data:`ROW_WIDTH` columns line up with the teacher row.
"""

from __future__ import annotations

__all__ = ["N_BYTES", "EOT", "ROW_WIDTH", "N_BYTE_SYMBOLS", "IGNORE_INDEX"]

#: Number of byte values.
N_BYTES = 256
#: Column of the end-of-text symbol in a byte row (right after the 256 bytes).
EOT = N_BYTES
#: Width of a teacher byte row: 256 bytes + end-of-text.
ROW_WIDTH = EOT + 1
#: Size of the student byte vocabulary: 256 bytes + end-of-text + 3 reserved slots
#: (end-of-token, padding, spare).
N_BYTE_SYMBOLS = 260
#: Label that ``torch.nn.functional.cross_entropy`` skips (padding and past-the-token slots).
IGNORE_INDEX = -100
