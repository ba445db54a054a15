"""ByteDistiller.fit on streamed corpora: every source of the same texts trains the same
student, the documents read back from disk equal the in-memory ones, and bad corpora are
refused before the teacher is loaded."""

from __future__ import annotations

import gc
import os
import pathlib

import numpy as np
import pytest
import torch
from transformers import GPT2Config

from sklearn_lts._models import gpt2_tokenizer, sentencepiece_tokenizer
from sklearn_lts.distill import ByteDistiller, ByteLevelLM, ByteTargetCache, TextSource
from sklearn_lts.distill._document import make_documents
from sklearn_lts.distill._lazy_documents import Documents, build_documents, spool_corpus
from sklearn_lts.distill._lazy_rows import CacheReader, RowsOnDemand
from sklearn_lts.distill._teacher import teacher_uld
from tests.distill.test_sources import write_jsonl, write_txt_folder

TEXTS = [
    "The quick brown fox. Naïve café, déjà vu.",
    "To be, or not to be, that is the question.",
    "",
    "Bytes: 日本語 and emoji 🦀 in one.",
    "Hamlet, Prince of Denmark. Enter two Clowns.",
    "To be, or not to be, that is the question.",
]


@pytest.fixture(scope="module")
def teacher(tiny_model, tiny_tokenizer):
    return tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def student_spec():
    tok = sentencepiece_tokenizer()
    return GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=16, n_head=2), tok


def _bd(teacher, student_spec, cache, **kw):
    params = dict(teacher=teacher, student=student_spec, max_steps=3, batch_size=3,
                  max_length=16, random_state=0, device="cpu", cache_dir=str(cache),
                  byte_method="boundary", token_kl_weight=1.0)
    return ByteDistiller(**{**params, **kw})


def _losses(bd) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "time"} for h in bd.history_]


def _weights(bd) -> dict:
    out = {f"student.{k}": v for k, v in bd.student_.state_dict().items()}
    if bd.byte_head_ is not None:
        out.update({f"head.{k}": v for k, v in bd.byte_head_.state_dict().items()})
    return out


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.parametrize("loss", ["bld", "uld"])
def test_generator_folder_jsonl_and_list_give_the_same_student(
    teacher, student_spec, tmp_path, loss
):
    datasets = pytest.importorskip("datasets")
    folder = write_txt_folder(tmp_path / "txt", TEXTS)
    sources = {
        "generator": lambda: (t for t in TEXTS),
        "folder": lambda: folder,
        "jsonl": lambda: write_jsonl(tmp_path / "c.jsonl", TEXTS),
        "paths": lambda: [pathlib.Path(folder, f) for f in sorted(os.listdir(folder))],
        "dataset": lambda: datasets.Dataset.from_dict({"text": TEXTS}),
        "iterable dataset": lambda: datasets.Dataset.from_dict({"text": TEXTS})
        .to_iterable_dataset(),
    }
    ref = _bd(teacher, student_spec, tmp_path / "cache", loss=loss, kl_weight=1.0).fit(TEXTS)
    for name, make in sources.items():
        bd = _bd(teacher, student_spec, tmp_path / "cache", loss=loss, kl_weight=1.0)
        bd.fit(make())
        assert _losses(bd) == _losses(ref), name
        _assert_same_weights(bd, ref)
        assert bd.n_train_bytes_ == sum(len(t.encode()) for t in TEXTS)
    # the order of the documents matters, so the equalities above could fail
    other = _bd(teacher, student_spec, tmp_path / "cache", loss=loss, kl_weight=1.0)
    assert _losses(other.fit(TEXTS[::-1])) != _losses(ref)


def test_fit_on_a_shard_trains_on_that_shard_only(teacher, student_spec, tmp_path):
    a = _bd(teacher, student_spec, tmp_path).fit(TextSource(TEXTS, rank=1, world_size=2))
    b = _bd(teacher, student_spec, tmp_path).fit(TEXTS[1::2])
    _assert_same_weights(a, b)
    assert a.n_train_bytes_ == sum(len(t.encode()) for t in TEXTS[1::2])


def test_spool_is_removed_after_fit(teacher, student_spec, tmp_path):
    _bd(teacher, student_spec, tmp_path, loss="sft").fit(t for t in TEXTS)
    gc.collect()
    assert os.listdir(tmp_path / "spool") == []


@pytest.mark.parametrize("X, err, match", [
    ("no such file, a text", TypeError, "list of texts or a folder/file path"),
    ({"a": "b"}, TypeError, "not a dict"),
    ({"a"}, TypeError, "not a set"),
    ([], ValueError, "X is empty"),
    (["a", "b", 7], TypeError, "found int at index 2"),
])
def test_bad_corpora_are_refused_before_the_teacher_loads(student_spec, tmp_path, X, err, match):
    bd = _bd("/nonexistent/teacher", student_spec, tmp_path)  # loading it would fail
    with pytest.raises(err, match=match):
        bd.fit(X)


