"""Adapt a sentence encoder to a labelled support set: LoRA on its top layers, prototype loss.

The encoder below the trained layers stays frozen, so its output is computed once per text and
cached; each training step then runs only the top ``layers`` transformer layers (forward and
backward) over the whole support set, on texts cut to ``max_length`` word pieces (the cost of
a step grows with the tokens; the returned embeddings use the model's full length). The loss
is the episodic prototypical loss with leave-one-out prototypes (:func:`prototype_loss`). The
result is a small LoRA state (:class:`AdaptedState`: safetensors bytes and the settings that
rebuild it), from which :func:`build_adapted_model` makes a merged copy of the base model. The
base model is never modified.
"""

from __future__ import annotations

import copy
import hashlib
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import numpy as np

__all__ = ["AdaptSettings", "AdaptedState", "Adaptation", "adapt_encoder",
           "build_adapted_model", "prototype_loss"]

# LoRA targets in a BERT-style layer: attention projections and both feed-forward matrices.
_BERT_TARGETS = ("query", "key", "value", "dense")


@dataclass(frozen=True)
class AdaptSettings:
    """What trains and for how long (fixed in advance; see ``benchmarks/results``)."""

    layers: int | None = None  # None: every layer
    rank: int = 8
    steps: int = 4
    learning_rate: float = 2e-3
    temperature: float = 0.05
    mix: float = 0.5  # fraction of the weight change kept (WiSE-FT interpolation)
    seed: int = 0
    max_batch: int = 16
    max_length: int | None = 64  # word pieces per text while training; None: max_seq_length


@dataclass(frozen=True)
class AdaptedState:
    """A trained adapter: LoRA tensors as safetensors bytes and the settings that rebuild it."""

    weights: bytes
    settings: dict
    losses: tuple[float, ...]
    seconds: float

    @property
    def digest(self) -> str:
        """Content hash of the weights and settings (keys the per-process model cache)."""
        h = hashlib.sha256(self.weights)
        h.update(repr(sorted(self.settings.items())).encode())
        return h.hexdigest()


class Adaptation(NamedTuple):
    """What :func:`adapt_encoder` returns: the adapter, and the adapted support embeddings."""

    state: AdaptedState
    embeddings: np.ndarray  # (n, d) float32, before any normalisation


def prototype_loss(Z, y, temperature: float):
    """Episodic prototypical loss with leave-one-out prototypes.

    Each row is classified by its squared distances to the class means of the *other* rows
    (its own class's mean leaves it out), with a softmax at ``temperature``; the loss is the mean
    cross-entropy over rows whose class has at least two rows.

    Parameters
    ----------
    Z : torch.Tensor of shape (n, d)
        Embeddings (unit rows in use).
    y : torch.Tensor of shape (n,), int
        Class indices in ``[0, C)``; every class present.
    temperature : float
        Softmax temperature on squared distances.

    Returns
    -------
    torch.Tensor
        Scalar loss (0 when no class has two rows).

    Examples
    --------
    >>> import torch
    >>> Z = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> y = torch.tensor([0, 0, 1, 1])
    >>> float(prototype_loss(Z, y, 0.1)) < 1e-6
    True
    >>> float(prototype_loss(Z, torch.tensor([0, 1, 0, 1]), 0.1)) > 1.0
    True
    """
    import torch

    n_classes = int(y.max()) + 1
    onehot = torch.nn.functional.one_hot(y, n_classes).to(Z.dtype)
    counts = onehot.sum(0)
    sums = onehot.T @ Z
    protos = (sums / counts[:, None]).expand(len(Z), -1, -1).clone()  # (n, C, d)
    own_count = counts[y]
    keep = own_count > 1
    if not bool(keep.any()):
        return Z.sum() * 0.0
    rows = torch.arange(len(Z))
    loo = (sums[y] - Z) / (own_count - 1).clamp(min=1)[:, None]
    protos[rows, y] = loo
    dist = ((Z[:, None, :] - protos) ** 2).sum(-1)
    loss = torch.nn.functional.cross_entropy(-dist / temperature, y, reduction="none")
    return loss[keep].mean()


