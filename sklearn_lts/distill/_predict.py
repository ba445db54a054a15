"""Predict-time methods of ByteDistiller: bits per byte, score, transform, byte-head rows.

A mixin of the estimator; every method starts with ``check_is_fitted`` (the teacher's bits per
byte excepted, which needs no fit).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted

from sklearn_lts.distill._corpus import check_texts
from sklearn_lts.distill._scoring import byte_head_rows, mean_hidden, windows_nll

__all__ = ["PredictMixin"]


class PredictMixin(TransformerMixin):
    """``bits_per_byte`` / ``score`` / ``transform`` / ``next_byte_proba`` of ByteDistiller.

    A ``TransformerMixin`` itself, so that ``set_output`` wraps the ``transform`` defined here.
    """

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the :meth:`transform` columns: ``bytedistiller0``, ``bytedistiller1``, ...

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        ndarray of str objects
        """
        check_is_fitted(self)
        d = self.student_.get_output_embeddings().weight.shape[1]
        return np.asarray([f"bytedistiller{i}" for i in range(d)], dtype=object)

    def bits_per_byte(self, X, model: str = "student") -> float:
        """Bits per UTF-8 byte of ``X`` under the student's (or teacher's) own token head.

        Each text is scored in windows of ``max_length`` tokens that start with BOS; the
        summed token negative log-likelihood is divided by ``ln 2`` and by the number of
        bytes, which makes models with different tokenizers comparable.

        Parameters
        ----------
        X : list of str
        model : {"student", "teacher"}, default="student"

        Returns
        -------
        float
        """
        texts = check_texts(X)
        if model == "student":
            check_is_fitted(self)
            m, tok = self.student_, self.student_tokenizer_
        elif model == "teacher":
            m, tok = self._load_teacher()
        else:
            raise ValueError("model must be 'student' or 'teacher'")
        nll, n_bytes = windows_nll(m, tok, texts, self.max_length)
        if n_bytes == 0:
            raise ValueError("X holds no bytes to score (every text is empty)")
        return nll / math.log(2) / n_bytes

    def score(self, X, y=None) -> float:
        """Minus the student's bits per byte on ``X`` (higher is better).

        Parameters
        ----------
        X : list of str
        y : ignored

        Returns
        -------
        float
        """
        check_is_fitted(self)
        return -self.bits_per_byte(X, model="student")

    def transform(self, X) -> np.ndarray:
        """Mean-pooled last-layer hidden states of the student, shape ``(n_texts, d)``.

        Parameters
        ----------
        X : list of str

        Returns
        -------
        ndarray of float32
        """
        check_is_fitted(self)
        texts = check_texts(X)
        tok, model = self.student_tokenizer_, self.student_
        return np.stack([mean_hidden(model, tok, t, self.max_length) for t in texts])

    def next_byte_proba(self, text: str) -> np.ndarray:
        """The student byte head's next-byte distributions along ``text``.

        Same layout as the teacher's ``ByteLevelLM.next_byte_proba``: row ``i`` is the
        distribution of the byte after the first ``i`` UTF-8 bytes (columns 0-255 bytes, 256
        end-of-text; rows sum to 1). Row ``i`` comes from the student position before the token
        that covers byte ``i``, slot ``i - start`` (teacher-forced on the token's previous bytes
        for the transformer head). The last row is slot 0 after the last token. Rows past the
        linear head's ``max_token_bytes`` are NaN.

        Parameters
        ----------
        text : str

        Returns
        -------
        ndarray of shape (n_bytes + 1, 257)
        """
        check_is_fitted(self)
        if self.byte_head_ is None:
            raise ValueError(f"loss={self.loss!r} trains no byte head")
        return byte_head_rows(
            self.student_, self.byte_head_, self.student_tokenizer_, text, self.max_length,
            self.max_token_bytes_,
        )
