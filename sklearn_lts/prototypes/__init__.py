"""Few-shot half: soft-label prototypes on prototypical lines (numbers in, labels out)."""

from sklearn_lts.prototypes._classifier import LineFallbackWarning, SoftLabelPrototypeClassifier

__all__ = ["LineFallbackWarning", "SoftLabelPrototypeClassifier"]