def _hf_parts(model: Any) -> tuple[Any, Any]:
    """The Hugging Face model inside a sentence-transformers model, and its layer list."""
    auto = getattr(model[0], "auto_model", None)
    layers = getattr(getattr(auto, "encoder", None), "layer", None)
    if auto is None or layers is None or not hasattr(auto, "embeddings"):
        raise NotImplementedError(
            "fine_tune='prototypes' needs a BERT-style encoder (a Hugging Face model with "
            f"`embeddings` and `encoder.layer`); got {type(auto).__name__}."
        )
    return auto, layers


def _peft_model(auto: Any, settings: dict, n_layers: int, seed: int) -> Any:
    """``auto`` with LoRA layers injected (in place), initialised from ``seed``."""
    import torch
    from peft import get_peft_model

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft reads transformers' deprecated `is_gradient_checkpointing` (transformers >= 5)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                category=FutureWarning)
        torch.manual_seed(seed)
        return get_peft_model(auto, _lora_config(settings, n_layers))


def _lora_config(settings: dict, n_layers: int) -> Any:
    from peft import LoraConfig

    first = n_layers - settings["layers"]
    return LoraConfig(
        r=settings["rank"], lora_alpha=2 * settings["rank"], lora_dropout=0.0,
        target_modules=list(_BERT_TARGETS), layers_to_transform=list(range(first, n_layers)),
        layers_pattern="layer", bias="none",
    )


class _CachedInput:
    """Stands in for the embedding layer: returns the frozen states fed to the top layers."""

    def __init__(self) -> None:
        self.states = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.states


@contextmanager
def _only_layers(auto: Any, keep: list) -> Iterator[None]:
    """Run ``auto``'s encoder through the layers ``keep`` only."""
    import torch

    full = auto.encoder.layer
    auto.encoder.layer = torch.nn.ModuleList(keep)
    try:
        yield
    finally:
        auto.encoder.layer = full


@contextmanager
def _top_layers_only(auto: Any, layers: Any, first: int) -> Iterator[_CachedInput]:
    """Run only layers ``first..`` of ``auto``, on states set through the yielded stub."""
    stub = _CachedInput()
    embeddings = auto.embeddings
    # nn.Module.__setattr__ refuses a plain callable in place of a registered submodule.
    object.__setattr__(auto, "embeddings", stub)
    auto._modules.pop("embeddings")
    try:
        with _only_layers(auto, list(layers)[first:]):
            yield stub
    finally:
        object.__delattr__(auto, "embeddings")
        auto.embeddings = embeddings


def _batches(model: Any, texts: list[str], max_batch: int,
             max_length: int | None = None) -> list[dict]:
    """Length-sorted batches (little padding), tokenised once, cut to ``max_length`` word
    pieces when given (``model`` is the adaptation's own copy)."""
    lengths = [len(t) for t in texts]
    order = np.argsort(lengths, kind="stable")
    out = []
    full = model.max_seq_length
    if max_length is not None:
        model.max_seq_length = max_length
    try:
        for start in range(0, len(order), max_batch):
            idx = order[start:start + max_batch]
            chunk = [texts[i] for i in idx]
            # sentence-transformers >= 6 renamed tokenize to preprocess (deprecation warning)
            feats = (model.preprocess(chunk) if hasattr(model, "preprocess")
                     else model.tokenize(chunk))
            feats = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in feats.items()}
            out.append({"index": idx, "features": feats})
    finally:
        model.max_seq_length = full
    return out


def _frozen_inputs(auto: Any, layers: Any, batches: list[dict], first: int) -> None:
    """Store in each batch the states that enter layer ``first`` (no gradient)."""
    import torch

    auto.eval()
    # not inference_mode: the states are inputs of a graph later
    with _only_layers(auto, list(layers)[:first]), torch.no_grad():
        for b in batches:
            feats = {k: v for k, v in b["features"].items()
                     if k in ("input_ids", "attention_mask", "token_type_ids")}
            b["states"] = auto(**feats).last_hidden_state


