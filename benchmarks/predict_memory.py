"""Peak memory of SoftLabelPrototypeClassifier prediction on an input larger than memory.

Writes ``--n-queries`` float32 queries of dimension ``--dim`` to an ``np.memmap`` in a
temporary folder (checked for free space first, deleted afterwards), fits the classifier on a
small labelled set, then runs ``predict``, ``predict_proba`` and ``decision_function`` on the
whole memmap, one at a time, and records for each:

* the peak of the process's *anonymous* resident memory (``RssAnon`` in
  ``/proc/self/status``), sampled every millisecond by a thread. Anonymous memory is what the
  process allocates (arrays, copies, BLAS buffers). The memmap's pages are file-backed: they
  count in the total RSS (``VmHWM``, which ``resource.getrusage`` reports as ``ru_maxrss``)
  as soon as they are read, yet the kernel can drop them at any time, so the total RSS of a
  process streaming a 7.7 GB file says nothing about what it needs. ``VmHWM`` is reported
  too, for comparison;
* the peak of the allocations that ``tracemalloc`` sees (Python objects and NumPy arrays;
  not BLAS work space), exact rather than sampled.

    python benchmarks/predict_memory.py --n-queries 5000000 --dim 384
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
import tracemalloc

import numpy as np
from _common import command_line, versions, write_results

from sklearn_lts import SoftLabelPrototypeClassifier

GIB = 2**30


def status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``RssAnon``, ``VmHWM``, ...), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


class AnonPeak:
    """Highest ``RssAnon`` seen by a thread polling every ``interval`` seconds."""

    def __init__(self, interval: float = 1e-3) -> None:
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, status_bytes("RssAnon"))
            time.sleep(self.interval)

    def __enter__(self) -> AnonPeak:
        self.peak = status_bytes("RssAnon")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_bytes("RssAnon"))


def write_queries(path: str, n: int, centres: np.ndarray, block: int = 65536) -> np.memmap:
    """Queries around ``centres`` written block by block to a float32 memmap (read-only)."""
    rng = np.random.default_rng(1)
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, centres.shape[1]))
    for start in range(0, n, block):
        stop = min(n, start + block)
        noise = rng.standard_normal((stop - start, centres.shape[1]), dtype=np.float32)
        out[start:stop] = centres[rng.integers(len(centres), size=stop - start)] + 0.5 * noise
    out.flush()
    del out
    return np.memmap(path, dtype=np.float32, mode="r", shape=(n, centres.shape[1]))


def measure(method, Q) -> dict:
    """Run ``method(Q)`` once; its time, peak anonymous memory and tracemalloc peak."""
    tracemalloc.start()
    base = status_bytes("RssAnon")
    t0 = time.perf_counter()
    with AnonPeak() as peak:
        result = method(Q)
    seconds = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "seconds": seconds,
        "rss_anon_before": base,
        "rss_anon_peak": peak.peak,
        "tracemalloc_peak": traced,
        "output_bytes": result.nbytes,
        "vm_hwm": status_bytes("VmHWM"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-queries", type=int, default=5_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--n-prototypes", type=int, default=64)
    p.add_argument("--n-classes", type=int, default=16)
    p.add_argument("--limit-gib", type=float, default=2.0, help="peak anonymous memory allowed")
    p.add_argument("--tmpdir", default=tempfile.gettempdir())
    args = p.parse_args()
    n, d, C = args.n_queries, args.dim, args.n_classes
    need = n * d * 4
    free = shutil.disk_usage(args.tmpdir).free
    if free < 1.2 * need:
        raise SystemExit(f"{args.tmpdir} has {free / GIB:.1f} GiB free, {need / GIB:.1f} needed")
    rng = np.random.RandomState(0)
    centres = rng.randn(C, d).astype(np.float32)
    y = np.repeat(np.arange(C), 16)
    X = centres[y] + 0.5 * rng.randn(len(y), d)
    clf = SoftLabelPrototypeClassifier(n_prototypes=args.n_prototypes, random_state=0).fit(X, y)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        t0 = time.perf_counter()
        Q = write_queries(os.path.join(tmp, "queries.f32"), n, centres)
        write_seconds = time.perf_counter() - t0
        head = np.array(Q[:10_000], dtype=np.float64)  # in-memory copy of the first rows
        assert np.array_equal(clf.predict(Q[:10_000]), clf.predict(head))
        for name in ("predict", "predict_proba", "decision_function"):
            r = measure(getattr(clf, name), Q)
            rows.append({"method": name, **r})
            print(f"{name}: {r['seconds']:.1f} s, RssAnon peak {r['rss_anon_peak'] / GIB:.3f} "
                  f"GiB, tracemalloc peak {r['tracemalloc_peak'] / GIB:.3f} GiB", flush=True)
        del Q
    v = versions()
    ok = all(r["rss_anon_peak"] < args.limit_gib * GIB for r in rows)
    md = [
        "# Prediction memory",
        "",
        f"`{command_line()}`",
        "",
        f"{n:,} float32 queries of dimension {d} ({need / GIB:.2f} GiB) in an `np.memmap` on "
        f"disk (written in {write_seconds:.0f} s), {clf.prototypes_.shape[0]} prototypes, "
        f"{C} classes, routing 'line'. Each method runs once on the whole memmap. Peak "
        f"anonymous memory must stay under {args.limit_gib:g} GiB: "
        f"**{'yes' if ok else 'NO'}**.",
        "",
        "| method | seconds | RssAnon before (GiB) | RssAnon peak (GiB) | tracemalloc peak (GiB) "
        "| output (GiB) |",
        "|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['method']} | {r['seconds']:.1f} | {r['rss_anon_before'] / GIB:.3f} | "
        f"{r['rss_anon_peak'] / GIB:.3f} | {r['tracemalloc_peak'] / GIB:.3f} | "
        f"{r['output_bytes'] / GIB:.3f} |"
        for r in rows
    ]
    md += [
        "",
        "RssAnon (anonymous resident memory, from `/proc/self/status`, polled every 1 ms by a "
        "thread) counts what the process allocated; the memmap's pages are file-backed and "
        "reclaimable, so they are left out. For comparison, the process's total peak RSS "
        f"(`VmHWM`, the `ru_maxrss` of `getrusage`, which counts file pages read) was "
        f"{max(r['vm_hwm'] for r in rows) / GIB:.2f} GiB. tracemalloc sees Python and NumPy "
        "allocations (exact peak, no BLAS work space). The output is part of the peak: "
        "`predict_proba` returns an (n, classes) float64 array. Times include the "
        "tracemalloc overhead and a shared machine: `predict_speed.py` measures speed.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "",
    ]
    payload = {"command": command_line(), "args": vars(args), "versions": v,
               "input_bytes": need, "write_seconds": write_seconds, "under_limit": ok,
               "results": rows}
    md_path, _ = write_results("predict_memory", "\n".join(md), payload)
    print("\n".join(md))
    print(f"wrote {md_path}")


if __name__ == "__main__":
    main()