def test_an_exhausted_generator_is_refused(student_spec, tmp_path):
    gen = (t for t in TEXTS)
    list(gen)
    with pytest.raises(ValueError, match="read only once"):
        _bd("/nonexistent/teacher", student_spec, tmp_path).fit(gen)


@pytest.fixture(scope="module")
def eager_and_lazy(teacher, student_spec, tmp_path_factory):
    """The same documents built in memory (make_documents) and streamed (build_documents)."""
    model, ttok = teacher
    tok = student_spec[1]
    tmp = tmp_path_factory.mktemp("docs")
    cache = ByteTargetCache(str(tmp / "targets"), ByteLevelLM(model, ttok, method="boundary"))

    def uld(texts):
        return teacher_uld(model, ttok, texts, 1.0, 8)

    cache.precompute(TEXTS, progress=False)
    corpus = spool_corpus(iter(TEXTS), str(tmp / "spool"))
    rows = RowsOnDemand(CacheReader(cache), corpus)  # what fit hands over: fetched when read
    lazy = build_documents(corpus, tok, rows, uld)
    eager = make_documents(TEXTS, tok, cache.get_many(TEXTS), uld(TEXTS))
    return eager, lazy


def _assert_same_document(e, d):
    assert d.data == e.data
    for f in ("ids", "starts", "lengths"):
        got, want = getattr(d.align, f), getattr(e.align, f)
        assert got.dtype == want.dtype and np.array_equal(got, want), f
    assert d.align.n_bytes == e.align.n_bytes
    assert np.array_equal(np.asarray(d.teacher_rows), e.teacher_rows)
    assert d.uld_offsets == e.uld_offsets
    assert d.uld_sorted.dtype == e.uld_sorted.dtype
    assert np.array_equal(d.uld_sorted, e.uld_sorted)


def test_lazy_documents_equal_the_eager_ones(eager_and_lazy):
    eager, lazy = eager_and_lazy
    assert len(lazy) == len(eager) and lazy.n_bytes == sum(len(d.data) for d in eager)
    assert lazy.n_tokens.tolist() == [len(d.align.ids) for d in eager]
    for e, d in zip(eager, lazy, strict=True):  # __iter__: chunked reads
        _assert_same_document(e, d)
    for i in [3, 0, -1, 2, 3]:  # __getitem__, in any order, negative indices too
        _assert_same_document(eager[i], lazy[i])
    assert [d.data for d in lazy[1:4]] == [d.data for d in eager[1:4]]
    with pytest.raises(IndexError):
        lazy[len(TEXTS)]


def test_only_a_few_documents_stay_in_memory(eager_and_lazy):
    eager, full = eager_and_lazy
    lazy = Documents(full.corpus, full.token_offsets, full.rows, full.uld, max_cached=2)
    for i in [0, 1, 3, 4, 0, 5]:
        _assert_same_document(eager[i], lazy[i])
        assert len(lazy._recent) <= 2
    assert lazy[5] is lazy[5]  # the most recent ones are reused, not read again


def _traced_peak(n_docs: int, tok, folder) -> tuple[int, int]:
    """(corpus bytes, tracemalloc peak) of spooling a generator of ``n_docs`` texts, building
    their documents and reading every one back."""
    import tracemalloc

    texts = (f"{i} " + "the cat sat on the mat. " * 40 for i in range(n_docs))  # ~1 KB each
    tracemalloc.start()
    try:
        corpus = spool_corpus(texts, str(folder))
        docs = build_documents(corpus, tok)
        assert sum(len(d.align.ids) for d in docs) == int(docs.n_tokens.sum()) > 200 * n_docs
        return corpus.n_bytes, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_corpus(tmp_path, monkeypatch):
    """Python and NumPy allocations (tracemalloc) peak at the same level for a corpus 10x
    larger: chunks of the pass and of the reads are bounded, and the index is 8 bytes per
    document and stream."""
    from sklearn_lts.distill import _lazy_documents

    monkeypatch.setattr(_lazy_documents, "_CHUNK_BYTES", 20_000)  # so that 10x is quick
    tok = gpt2_tokenizer()
    _traced_peak(10, tok, tmp_path)  # warm up: the tokenizer's byte table is built once
    small, peak_small = _traced_peak(100, tok, tmp_path)
    large, peak_large = _traced_peak(1000, tok, tmp_path)
    assert large > 9.5 * small
    assert peak_large < 1.3 * peak_small + 50_000, (peak_small, peak_large)
    assert peak_large < large / 2