def _embed_support(model: Any, stub: _CachedInput, batches: list[dict]) -> Any:
    """Sentence embeddings of the support set (rows in input order) from the cached states."""
    import torch

    parts, index = [], []
    for b in batches:
        stub.states = b["states"]
        parts.append(model(dict(b["features"]))["sentence_embedding"])
        index.append(torch.as_tensor(b["index"], device=parts[-1].device))
    return torch.cat(parts)[torch.argsort(torch.cat(index))]


def _train(model: Any, peft_model: Any, stub: _CachedInput, batches: list[dict],
           y: np.ndarray, settings: AdaptSettings) -> list[float]:
    """Full-batch AdamW steps on the adapter of ``peft_model``, then keep ``settings.mix`` of
    the weight change; returns the loss of each step."""
    import torch

    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    target = torch.as_tensor(np.asarray(y), dtype=torch.long, device=model.device)
    losses = []
    # Dropout stays off: deterministic steps, and attention dropout cost a quarter of a step.
    model.eval()
    for _ in range(settings.steps):
        Z = torch.nn.functional.normalize(_embed_support(model, stub, batches), dim=1)
        loss = prototype_loss(Z, target, settings.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        # Interpolate towards the frozen weights: the change is B @ A, linear in B.
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(settings.mix)
    return losses


def adapt_encoder(base: Any, texts: list[str], y: np.ndarray,
                  settings: AdaptSettings) -> Adaptation:
    """Train a LoRA adapter on the top layers of a copy of ``base`` with the prototype loss.

    Parameters
    ----------
    base : SentenceTransformer
        The frozen model; it is deep-copied, never modified.
    texts : list of str
        Support texts (prompt already prepended).
    y : ndarray of int, shape (n,)
        Class index of each text.
    settings : AdaptSettings
        Layers, rank, steps, learning rate, temperature, mix, seed, and the word pieces per
        text while training (``max_length``).

    Returns
    -------
    Adaptation
        The adapter and the support set's embeddings through it, which equal
        those of :func:`build_adapted_model`'s model up to float rounding.
    """
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save

    t0 = time.perf_counter()
    n_layers = len(_hf_parts(base)[1])  # checked on the base, before copying it
    if settings.layers is None:  # stored resolved, so the state rebuilds on any model depth
        settings = replace(settings, layers=n_layers)
    if not 1 <= settings.layers <= n_layers:
        raise ValueError(f"fine_tune_layers must be in [1, {n_layers}], got {settings.layers}.")
    model = copy.deepcopy(base)
    auto, layers = _hf_parts(model)
    first = len(layers) - settings.layers
    batches = _batches(model, texts, settings.max_batch)  # whole texts: the embeddings
    _frozen_inputs(auto, layers, batches, first)
    train = batches
    longest = max(b["features"]["input_ids"].shape[1] for b in batches)
    if settings.max_length is not None and longest > settings.max_length:
        train = _batches(model, texts, settings.max_batch, settings.max_length)
        _frozen_inputs(auto, layers, train, first)
    sdict = asdict(settings)
    peft_model = _peft_model(auto, sdict, len(layers), settings.seed)
    with _top_layers_only(auto, layers, first) as stub:
        losses = _train(model, peft_model, stub, train, y, settings)
    with _top_layers_only(auto, layers, first) as stub, torch.no_grad():
        Z = _embed_support(model, stub, batches).float().cpu().numpy()
    state = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(peft_model).items()}
    return Adaptation(AdaptedState(save(state), sdict, tuple(losses), time.perf_counter() - t0), Z)


def build_adapted_model(base: Any, state: AdaptedState) -> Any:
    """A copy of ``base`` with the adapter of ``state`` merged into its weights."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load

    model = copy.deepcopy(base)
    auto, layers = _hf_parts(model)
    peft_model = _peft_model(auto, state.settings, len(layers), 0)  # weights loaded below
    set_peft_model_state_dict(peft_model, load(state.weights))
    model[0].auto_model = peft_model.merge_and_unload()
    model.eval()
    return model
