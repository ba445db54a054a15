"""
==================================================================
Byte-level distillation across tokenizers: BLD against SFT and ULD
==================================================================

:class:`~sklearn_lts.ByteDistiller` distils a teacher language model into a student that uses
a *different tokenizer*, through bytes: the teacher's next-token distribution is turned into
next-byte distributions, and a small byte head on the student learns to match them (BLD, Singh
et al. 2026). Here the teacher is the real offline one, SmolLM2-135M (byte-level BPE, 49,152
tokens), and the students are fresh 2-layer models on two other tokenizers: GPT-2's BPE and a
Llama-style SentencePiece. At equal steps and data we compare the held-out bits per byte of the
student's own token head (the one that generates text) when trained with

- ``loss="sft"``: next-token cross-entropy only, no teacher;
- ``loss="uld"``: plus Universal Logit Distillation at aligned positions;
- ``loss="bld"`` as in the paper (linear byte head, ``kl_weight=0.1``), and with
  ``kl_weight=1.0``;
- ``loss="bld"`` with ``kl_weight=1.0`` plus the token-head byte KL (``token_kl_weight``): the
  student's own next-token distribution, summed over the tokens that start with each byte, is
  matched to the teacher's next byte, so the teacher also reaches the head that is scored. Its
  weight was chosen per student on a separate validation split.

Training these twelve students takes several minutes on two CPU cores, too long for building
these pages, so the numbers below are read from ``benchmarks/results/distill.json``, written by
``benchmarks/distill.py`` (the command is in ``benchmarks/results/distill.md``). The last
section fits one student for a few steps, to show the calls.
"""

# %%
# The configurations
# ------------------
# The same student size, data, steps and seed for every objective; only the loss changes.
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from sklearn_lts import ByteDistiller
from sklearn_lts.datasets import load_hamlet

# benchmarks/results of the repository, run from its examples folder or from its root
RESULTS = next(folder / "benchmarks" / "results" for folder in (Path.cwd(), Path.cwd().parent)
               if (folder / "benchmarks" / "results" / "distill.json").is_file())
bench = json.loads((RESULTS / "distill.json").read_text())
validation = json.loads((RESULTS / "distill_validation.json").read_text())
cfg = bench["config"]
STUDENTS = {"random-gpt2": "GPT-2 BPE student", "random-sentencepiece": "SentencePiece student"}

common = dict(
    student_config={"n_layer": cfg["layers"], "n_embd": cfg["width"], "n_head": 4},
    byte_method=cfg["byte_method"], max_steps=cfg["steps"], batch_size=cfg["batch_size"],
    max_length=cfg["max_length"], learning_rate=cfg["lr"], random_state=cfg["seed"],
)
objectives = {  # name in the results file -> ByteDistiller parameters
    "sft": dict(loss="sft"),
    "uld": dict(loss="uld", kl_weight=0.1),  # the weight of the benchmark run
    "bld-linear": dict(loss="bld", kl_weight=0.1, token_kl_weight=0.0),  # the paper's
    "bld-linear-kl1": dict(loss="bld", kl_weight=1.0),
    "bld-linear-tkl1": dict(loss="bld", kl_weight=1.0, token_kl_weight=1.0),
    "bld-linear-tkl3": dict(loss="bld", kl_weight=1.0, token_kl_weight=3.0),
}
for name, params in objectives.items():
    print(f"{name:>16}: {ByteDistiller(**params)}")
print(f"common settings: {common}")
minutes = sum(bench["runs"][f"{s}/{n}"]["fit_s"] for s in STUDENTS for n in objectives) / 60
print(f"these {2 * len(objectives)} fits took {minutes:.0f} minutes in the benchmark run")

# %%
# The token-head weight chosen on the validation split
# ----------------------------------------------------
# ``distill_validation.json`` holds the same runs on other held-out documents (three quarters
# into the play instead of half-way). Per student, the best BLD row there fixes the weight
# used below (validation rows are named by the suffix of the rows of the comparison); the
# held-out documents of the comparison never took part in the choice.

chosen = {}
for student in STUDENTS:
    rows = {key.split("/")[1]: run["heldout_bpb"] for key, run in validation["runs"].items()
            if key.startswith(student + "/") and key.split("/")[1] not in ("sft", "uld")}
    best = min(rows, key=rows.get)
    chosen[student] = f"bld-linear-{best}"
    print(f"{student}: best on validation {best} ({rows[best]:.3f} bits/byte) "
          f"-> {chosen[student]}: {objectives[chosen[student]]}")

