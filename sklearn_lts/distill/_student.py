"""The student: building it from a ``student`` parameter, its special tokens, LoRA adapters."""

from __future__ import annotations

import copy
import os

__all__ = ["PLACEHOLDER", "FRESH_STUDENTS", "build_student", "bos_pad", "add_lora",
           "from_pretrained", "describe"]

#: What a (model, tokenizer) parameter becomes on save/pickle.
PLACEHOLDER = "<unsaved object: "
#: Names of the freshly initialised default students.
FRESH_STUDENTS = ("random-gpt2", "random-sentencepiece")
_DEFAULT_CONFIG = {"n_layer": 4, "n_embd": 256, "n_head": 4}


def from_pretrained(name: str, role: str):
    """``(model, tokenizer)`` from a local path or hub name; refuses a save/pickle placeholder."""
    if name.startswith(PLACEHOLDER):
        raise ValueError(f"{role}={name!r} was dropped on save/pickle; set_params it again")
    path = os.path.expanduser(name)
    if _looks_like_path(name) and not os.path.isdir(path):
        raise FileNotFoundError(
            f"{role}={name!r}: no such folder. Pass a folder written by save_pretrained, or a "
            "Hugging Face model name (downloaded when the hub can be reached, else read from "
            "the local Hugging Face cache)"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sklearn_lts._hub import resolve_model
    from sklearn_lts._models import transformers_progress_bars

    source = resolve_model(name, role)  # a hub name with no hub in reach: fail at once
    with transformers_progress_bars():  # no "Loading weights" bar inside a library call
        return AutoModelForCausalLM.from_pretrained(source), AutoTokenizer.from_pretrained(source)


def _looks_like_path(name: str) -> bool:
    """A filesystem path rather than a hub name (``org/model`` has exactly one slash)."""
    return (
        name.startswith((".", "~", os.sep))
        or name.count("/") > 1
        or os.path.exists(os.path.expanduser(name))
    )


def _check_config(cfg: dict) -> None:
    """Reject student sizes that would only fail deep inside the model."""
    for key in ("n_layer", "n_embd", "n_head", "n_positions"):
        v = cfg.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"student_config[{key!r}] must be a positive int, got {v!r}")
    if cfg["n_embd"] % cfg["n_head"]:
        raise ValueError(
            f"student_config: n_embd={cfg['n_embd']} must be a multiple of n_head={cfg['n_head']}"
        )


def _fresh_gpt2(name: str | None, student_config: dict | None, max_length: int):
    """A randomly initialised GPT-2-architecture model on the named default tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from sklearn_lts._models import gpt2_tokenizer, sentencepiece_tokenizer

    tok = sentencepiece_tokenizer() if name == "random-sentencepiece" else gpt2_tokenizer()
    cfg = dict(_DEFAULT_CONFIG)
    # no dropout: a few hundred steps on a few KB underfit rather than overfit
    cfg.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    cfg.update(student_config or {})
    cfg.setdefault("n_positions", max(1024, max_length + 1))
    _check_config(cfg)
    config = GPT2Config(
        vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **cfg
    )
    return GPT2LMHeadModel(config), tok


def build_student(spec, student_config: dict | None, max_length: int):
    """``(model, tokenizer)`` of a ``student`` parameter, as float32 weights to be trained.

    A ``(model, tokenizer)`` pair is deep-copied (the parameter is never trained in place); a
    ``(config, tokenizer)`` pair is initialised fresh.
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.configuration_utils import PretrainedConfig

    if spec is None or spec in FRESH_STUDENTS:
        model, tok = _fresh_gpt2(spec, student_config, max_length)
    elif isinstance(spec, str):
        model, tok = from_pretrained(spec, "student")
    elif isinstance(spec, tuple) and len(spec) == 2:
        obj, tok = spec
        if isinstance(obj, PretrainedConfig):
            model = AutoModelForCausalLM.from_config(obj)
        else:
            model = copy.deepcopy(obj)
    else:
        raise TypeError("student must be None, a name/path, or a (model|config, tokenizer)")
    model.to(dtype=torch.float32)
    return model, tok


def bos_pad(tok) -> tuple[int, int]:
    """The token that starts every window (BOS, else EOS) and the padding token (else BOS).

    Examples
    --------
    >>> from sklearn_lts.models import gpt2_tokenizer
    >>> bos_pad(gpt2_tokenizer())
    (50256, 50256)
    """
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if bos is None:
        raise ValueError("the tokenizer needs a BOS or EOS token to start each window")
    pad = tok.pad_token_id if tok.pad_token_id is not None else bos
    return int(bos), int(pad)


def add_lora(model, lora: dict):
    """Wrap ``model`` with trainable LoRA adapters (``peft.LoraConfig(**lora)``)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError('lora= needs peft: pip install "sklearn-lts[lora]"') from e
    return get_peft_model(model, LoraConfig(**lora))


def describe(obj) -> str:
    """JSON-able description of a parameter that may hold model objects."""
    if obj is None or isinstance(obj, str):
        return obj
    names = "+".join(type(o).__name__ for o in (obj if isinstance(obj, tuple) else (obj,)))
    return f"{PLACEHOLDER}{names}>"
