"""Weights in and out of a ByteDistiller: safetensors bytes for pickling, a folder for save/load.

Nothing here pickles a tensor or reads a pickle: weights travel as safetensors (bytes inside a
pickled estimator, files in a saved folder), configurations as JSON.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os

from sklearn_lts.distill._heads import make_byte_head

__all__ = ["pack_module", "unpack_student", "unpack_head", "head_from_config", "save_folder",
           "read_folder"]

FORMAT = "sklearn_lts.ByteDistiller/1"


def _cpu_state(module) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _untie(sd: dict) -> tuple[dict, dict]:
    """State dict without tied copies (safetensors stores shared storage once), and the ties."""
    seen: dict = {}
    out, ties = {}, {}
    for k, v in sd.items():
        ptr = (v.data_ptr(), tuple(v.shape))
        if ptr in seen:
            ties[k] = seen[ptr]  # e.g. lm_head = wte; restored by tie_weights()
            continue
        seen[ptr] = k
        out[k] = v
    return out, ties


def pack_module(module, config: dict) -> dict:
    """``{"config", "weights", "ties"}``: a module as JSON-able config + safetensors bytes."""
    from safetensors.torch import save

    sd, ties = _untie(_cpu_state(module))
    return {"config": config, "weights": save(sd), "ties": ties}


def _load_strict(module, sd: dict, ties: dict, what: str) -> None:
    """Load ``sd``; only the tied copies may be missing (never a half-random model)."""
    result = module.load_state_dict(sd, strict=False)
    missing = set(result.missing_keys) - set(ties)
    if missing or result.unexpected_keys:
        raise ValueError(
            f"the stored {what} weights do not match its configuration: missing "
            f"{sorted(missing)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]}"
        )


def unpack_student(packed: dict):
    """The student model of :func:`pack_module`, in eval mode."""
    from safetensors.torch import load
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(packed["config"])
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    _load_strict(model, load(packed["weights"]), packed.get("ties", {}), "student")
    model.tie_weights()
    return model.eval()


def head_from_config(cfg: dict):
    """A fresh byte head of the kind and sizes in ``cfg`` (``head.config()``)."""
    cfg = dict(cfg)
    return make_byte_head(cfg.pop("kind"), cfg.pop("d_model"), cfg.pop("max_bytes"), **cfg)


def unpack_head(packed: dict):
    """The byte head of :func:`pack_module`, in eval mode."""
    from safetensors.torch import load

    head = head_from_config(packed["config"])
    _load_strict(head, load(packed["weights"]), {}, "byte head")
    return head.eval()


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _weight_files(path: str) -> list[str]:
    """Weight files of a saved folder, relative to it, in a stable order."""
    out = [os.path.join("student", f) for f in sorted(os.listdir(os.path.join(path, "student")))
           if f.endswith(".safetensors")]
    if os.path.exists(os.path.join(path, "byte_head.safetensors")):
        out.append("byte_head.safetensors")
    return out


def save_folder(path: str, student, tokenizer, head, meta: dict) -> None:
    """Write ``student/`` (``save_pretrained``), ``byte_head.safetensors`` and ``distiller.json``.

    The JSON records the SHA-256 of every weight file, checked by :func:`read_folder`.
    """
    from safetensors.torch import save_file

    os.makedirs(path, exist_ok=True)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # batched generation needs a pad token; the copy leaves the caller's tokenizer alone
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.pad_token = tokenizer.eos_token
    student.config.pad_token_id = tokenizer.pad_token_id
    student.save_pretrained(os.path.join(path, "student"), safe_serialization=True)
    tokenizer.save_pretrained(os.path.join(path, "student"))
    if head is not None:
        save_file(_cpu_state(head), os.path.join(path, "byte_head.safetensors"))
    meta = dict(meta, format=FORMAT, byte_head=None if head is None else head.config())
    meta["sha256"] = {f: _sha256(os.path.join(path, f)) for f in _weight_files(path)}
    with open(os.path.join(path, "distiller.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)


def read_folder(path: str, device: str):
    """``(meta, student, tokenizer, head)`` from a folder of :func:`save_folder`, checked.

    Only safetensors weights are read (never a pickle), and each must match its recorded
    SHA-256: a damaged or swapped file is refused instead of scoring NaN.
    """
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with open(os.path.join(path, "distiller.json"), encoding="utf-8") as f:
        meta = json.load(f)
    for rel, digest in meta.get("sha256", {}).items():
        if _sha256(os.path.join(path, rel)) != digest:
            raise ValueError(f"{os.path.join(path, rel)} does not match its recorded checksum")
    sdir = os.path.join(path, "student")
    tok = AutoTokenizer.from_pretrained(sdir)
    from sklearn_lts._models import transformers_progress_bars

    with transformers_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(sdir, use_safetensors=True)
    head = None
    if meta["byte_head"] is not None:
        head = head_from_config(meta["byte_head"])
        _load_strict(head, load_file(os.path.join(path, "byte_head.safetensors")), {}, "head")
        head.to(device).eval()
    return meta, model.to(device).eval(), tok, head
