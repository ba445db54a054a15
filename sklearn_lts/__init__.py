"""sklearn-lts: learning from very little data, and moving knowledge between tokenizers.

Public estimators: :class:`SoftLabelPrototypeClassifier`, :class:`SentenceEmbedder` and
:class:`ByteDistiller`. The last two pull in torch and transformers, so they are imported on
first access (``import sklearn_lts`` stays light).
"""

from sklearn_lts.prototypes import SoftLabelPrototypeClassifier

__version__ = "0.1.0.dev0"
__all__ = ["ByteDistiller", "SentenceEmbedder", "SoftLabelPrototypeClassifier", "__version__"]

_LAZY = {
    "ByteDistiller": "sklearn_lts.distill",
    "SentenceEmbedder": "sklearn_lts.embedding",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sklearn_lts' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
