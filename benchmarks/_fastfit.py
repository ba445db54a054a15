"""FastFit (``fast-fit`` 1.2.1, Yehudai & Bendel 2024) as ``fit(texts, y)`` / ``predict(texts)``.

A benchmark-only anchor for ``benchmarks/fewshot.py --text-methods fastfit``; the library never
imports it. ``pip install -e ".[bench-peers]"`` or ``pip install fast-fit==1.2.1`` installs it:
its requirements (torch, transformers, datasets, scikit-learn, unpinned) are already here, so
nothing else changes.

As released, FastFit 1.2.1 does not run against ``datasets`` 5 and ``transformers`` 5. Four
shims, applied once by :func:`_patched_fastfit` and touching only FastFit's own module, make it
run unchanged otherwise:

1. ``datasets.load_metric`` was removed: FastFit only asks it for accuracy during evaluation,
   which this benchmark never runs, so a local accuracy metric stands in (no download).
2. ``TrainingArguments`` lost ``overwrite_output_dir``, which FastFit passes: its argument
   parser is told to ignore keys it does not know.
3. FastFit reads ``overwrite_output_dir`` again to look for a checkpoint to resume; a fresh
   temporary output folder never has one, so that step returns "no checkpoint".
4. ``Trainer(tokenizer=...)`` became ``Trainer(processing_class=...)``.

Training uses the settings of FastFit's README example (40 epochs, batch 32, 4 repeats,
Adafactor, ``clf_loss_factor=0.1``, texts up to 128 tokens) without ``fp16`` (CPU), on the same
all-MiniLM-L6-v2 body as every other method. Prediction uses FastFit's own inference
(``inference_forward``: token-level similarity to the training texts, its default).
"""

from __future__ import annotations

import functools
import tempfile

import numpy as np


class _Accuracy:
    """Stands in for ``datasets.load_metric("accuracy")`` (removed in ``datasets`` 3)."""

    def compute(self, predictions, references, **kwargs) -> dict:
        return {"accuracy": float(np.mean(np.asarray(predictions) == np.asarray(references)))}


@functools.cache
def _patched_fastfit():
    """``fastfit.train`` with the shims of the module docstring applied (once)."""
    import datasets

    if not hasattr(datasets, "load_metric"):
        datasets.load_metric = lambda *args, **kwargs: _Accuracy()
    import fastfit.train as fft

    parse_dict = fft.parser.parse_dict
    fft.parser.parse_dict = lambda args, allow_extra_keys=False: parse_dict(
        args, allow_extra_keys=True)

    def no_checkpoint(self):
        self.checkpoint = None
        return None

    fft.FastFitTrainer.set_last_checkpoint = no_checkpoint

    class Trainer(fft.Trainer):
        def __init__(self, *args, tokenizer=None, **kwargs):
            super().__init__(*args, processing_class=tokenizer, **kwargs)

    fft.Trainer = Trainer
    return fft


class FastFitText:
    """FastFit with its README's few-shot settings, as ``fit(texts, y)`` / ``predict(texts)``.

    Parameters
    ----------
    seed : int
        FastFit's training seed.
    body : str or None
        Transformers folder of the encoder; None: all-MiniLM-L6-v2.
    """

    SETTINGS = {"num_train_epochs": 40, "per_device_train_batch_size": 32,
                "per_device_eval_batch_size": 64, "max_text_length": 128,
                "dataloader_drop_last": False, "num_repeats": 4, "optim": "adafactor",
                "clf_loss_factor": 0.1}

    def __init__(self, seed: int = 0, body: str | None = None):
        self.seed = seed
        self.body = body

    def fit(self, texts: list[str], y) -> FastFitText:
        from datasets import Dataset, DatasetDict
        from setfit_anchor import minilm_body

        fft = _patched_fastfit()
        self.classes_ = np.unique(np.asarray(y))
        train = Dataset.from_dict({"text": list(texts), "label": [str(v) for v in y]})
        # A custom dataset needs a "test" split to be preprocessed; it is never evaluated.
        data = DatasetDict(train=train, test=train)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = fft.FastFitTrainer(
                model_name_or_path=self.body or minilm_body(), label_column_name="label",
                text_column_name="text", dataset=data, seed=self.seed, output_dir=tmp,
                save_strategy="no", report_to="none", disable_tqdm=True, **self.SETTINGS)
            trainer.train()
        self.model_ = trainer.model.eval()
        self.tokenizer_ = trainer.tokenizer
        # FastFit's score columns follow config.id2label; map them back to our labels.
        names = self.model_.config.id2label
        by_name = {str(c): c for c in self.classes_}
        self.columns_ = np.array([by_name[names[i]] for i in range(len(names))],
                                 dtype=self.classes_.dtype)
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(texts), 64):
            enc = self.tokenizer_(list(texts[start:start + 64]), padding=True, truncation=True,
                                  max_length=self.SETTINGS["max_text_length"],
                                  return_tensors="pt", return_attention_mask=True)
            with torch.no_grad():
                scores = self.model_.inference_forward(enc["input_ids"],
                                                       enc["attention_mask"])
            out.append(scores.argmax(-1).numpy())
        return self.columns_[np.concatenate(out)]

    def __repr__(self) -> str:
        return f"FastFitText(seed={self.seed}, README few-shot settings, no fp16)"
