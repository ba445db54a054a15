"""Prediction speed of SoftLabelPrototypeClassifier (vectorised SLaPkNN).

Predicts ``--n-queries`` points of dimension ``--dim`` against ``--n-prototypes`` prototypes,
for both routings, next to scikit-learn's NearestCentroid and KNeighborsClassifier on the same
prototypes, measured side by side in one run (best of ``--repeat``).

    python benchmarks/predict_speed.py --n-queries 100000 --dim 384 --n-prototypes 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import command_line, versions, write_results
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

from sklearn_lts import SoftLabelPrototypeClassifier


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-queries", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--n-prototypes", type=int, default=64)
    p.add_argument("--n-classes", type=int, default=16)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    rng = np.random.RandomState(0)
    C, M, d = args.n_classes, args.n_prototypes, args.dim
    centres = rng.randn(C, d)
    y = np.repeat(np.arange(C), 16)
    X = centres[y] + 0.5 * rng.randn(len(y), d)
    Q = (centres[rng.randint(C, size=args.n_queries)] + 0.5 * rng.randn(args.n_queries, d))
    Q = Q.astype(np.float32)
    rows = []
    for routing in ("line", "global"):
        clf = SoftLabelPrototypeClassifier(n_prototypes=M, routing=routing, random_state=0)
        clf.fit(X, y)
        assert clf.prototypes_.shape[0] == M
        t = best_time(lambda clf=clf: clf.predict(Q), args.repeat)
        rows.append((f"SoftLabelPrototypeClassifier(n_prototypes={M}, routing={routing!r})", t))
    nc = NearestCentroid().fit(X, y)
    rows.append(("NearestCentroid (16 centroids)", best_time(lambda: nc.predict(Q), args.repeat)))
    protos = clf.prototypes_
    knn = KNeighborsClassifier(2, weights="distance").fit(protos, np.arange(M) % C)
    rows.append((f"KNeighborsClassifier(2, distance) on the {M} prototypes",
                 best_time(lambda: knn.predict(Q), args.repeat)))
    v = versions()
    md = [
        "# Prediction speed",
        "",
        f"`{command_line()}`",
        "",
        f"{args.n_queries:,} queries of dimension {d} (float32 input), {M} prototypes, "
        f"{C} classes; best of {args.repeat} runs, one process, measured side by side.",
        "",
        "| method | seconds | queries / s |",
        "|---|---|---|",
    ]
    md += [f"| {name} | {t:.3f} | {args.n_queries / t:,.0f} |" for name, t in rows]
    md += ["", "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), ""]
    payload = {"command": command_line(), "args": vars(args), "versions": v,
               "results": [{"method": n, "seconds": t} for n, t in rows]}
    md_path, _ = write_results("predict_speed", "\n".join(md), payload)
    print("\n".join(md))
    print(f"wrote {md_path}")


if __name__ == "__main__":
    main()
