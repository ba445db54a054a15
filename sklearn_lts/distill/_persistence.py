"""Saving, loading, pickling and cloning of a ByteDistiller, as a mixin of the estimator.

Weights go through :mod:`~sklearn_lts.distill._serialization` (safetensors only); model objects
passed as ``teacher`` / ``student`` parameters are never saved or pickled, they become the
placeholder string ``"<unsaved object: ...>"``.
"""

from __future__ import annotations

import json
import os

import numpy as np
from sklearn.utils.validation import check_is_fitted

from sklearn_lts.distill._serialization import (
    pack_module,
    read_folder,
    save_folder,
    unpack_head,
    unpack_student,
)
from sklearn_lts.distill._student import describe

__all__ = ["PersistenceMixin"]


class PersistenceMixin:
    """``save`` / ``load`` / pickling / ``clone`` for :class:`ByteDistiller`."""

    def _json_params(self) -> dict:
        params = self.get_params(deep=False)
        for k in ("teacher", "student"):
            params[k] = describe(params[k])
        params["callbacks"] = None  # user code: never saved
        return params

    def save(self, path: str) -> None:
        """Write the fitted estimator to the folder ``path``.

        Layout: ``student/`` (``save_pretrained``: safetensors weights, config, tokenizer),
        ``byte_head.safetensors`` (if any) and ``distiller.json`` (parameters, byte-head
        config, history, evaluation curve and best step, SHA-256 of every weight file). No
        pickles. ``teacher``/``student`` parameters that are model objects are stored as a
        placeholder string.

        Parameters
        ----------
        path : str
        """
        check_is_fitted(self)
        meta = {
            "params": self._json_params(),
            "max_token_bytes_": self.max_token_bytes_,
            "n_train_bytes_": self.n_train_bytes_,
            "history_": self.history_,
            # absent from estimators fitted (and pickled) before they existed
            "eval_curve_": getattr(self, "eval_curve_", np.zeros((0, 2))).tolist(),
            "best_step_": getattr(self, "best_step_", None),
        }
        save_folder(path, self.student_, self.student_tokenizer_, self.byte_head_, meta)

    @classmethod
    def load(cls, path: str, device: str | None = None):
        """Restore an estimator written by :meth:`save`.

        Only safetensors weights are read, and each must match the checksum recorded by
        :meth:`save`.

        Parameters
        ----------
        path : str
        device : str, optional
            Where to put the student (default: the saved ``device`` parameter's choice).

        Returns
        -------
        ByteDistiller
        """
        with open(os.path.join(path, "distiller.json"), encoding="utf-8") as f:
            params = json.load(f)["params"]
        if device is not None:
            params["device"] = device
        est = cls(**params)
        meta, est.student_, est.student_tokenizer_, est.byte_head_ = read_folder(
            path, est._device()
        )
        est.max_token_bytes_ = meta["max_token_bytes_"]
        est.n_train_bytes_ = meta["n_train_bytes_"]
        est.history_ = meta["history_"]
        # folders saved before these were written: no curve, no best step
        est.eval_curve_ = np.asarray(meta.get("eval_curve_", []), dtype=float).reshape(-1, 2)
        est.best_step_ = meta.get("best_step_")
        return est

    def __sklearn_clone__(self):
        # an unfitted copy that shares (does not deep-copy) model objects given as parameters
        return type(self)(**self.get_params(deep=False))

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k != "_teacher_cache"}
        state["callbacks"] = None  # user code (often closures): never pickled
        for k in ("teacher", "student"):
            if not (state[k] is None or isinstance(state[k], str)):
                state[k] = describe(state[k])
        if "student_" in state:
            state["student_"] = pack_module(state["student_"], state["student_"].config.to_dict())
        if state.get("byte_head_") is not None:
            state["byte_head_"] = pack_module(state["byte_head_"], state["byte_head_"].config())
        return state

    def __setstate__(self, state):
        if isinstance(state.get("student_"), dict):
            state["student_"] = unpack_student(state["student_"])
        if isinstance(state.get("byte_head_"), dict):
            state["byte_head_"] = unpack_head(state["byte_head_"])
        self.__dict__.update(state)