# %%
# Held-out bits per byte
# ----------------------
# Lower is better. The teacher's own held-out bits per byte is printed for scale: the students
# are far smaller and see 6 KB of text.

teacher_bpb = bench["teacher"]["heldout_bpb"]
print(f"teacher SmolLM2-135M: {teacher_bpb:.3f} bits/byte; "
      f"{cfg['n_train_bytes']} training bytes, {cfg['n_heldout_bytes']} held-out bytes")
for student, title in STUDENTS.items():
    sft = bench["runs"][f"{student}/sft"]["heldout_bpb"]
    print(f"\n{title}")
    for name in objectives:
        bpb = bench["runs"][f"{student}/{name}"]["heldout_bpb"]
        mark = "   <- chosen on validation" if name == chosen[student] else ""
        print(f"  {name:>16}  {bpb:.3f}  {100 * (bpb / sft - 1):+5.1f}% vs SFT{mark}")

# %%
# Learning curves
# ---------------
# Held-out bits per byte every 10 steps. Every curve starts from the same untrained student at
# step 0 (about 4.3 bits per byte, left out so that the differences show).

shown = {"sft": ("SFT (no teacher)", "tab:gray", "o", "--"),
         "uld": ("ULD", "tab:purple", "s", "--"),
         "bld-linear": ("BLD, the paper's weights", "tab:cyan", "^", "-"),
         "bld-linear-kl1": ("BLD, kl_weight=1", "tab:blue", "v", "-"),
         "chosen": ("BLD, kl_weight=1 + token-head byte KL (weight chosen on validation)",
                    "tab:red", "D", "-")}
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True, layout="constrained")
for ax, (student, title) in zip(axes, STUDENTS.items(), strict=True):
    for key, (label, color, marker, style) in shown.items():
        name = chosen[student] if key == "chosen" else key
        curve = np.array(bench["runs"][f"{student}/{name}"]["curve"])[1:]
        ax.plot(curve[:, 0], curve[:, 1], linestyle=style, marker=marker, color=color,
                label=label, linewidth=2.4 if key == "chosen" else 1.4, markersize=5)
    weight = objectives[chosen[student]]["token_kl_weight"]
    ax.set(title=f"{title} (token_kl_weight={weight:g})", xlabel="optimiser step",
           xticks=curve[:, 0])
    ax.grid(alpha=0.3)
axes[0].set_ylabel("held-out bits per byte")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3,
           fontsize="small")
fig.suptitle(f"SmolLM2-135M teacher ({teacher_bpb:.2f} bits/byte on the same text)")
plt.show()

# %%
# Every variant against SFT
# -------------------------
# All rows of the results file, as the change in held-out bits per byte against SFT for the
# same student (negative: better than training without a teacher). The transformer byte head
# and ULD with weight 1 lose; BLD with the linear head wins for both students.

names = [key.split("/")[1] for key in bench["runs"] if key.startswith("random-gpt2/")]
names = [n for n in names if n != "sft"]
fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
height = 0.4
for i, (student, title) in enumerate(STUDENTS.items()):
    sft = bench["runs"][f"{student}/sft"]["heldout_bpb"]
    change = [100 * (bench["runs"][f"{student}/{n}"]["heldout_bpb"] / sft - 1) for n in names]
    ax.barh(np.arange(len(names)) + (i - 0.5) * height, change, height, label=title)
ax.axvline(0, color="k", linewidth=0.8)
ax.set_yticks(np.arange(len(names)), names)
ax.invert_yaxis()
ax.set(xlabel="held-out bits per byte, % change against SFT")
ax.legend(loc="lower right")
ax.grid(axis="x", alpha=0.3)
plt.show()

# %%
# Fitting a student
# -----------------
# The calls behind each row, with the chosen setting for the GPT-2 student, here on two
# documents for three steps so that the pages build quickly: these numbers show the calls,
# not the method. ``eval_X`` records the held-out curve during ``fit``.

docs = load_hamlet()
train, heldout = docs[:2], docs[len(docs) // 2 : len(docs) // 2 + 1]
bld = ByteDistiller(student="random-gpt2", **{**common, "max_steps": 3},
                    **objectives[chosen["random-gpt2"]])
bld.fit(train, eval_X=heldout, eval_every=1)
print("eval_curve_ (step, held-out bits per byte):")
print(np.round(bld.eval_curve_, 3))
print(f"teacher on the same text: {bld.bits_per_byte(heldout, model='teacher'):.3f}")
