"""Student tokens -> byte offsets, and teacher rows gathered per position and byte slot."""

import numpy as np
import pytest

from sklearn_lts._models import gpt2_tokenizer, sentencepiece_tokenizer
from sklearn_lts.distill import token_bytes_table
from sklearn_lts.distill._align import align_text, gather_byte_targets

TEXTS = [
    "Héllo wörld, naïve café.",
    "日本語のテキスト and English",
    "emoji 🦀🎉 crab\n\n  two  spaces\ttab",
    "Ω≈ç√∫˜µ≤≥÷ æœ",
    "a",
]


@pytest.fixture(scope="module", params=["gpt2", "spm"])
def tok(request):
    return gpt2_tokenizer() if request.param == "gpt2" else sentencepiece_tokenizer()


@pytest.mark.parametrize("text", TEXTS)
def test_offsets_cover_the_text_bytes(tok, text):
    a = align_text(text, tok)
    data = text.encode("utf-8")
    assert a.n_bytes == len(data)
    assert a.lengths.sum() == len(data)
    # contiguous, starting at 0
    np.testing.assert_array_equal(a.starts, np.concatenate([[0], np.cumsum(a.lengths)[:-1]]))
    table = token_bytes_table(tok)
    for k, (tid, st, ln) in enumerate(zip(a.ids, a.starts, a.lengths, strict=True)):
        piece = table[tid]
        if k == 0 and len(piece) == ln + 1:  # SentencePiece dummy-prefix space
            assert piece[:1] == b" "
            piece = piece[1:]
        assert data[st : st + ln] == piece


def test_multibyte_characters_split_inside_tokens():
    # GPT-2 byte-level BPE splits 日 (3 bytes) into tokens that end mid-character
    tok = gpt2_tokenizer()
    a = align_text("日本", tok)
    ends = set((a.starts + a.lengths).tolist())
    assert len(a.ids) >= 3 and not ends <= {0, 3, 6}
    assert a.lengths.sum() == 6


def test_sentencepiece_byte_fallback_and_dummy_prefix():
    tok = sentencepiece_tokenizer()
    a = align_text("🦀", tok)  # not in the vocabulary: 4 <0xNN> byte tokens after "▁"
    pieces = tok.convert_ids_to_tokens(a.ids.tolist())
    assert [p for p in pieces if p.startswith("<0x")] == ["<0xF0>", "<0x9F>", "<0xA6>", "<0x80>"]
    assert a.lengths.tolist()[-4:] == [1, 1, 1, 1]
    assert a.starts.tolist()[-4:] == [0, 1, 2, 3]
    b = align_text("Hi", tok)
    assert b.starts.tolist() == [0] and b.lengths.tolist() == [2]  # "▁Hi" -> "Hi"


def test_gather_picks_teacher_row_at_start_plus_slot():
    text = "ab日c"
    data = text.encode("utf-8")
    n = len(data)
    rows = np.zeros((n + 1, 257), np.float32)
    rows[np.arange(n), np.frombuffer(data, np.uint8)] = 1.0  # one-hot of the true next byte
    rows[n, 256] = 1.0
    tok = gpt2_tokenizer()
    a = align_text(text, tok)
    gold, got = gather_byte_targets(data, a.starts, a.lengths, None, rows)
    assert gold.shape == got.shape[:2] == (len(a.ids), a.lengths.max())
    valid = gold != -100
    assert valid.sum() == n
    np.testing.assert_array_equal(got[valid].argmax(-1), gold[valid])
    assert np.all(got[~valid] == 0)
    # row index = byte offset: slot j of token k reads row starts[k] + j
    for k in range(len(a.ids)):
        for j in range(a.lengths[k]):
            np.testing.assert_array_equal(got[k, j], rows[a.starts[k] + j])


def test_gather_caps_slots():
    gold, rows = gather_byte_targets(b"abcdef", [0, 4], [4, 2], max_bytes=3,
                                     teacher_rows=np.eye(7, 257, dtype=np.float32))
    assert gold.tolist() == [[97, 98, 99], [101, 102, -100]]
    assert rows[0, 2].argmax() == 2 and rows[1, 1].argmax() == 5 and rows[1, 2].sum() == 0


def test_wordpiece_student_gets_the_unsupported_tokenizer_reason():
    from transformers import AutoTokenizer

    from sklearn_lts._models import minilm_path
    from sklearn_lts.distill import UnsupportedTokenizerError

    tok = AutoTokenizer.from_pretrained(minilm_path())  # lower-casing WordPiece
    before = dict(vars(tok))
    with pytest.raises(UnsupportedTokenizerError, match="lower-casing"):
        align_text("Hello World", tok)
    assert vars(tok).keys() == before.keys()  # nothing written onto the user's tokenizer


def test_alignment_writes_nothing_onto_the_tokenizer(tok):
    before = set(vars(tok))
    align_text("Héllo", tok)
    assert set(vars(tok)) == before
