"""sklearn-lts: learning from very little data, and moving knowledge between tokenizers."""

from sklearn_lts.embedding import SentenceEmbedder
from sklearn_lts.prototypes import SoftLabelPrototypeClassifier

__version__ = "0.1.0.dev0"
__all__ = ["SentenceEmbedder", "SoftLabelPrototypeClassifier", "__version__"]
