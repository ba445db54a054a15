"""SentenceEmbedder: texts (or text pairs) to sentence embeddings, frozen or adapted."""

from sklearn_lts.embedding._embedder import SentenceEmbedder, clear_model_cache

__all__ = ["SentenceEmbedder", "clear_model_cache"]
