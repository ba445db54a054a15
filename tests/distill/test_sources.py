"""Training corpora: every kind of source reads the same texts in the same order, shards
partition them, and what is refused is refused with a message that says why."""

from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_lts.distill import TextSource, iter_texts
from sklearn_lts.distill._spool import spool_corpus

TEXTS = ["The cat sat.", "", "café déjà vu", "日本語 🦀\nsecond line", "x" * 300, "last one"]


def write_txt_folder(folder, texts) -> str:
    os.makedirs(folder, exist_ok=True)
    for i, t in enumerate(texts):  # names sort in corpus order; newlines are kept as written
        with open(os.path.join(folder, f"doc{i:04d}.txt"), "w", encoding="utf-8", newline="") as f:
            f.write(t)
    return str(folder)


def write_jsonl(path, texts, key="text") -> str:
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({key: t, "id": i}) + "\n")
            if i == 1:
                f.write("\n")  # blank lines are not documents
    return str(path)


def test_every_source_kind_reads_the_same_texts(tmp_path):
    folder = write_txt_folder(tmp_path / "txt", TEXTS)
    jsonl = write_jsonl(tmp_path / "c.jsonl", TEXTS)
    half = len(TEXTS) // 2
    split = [pathlib.Path(write_jsonl(tmp_path / "a.jsonl", TEXTS[:half])),
             pathlib.Path(write_txt_folder(tmp_path / "rest", TEXTS[half:]))]
    sources = [TEXTS, tuple(TEXTS), (t for t in TEXTS), iter(TEXTS), folder,
               pathlib.Path(folder), jsonl, split, TextSource(TEXTS)]
    for src in sources:
        assert list(iter_texts(src)) == TEXTS, src
    key = write_jsonl(tmp_path / "k.jsonl", TEXTS, key="content")
    assert list(TextSource(key, text_key="content")) == TEXTS


def test_hugging_face_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": TEXTS, "n": list(range(len(TEXTS)))})
    assert list(iter_texts(ds)) == TEXTS
    assert list(iter_texts(ds.to_iterable_dataset())) == TEXTS
    assert list(TextSource(ds, rank=1, world_size=4)) == TEXTS[1::4]
    assert list(TextSource(ds.to_iterable_dataset(), rank=1, world_size=4)) == TEXTS[1::4]
    renamed = ds.rename_column("text", "body")
    assert list(TextSource(renamed, text_key="body")) == TEXTS
    with pytest.raises(ValueError, match="no 'text' column"):
        iter_texts(renamed)
    bad = datasets.Dataset.from_dict({"text": ["a", None, "b"]})
    with pytest.raises(TypeError, match="NoneType at index 1"):
        list(iter_texts(bad))


def test_datasets_is_not_imported_for_other_sources(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "datasets", raising=False)
    assert list(iter_texts(["a", "b"])) == ["a", "b"]
    assert list(iter_texts(write_txt_folder(tmp_path / "f", ["a"]))) == ["a"]
    assert "datasets" not in sys.modules


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), world=st.integers(1, 5), split=st.integers(0, 30))
def test_shards_partition_the_corpus_in_order(tmp_path_factory, n, world, split):
    """Rank r of w holds documents r, r + w, ...; together the shards are the corpus, for
    in-memory and file sources alike (a .jsonl file then .txt files: the index runs on)."""
    texts = [f"doc {i}" for i in range(n)]
    tmp = tmp_path_factory.mktemp("shards")
    k = min(split, n)
    files = [pathlib.Path(write_jsonl(tmp / "a.jsonl", texts[:k]))] if k else []
    if k < n:
        files.append(pathlib.Path(write_txt_folder(tmp / "b", texts[k:])))
    for make in (lambda: texts, lambda: iter(texts), lambda: files):
        shards = [list(TextSource(make(), rank=r, world_size=world)) for r in range(world)]
        assert shards == [texts[r::world] for r in range(world)]
    # a shard of a shard is the shard of the product
    assert list(TextSource(texts).shard(1, 2).shard(1, 2)) == texts[3::4]


def test_sharding_opens_only_its_own_txt_files(tmp_path, monkeypatch):
    folder = write_txt_folder(tmp_path / "txt", TEXTS)
    opened = []
    real_open = open

    def spy(path, *a, **k):
        opened.append(os.path.basename(str(path)))
        return real_open(path, *a, **k)

    import builtins

    monkeypatch.setattr(builtins, "open", spy)
    assert list(TextSource(folder, rank=1, world_size=3)) == TEXTS[1::3]
    assert opened == ["doc0001.txt", "doc0004.txt"]


def test_refusals_say_why(tmp_path):
    with pytest.raises(TypeError, match="list of texts or a folder/file path.*'not a path'"):
        iter_texts("not a path")
    with pytest.raises(TypeError, match="not bytes"):
        iter_texts(b"abc")
    with pytest.raises(TypeError, match="not a dict"):
        iter_texts({"a": 1})
    with pytest.raises(TypeError, match="not a set"):
        iter_texts({"a"})
    with pytest.raises(TypeError, match="not a int"):
        iter_texts(3)
    with pytest.raises(TypeError, match="found int at index 1"):
        list(iter_texts(["a", 3]))
    with pytest.raises(TypeError, match="found bytes at index 4"):  # the global index
        list(TextSource(["a", "b", "c", "d", b"e"], rank=0, world_size=2))
    with pytest.raises(TypeError, match="found NoneType at index 2"):
        list(iter_texts(t for t in ["a", "b", None]))
    with pytest.raises(FileNotFoundError, match="no such file"):
        iter_texts(pathlib.Path(tmp_path / "missing"))
    os.makedirs(tmp_path / "empty")
    (tmp_path / "empty" / "notes.md").write_text("not a corpus file")
    with pytest.raises(ValueError, match="no .txt or .jsonl files"):
        iter_texts(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="rank=2"):
        TextSource(TEXTS, rank=2, world_size=2)


@pytest.mark.parametrize("line, err, match", [
    ('{"txt": "a"}', ValueError, "line 2: no 'text' field"),
    ('{"text": 5}', TypeError, "line 2: the 'text' field is a int"),
    ("not json", ValueError, "line 2: not valid JSON"),
])
def test_bad_jsonl_lines_name_file_and_line(tmp_path, line, err, match):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n")
    with pytest.raises(err, match=match):
        list(iter_texts(str(path)))


def test_empty_corpora_are_refused(tmp_path):
    with pytest.raises(ValueError, match="X is empty"):
        spool_corpus([], str(tmp_path))
    gen = (t for t in TEXTS)
    list(gen)
    with pytest.raises(ValueError, match="read only once"):
        spool_corpus(gen, str(tmp_path))
    with pytest.raises(ValueError, match="shard 1 of 2 got no documents"):
        spool_corpus(TextSource(["only one"], rank=1, world_size=2), str(tmp_path))
    assert os.listdir(tmp_path) == []  # no spool left behind


def test_spool_reads_back_every_text_and_goes_away(tmp_path):
    corpus = spool_corpus((t for t in TEXTS), str(tmp_path))
    assert len(corpus) == len(TEXTS) and corpus.n_bytes == sum(len(t.encode()) for t in TEXTS)
    assert [t for _, chunk in corpus.chunks(4, 10**6) for t in chunk] == TEXTS
    assert [a for a, _ in corpus.chunks(4, 10**6)] == [0, 4]
    # by bytes: the 300-byte text alone, the others together
    assert list(corpus.ranges(10, 100)) == [(0, 4), (4, 5), (5, 6)]
    folder = corpus.spool.folder
    assert os.path.isdir(folder)
    del corpus
    assert not os.path.exists(folder)
