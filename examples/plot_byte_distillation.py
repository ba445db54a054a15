"""
==========================================================
Byte-level distillation across tokenizers: learning curves
==========================================================

:class:`~sklearn_lts.distill._distiller.ByteDistiller` distils a teacher language model into a
student that uses a *different tokenizer*, through bytes: the teacher's next-token distribution
is turned into next-byte distributions, and a small byte head on the student learns to match
them (BLD, Singh et al. 2026). Here we compare, at equal steps and data, the held-out bits per
byte of the student's own token head when trained with

- ``sft``: next-token cross-entropy only (no teacher),
- ``uld``: + Universal Logit Distillation (sorted-probability L1 at aligned positions),
- ``bld`` with the paper's linear byte head and with a small autoregressive transformer head,
- ``bld`` (linear head) plus the token-head byte KL (``token_kl_weight``): the student's own
  next-token distribution, summed over the tokens that start with each byte, is matched to the
  teacher's next byte, so the teacher also reaches the head that is scored.

To keep the documentation build fast and offline this example uses tiny models: the teacher is
a small GPT-2-architecture model briefly trained on the GPT-2 tokenizer, and the student is a
fresh model on a SentencePiece tokenizer. The real setting (SmolLM2-135M teacher) is in
``benchmarks/distill.py``. At this toy scale (a teacher trained for 40 steps, students for
24) the teacher has little to teach and the distillation terms mostly cost steps; the curves
show the mechanics, the benchmark's table shows the gains.
"""

# %%
# Data and models
# ---------------
import matplotlib.pyplot as plt
import torch
from transformers import GPT2Config

from sklearn_lts._models import gpt2_tokenizer, sentencepiece_tokenizer
from sklearn_lts.datasets import load_hamlet
from sklearn_lts.distill import ByteDistiller

torch.set_num_threads(1)
docs = load_hamlet(doc_bytes=300)
train, heldout = docs[:8], docs[60:62]

# A small teacher: trained for a few steps with plain next-token CE on more text.
g = gpt2_tokenizer()
teacher_cfg = GPT2Config(vocab_size=len(g), n_layer=2, n_embd=64, n_head=4,
                         bos_token_id=g.bos_token_id, eos_token_id=g.eos_token_id)
teacher = ByteDistiller(student=(teacher_cfg, g), loss="sft", max_steps=40, batch_size=4,
                        max_length=48, learning_rate=3e-3, random_state=0)
teacher.fit(docs[:30])
teacher_pair = (teacher.student_, teacher.student_tokenizer_)

s = sentencepiece_tokenizer()
student_cfg = GPT2Config(vocab_size=len(s), n_layer=2, n_embd=64, n_head=4,
                         bos_token_id=s.bos_token_id, eos_token_id=s.eos_token_id)

# %%
# Train each method with the same initialisation, data and number of steps
# -------------------------------------------------------------------------
common = dict(teacher=teacher_pair, student=(student_cfg, s), byte_method="boundary",
              max_steps=24, batch_size=4, max_length=48, learning_rate=3e-3,
              random_state=0)
methods = {
    "sft": dict(loss="sft"),
    "uld": dict(loss="uld", kl_weight=1.0),
    "bld, linear head": dict(loss="bld", byte_head="linear", kl_weight=1.0),
    "bld, transformer head": dict(loss="bld", byte_head="transformer", kl_weight=1.0),
    "bld + token-head byte KL": dict(loss="bld", byte_head="linear", kl_weight=1.0,
                                     token_kl_weight=3.0),
}
curves = {}
for name, params in methods.items():
    bd = ByteDistiller(**common, **params).fit(train, eval_X=heldout, eval_every=6)
    curves[name] = bd.eval_curve_
    print(f"{name:>26}: held-out bits/byte {bd.bits_per_byte(heldout):.3f}")
teacher_bpb = teacher.bits_per_byte(heldout)
print(f"{'teacher':>26}: held-out bits/byte {teacher_bpb:.3f}")

# %%
# Learning curves
# ---------------
fig, ax = plt.subplots(figsize=(6, 4))
for name, c in curves.items():
    ax.plot(c[:, 0], c[:, 1], marker="o", label=name)
ax.axhline(teacher_bpb, color="k", linestyle="--", label="teacher")
ax.set_xlabel("optimiser step")
ax.set_ylabel("held-out bits per byte")
ax.set_title("Student (SentencePiece) distilled from a GPT-2-BPE teacher")
ax.legend()
fig.tight_layout()
plt.show()
