"""ByteLevelLM against a brute-force oracle that enumerates every covering token sequence."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklearn_lts.distill import ByteLevelLM, token_bytes

STRINGS = ["the", "aé b", "😀!"]  # 3-5 bytes, multi-byte characters included


class Oracle:
    """Sums the probability of every token sequence covering each prefix (no trie, no cache)."""

    def __init__(self, model, tb):
        self.model, self.tb, self._memo = model, tb, {}
        self.valid = [(i, b) for i, b in enumerate(tb.token_bytes) if b]

    def dist(self, seq):
        import torch

        if seq not in self._memo:
            with torch.no_grad():
                x = torch.tensor([[self.tb.bos_token_id, *seq]])
                logits = self.model(x).logits[0, -1].double()
            self._memo[seq] = torch.softmax(logits, -1).numpy()
        return self._memo[seq]

    def tilings(self, x):
        if not x:
            yield ()
            return
        for t, b in self.valid:
            if x.startswith(b):
                for rest in self.tilings(x[len(b) :]):
                    yield (t, *rest)

    def rows(self, text):
        x = self.tb.prefix + text.encode()
        out = np.zeros((len(x) + 1, 257))
        for i in range(len(x) + 1):
            for L in range(i + 1):
                for seq in self.tilings(x[:L]):
                    w = np.prod([self.dist(seq[:k])[seq[k]] for k in range(len(seq))])
                    p = self.dist(seq)
                    for t, b in self.valid:
                        if len(b) > i - L and b.startswith(x[L:i]):
                            out[i, b[i - L]] += w * p[t]
                    if L == i and self.tb.eos_token_id is not None:
                        out[i, 256] += w * p[self.tb.eos_token_id]
        out /= out.sum(1, keepdims=True)
        return out[len(self.tb.prefix) :]


@pytest.fixture(scope="module")
def model64(tiny_model):
    return copy.deepcopy(tiny_model).double()


@pytest.fixture(scope="module")
def oracle_rows(model64, tiny_tokenizer):
    oracle = Oracle(model64, token_bytes(tiny_tokenizer, model64.config.vocab_size))
    return {s: oracle.rows(s) for s in STRINGS}


def test_non_canonical_mass_is_real(tiny_tokenizer, model64, oracle_rows):
    """The oracle differs from the canonical-boundary approximation: the test has teeth."""
    blm = ByteLevelLM(model64, tiny_tokenizer, method="boundary")
    err = max(np.abs(blm.next_byte_proba(s) - oracle_rows[s]).max() for s in STRINGS)
    assert err > 0.05


@pytest.mark.parametrize(
    "method,kw", [("exact", {}), ("beam", {"beam_width": 10**6, "prune_threshold": 0.0})]
)
def test_exact_and_wide_beam_match_oracle(tiny_tokenizer, model64, oracle_rows, method, kw):
    blm = ByteLevelLM(model64, tiny_tokenizer, method=method, **kw)
    got = blm.next_byte_proba_batch(STRINGS)
    for s, g in zip(STRINGS, got, strict=True):
        assert g.shape == (len(s.encode()) + 1, 257)
        np.testing.assert_allclose(g, oracle_rows[s], atol=1e-6, rtol=0)
    assert blm.stats_.max_beam > 4  # several tokenizations were really summed


def test_float32_model_matches_oracle(tiny_tokenizer, tiny_model, oracle_rows):
    blm = ByteLevelLM(tiny_model, tiny_tokenizer, method="exact")
    for s in STRINGS[:2]:
        np.testing.assert_allclose(blm.next_byte_proba(s), oracle_rows[s], atol=1e-5)


def _beam_errors(model, tokenizer, oracle_rows, merge):
    errs = {}
    for k in (1, 2, 4, 64):
        blm = ByteLevelLM(model, tokenizer, method="beam", beam_width=k, prune_threshold=0,
                          merge=merge)
        rows = blm.next_byte_proba_batch(STRINGS)
        assert blm.stats_.max_new_states <= k + 1  # what costs LM evaluations is bounded by K
        errs[k] = max(np.abs(r - oracle_rows[s]).max() for s, r in zip(STRINGS, rows, strict=True))
    return errs


def test_narrow_beam_error_is_bounded_and_shrinks(tiny_tokenizer, model64, oracle_rows):
    errs = _beam_errors(model64, tiny_tokenizer, oracle_rows, merge=False)
    print("max abs error vs oracle by beam width (plain beam):", errs)
    assert errs[64] < 1e-6
    assert errs[1] >= errs[2] >= errs[4] >= errs[64]
    assert errs[4] < 1e-2  # measured: K=1 0.75, K=2 0.012, K=4 1.1e-4 (random peaky model)


def test_merged_beam_is_closer_to_exact_than_the_plain_beam(tiny_tokenizer, model64,
                                                            oracle_rows):
    plain = _beam_errors(model64, tiny_tokenizer, oracle_rows, merge=False)
    merged = _beam_errors(model64, tiny_tokenizer, oracle_rows, merge=True)
    print("max abs error vs oracle by beam width, plain / merged:", plain, merged)
    assert merged[64] < 1e-6  # nothing pruned, nothing merged: exact
    # measured: plain 0.75 / 0.012 / 1.05e-4, merged 0.012 / 0.0076 / 1.06e-4 for K = 1 / 2 / 4
    assert merged[1] < 0.1 * plain[1] and merged[2] < plain[2]
    assert merged[4] < 1e-3


def test_merged_beam_keeps_the_support(tiny_tokenizer, model64, oracle_rows):
    """A pruned state's bytes keep probability > 0 (the plain beam leaves exact zeros)."""
    holes = {}
    for merge in (False, True):
        blm = ByteLevelLM(model64, tiny_tokenizer, method="beam", beam_width=1,
                          prune_threshold=0, merge=merge)
        rows = blm.next_byte_proba_batch(STRINGS)
        holes[merge] = sum(int(((r == 0) & (oracle_rows[s] > 0)).sum())
                           for s, r in zip(STRINGS, rows, strict=True))
    assert holes[False] > 0 and holes[True] == 0, holes


def test_marginal_likelihood_beats_canonical(tiny_tokenizer, model64):
    """Exact rows telescope to P(text) summed over tokenizations >= P(canonical tokenization)."""
    import torch

    tb = token_bytes(tiny_tokenizer, model64.config.vocab_size)
    gaps = []
    for text in ("the theme", "café sat"):
        x = list(text.encode())
        exact = ByteLevelLM(model64, tiny_tokenizer, method="exact").next_byte_proba(text)
        ll_exact = np.log(exact[np.arange(len(x)), x]).sum() + np.log(exact[-1, 256])
        ids = [tb.bos_token_id, *tiny_tokenizer(text)["input_ids"], tb.eos_token_id]
        with torch.no_grad():
            lp = torch.log_softmax(model64(torch.tensor([ids[:-1]])).logits[0], -1)
        ll_canon = float(lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum())
        gaps.append(ll_exact - ll_canon)
    assert min(gaps) > 0 and max(gaps) > 1e-3, gaps


def test_boundary_is_the_teacher_at_its_own_boundaries(tiny_tokenizer, tiny_model):
    """At a canonical boundary, 'boundary' is the teacher's next-token mass by first byte."""
    import torch

    tb = token_bytes(tiny_tokenizer, tiny_model.config.vocab_size)
    text = "the cat sat"
    ids = tiny_tokenizer(text)["input_ids"]
    with torch.no_grad():
        p = torch.softmax(tiny_model(torch.tensor([[tb.bos_token_id, *ids]])).logits[0], -1)
    p = p.double().numpy()
    rows = ByteLevelLM(tiny_model, tiny_tokenizer, method="boundary").next_byte_proba(text)
    offset = 0
    for k in range(len(ids) + 1):
        want = np.zeros(257)
        for t, b in enumerate(tb.token_bytes):
            if b:
                want[b[0]] += p[k, t]
        want[256] = p[k, tb.eos_token_id]
        np.testing.assert_allclose(rows[offset], want / want.sum(), atol=1e-5)
        if k < len(ids):
            offset += len(tb.token_bytes[ids[k]])


def test_batch_equals_single_and_log(tiny_tokenizer, tiny_model):
    blm = ByteLevelLM(tiny_model, tiny_tokenizer, method="beam", beam_width=4)
    texts = ["the theme", "", "café"]
    batch = blm.next_byte_proba_batch(texts)
    for t, b in zip(texts, batch, strict=True):
        np.testing.assert_allclose(blm.next_byte_proba(t), b, atol=1e-6)
    logs = blm.next_byte_log_proba_batch(texts)
    np.testing.assert_allclose(np.exp(logs[2]), batch[2], atol=1e-12)
    assert batch[1].shape == (1, 257)


@pytest.mark.parametrize("merge", [False, True])
def test_cache_compaction_changes_nothing(tiny_tokenizer, tiny_model, merge):
    """Dropping dead branches from the shared KV cache keeps every row."""
    texts = ["the theme of the cat sat on the mat", "café café the theme"]
    kw = dict(method="beam", beam_width=3, prune_threshold=0, merge=merge)
    ref = ByteLevelLM(tiny_model, tiny_tokenizer, **kw).next_byte_proba_batch(texts)
    blm = ByteLevelLM(tiny_model, tiny_tokenizer, **kw)
    blm._compact_every = 4
    got = blm.next_byte_proba_batch(texts)
    # slots were really dropped
    assert blm._runner.layout.lens.sum() < blm.stats_.n_tokens_evaluated
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r, atol=1e-5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=0, max_size=12), st.sampled_from(["beam", "lattice"]))
def test_rows_are_distributions_for_any_unicode(tiny_tokenizer, tiny_model, text, method):
    blm = ByteLevelLM(tiny_model, tiny_tokenizer, method=method, beam_width=3)
    rows = blm.next_byte_proba(text)
    assert rows.shape == (len(text.encode()) + 1, 257)
    assert np.isfinite(rows).all() and (rows >= 0).all()
    np.testing.assert_allclose(rows.sum(1), 1.0, atol=1e-9)


def _errors(rows, oracle_rows):
    return max(np.abs(r - oracle_rows[s]).max() for s, r in zip(STRINGS, rows, strict=True))


@pytest.mark.parametrize("merge", [False, True])
def test_prune_threshold_trades_evaluations_for_error(tiny_tokenizer, model64, oracle_rows,
                                                     merge):
    err, cost = {}, {}
    for thr in (0.0, 0.01, 0.2):
        blm = ByteLevelLM(model64, tiny_tokenizer, beam_width=64, prune_threshold=thr,
                          merge=merge)
        err[thr] = _errors(blm.next_byte_proba_batch(STRINGS), oracle_rows)
        cost[thr] = blm.stats_.n_tokens_evaluated
    print("prune_threshold -> (error, tokens evaluated):", err, cost)
    assert err[0.0] < 1e-9  # nothing pruned: exact
    assert err[0.01] > 1e-3 and err[0.2] > 1e-3  # measured 0.0076-0.012
    assert cost[0.0] > cost[0.01] > cost[0.2]  # measured 23 > 17 > 16


@pytest.mark.parametrize("param,values", [("window", (0, 128)), ("lookahead", (0, 4)),
                                          ("batch_size", (1, 256))])
def test_cost_parameters_change_the_calls_not_the_rows(tiny_tokenizer, model64, oracle_rows,
                                                       param, values):
    """window, lookahead and batch_size decide what each call evaluates: never the rows."""
    texts = ["the theme of the cat sat on the mat", "café café the theme"]
    rows, cost = {}, {}
    for v in values:
        wide = ByteLevelLM(model64, tiny_tokenizer, beam_width=10**6, prune_threshold=0,
                           **{param: v})
        assert _errors(wide.next_byte_proba_batch(STRINGS), oracle_rows) < 1e-9
        blm = ByteLevelLM(model64, tiny_tokenizer, beam_width=2, **{param: v})
        rows[v] = blm.next_byte_proba_batch(texts)
        cost[v] = (blm.stats_.n_forward_calls, blm.stats_.n_tokens_evaluated)
    print(param, "-> (calls, tokens evaluated):", cost)
    assert cost[values[0]] != cost[values[1]]
    for a, b in zip(rows[values[0]], rows[values[1]], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)


def test_bos_and_eos_overrides_match_the_oracle(tiny_tokenizer, model64, oracle_rows):
    """Other BOS/EOS tokens: other conditioning and end-of-text column, exactly as the oracle."""
    v = model64.config.vocab_size
    default = token_bytes(tiny_tokenizer, v)
    merged = [i for i, b in enumerate(default.token_bytes) if b and len(b) > 1]
    bos, eos = merged[-1], merged[-2]  # tokens no string in STRINGS needs
    tb = token_bytes(tiny_tokenizer, v, bos_token_id=bos, eos_token_id=eos)
    oracle = Oracle(model64, tb)
    blm = ByteLevelLM(model64, tiny_tokenizer, method="exact", bos_token_id=bos,
                      eos_token_id=eos)
    for s, got in zip(STRINGS, blm.next_byte_proba_batch(STRINGS), strict=True):
        np.testing.assert_allclose(got, oracle.rows(s), atol=1e-9, rtol=0)
        assert np.abs(got - oracle_rows[s]).max() > 1e-3  # the overrides matter


def test_device_moves_the_model(tiny_tokenizer, tiny_model):
    """``device="cpu"`` (the only device here) moves the model there and changes nothing else."""
    model = copy.deepcopy(tiny_model)
    auto = ByteLevelLM(model, tiny_tokenizer, beam_width=2).next_byte_proba("the cat")
    cpu = ByteLevelLM(model, tiny_tokenizer, beam_width=2, device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(cpu.next_byte_proba("the cat"), auto)



def _lattice_oracle(oracle, tokenizer, text):
    """Brute force of method="lattice": every tiling of every prefix is summed, and each token
    is scored under the distribution of its start offset's representative sequence."""
    tb = oracle.tb
    x = tb.prefix + text.encode()
    canon = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bounds = list(np.cumsum([len(tb.token_bytes[t]) for t in canon]))

    def greedy(a, o):  # longest match, independent of the trie
        out = []
        while a < o:
            t, b = max(((t, b) for t, b in oracle.valid if x[a:o].startswith(b)),
                       key=lambda tb_: (len(tb_[1]), -tb_[0]))
            out.append(t)
            a += len(b)
        return out

    def rep(o):
        k = sum(b <= o for b in bounds)  # canonical tokens that end at or before o
        a = bounds[k - 1] if k else 0
        return tuple(canon[:k]) + tuple(greedy(a, o))

    n = len(x)
    w = np.zeros(n + 1)
    w[0] = 1.0
    for o in range(n + 1):
        p = oracle.dist(rep(o))
        for t, b in oracle.valid:
            if x[o:].startswith(b):
                w[o + len(b)] += w[o] * p[t]
    out = np.zeros((n + 1, 257))
    for i in range(n + 1):
        for o in range(i + 1):
            p = oracle.dist(rep(o))
            for t, b in oracle.valid:
                if len(b) > i - o and b.startswith(x[o:i]):
                    out[i, b[i - o]] += w[o] * p[t]
        out[i, 256] = w[i] * oracle.dist(rep(i))[tb.eos_token_id]
    out /= out.sum(1, keepdims=True)
    return out[len(tb.prefix):]


def test_lattice_matches_its_brute_force_definition(tiny_tokenizer, model64):
    oracle = Oracle(model64, token_bytes(tiny_tokenizer, model64.config.vocab_size))
    blm = ByteLevelLM(model64, tiny_tokenizer, method="lattice", batch_size=7)  # several calls
    texts = [*STRINGS, "the theme", "café sat"]
    for text, got in zip(texts, blm.next_byte_proba_batch(texts), strict=True):
        np.testing.assert_allclose(got, _lattice_oracle(oracle, tiny_tokenizer, text),
                                   atol=1e-9, rtol=0)
    assert blm.stats_.n_forward_calls > 2


def test_lattice_is_closer_to_exact_than_boundary(tiny_tokenizer, model64, oracle_rows):
    err = {}
    for method in ("lattice", "boundary"):
        blm = ByteLevelLM(model64, tiny_tokenizer, method=method)
        rows = blm.next_byte_proba_batch(STRINGS)
        err[method] = max(np.abs(r - oracle_rows[s]).max()
                          for s, r in zip(STRINGS, rows, strict=True))
        holes = sum(int(((r == 0) & (oracle_rows[s] > 0)).sum())
                    for s, r in zip(STRINGS, rows, strict=True))
        if method == "lattice":
            assert holes == 0  # every tokenization is summed: nothing is left at zero
    print("max abs error vs exact:", err)
    assert err["lattice"] < err["boundary"]

# ------------------------------------------------------------------------- real tokenizers


@pytest.fixture(scope="module")
def tiny_llama_sp():
    """The Mistral SentencePiece tokenizer (32000, byte fallback) with a tiny random Llama."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from sklearn_lts._models import sentencepiece_tokenizer

    tok = sentencepiece_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        initializer_range=0.2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    return LlamaForCausalLM(cfg).eval().double(), tok


def test_sentencepiece_end_to_end_matches_oracle(tiny_llama_sp):
    model, tok = tiny_llama_sp
    blm = ByteLevelLM(model, tok, method="exact")
    assert blm.token_bytes_.prefix == b" "
    text = "Hé"
    rows = blm.next_byte_proba(text)
    want = Oracle(model, blm.token_bytes_).rows(text)
    np.testing.assert_allclose(rows, want, atol=1e-6)
    beam = ByteLevelLM(model, tok, method="beam", beam_width=10).next_byte_proba("é 😀\n")
    assert beam.shape == (len("é 😀\n".encode()) + 1, 257)
    np.testing.assert_allclose(beam.sum(1), 1, atol=1e-9)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=6), st.sampled_from(["beam", "lattice"]))
def test_sentencepiece_rows_are_distributions(tiny_llama_sp, text, method):
    model, tok = tiny_llama_sp
    rows = ByteLevelLM(model, tok, method=method, beam_width=4).next_byte_proba(text)
    assert np.isfinite(rows).all() and (rows >= 0).all()
    np.testing.assert_allclose(rows.sum(1), 1, atol=1e-9)


def _smollm2_ok(tb, text):
    return all(b not in tb.extra["missing_bytes"] for b in text.encode())


def test_smollm2_end_to_end(smollm2):
    model, tok = smollm2
    text = "é!"
    exact = ByteLevelLM(model, tok, method="exact").next_byte_proba(text)
    wide = ByteLevelLM(model, tok, method="beam", beam_width=1000, prune_threshold=0)
    blm = ByteLevelLM(model, tok, method="beam", beam_width=10)
    assert blm.token_bytes_.family == "byte_level_bpe"
    np.testing.assert_allclose(exact.sum(1), 1, atol=1e-9)
    np.testing.assert_allclose(wide.next_byte_proba(text), exact, atol=1e-6)
    err = np.abs(blm.next_byte_proba(text) - exact).max()
    print("SmolLM2 K=10 (prune 1e-3) max abs error vs exact:", err)
    assert err < 0.05


def test_smollm2_unrepresentable_byte_is_reported(smollm2):
    model, tok = smollm2
    blm = ByteLevelLM(model, tok, method="beam", beam_width=2)
    missing = blm.token_bytes_.extra["missing_bytes"]
    if not missing or missing[0] >= 0x80:
        pytest.skip("every ASCII byte has a token")
    with pytest.raises(ValueError, match="probability zero"):
        blm.next_byte_proba("a" + chr(missing[0]))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=5), st.sampled_from(["beam", "lattice"]))
def test_smollm2_rows_are_distributions(smollm2, text, method):
    model, tok = smollm2
    blm = ByteLevelLM(model, tok, method=method, beam_width=4)
    if not _smollm2_ok(blm.token_bytes_, text):
        return
    rows = blm.next_byte_proba(text)
    assert np.isfinite(rows).all() and (rows >= 0).all()
    np.testing.assert_allclose(rows.sum(1), 1, atol=1e-9)


def test_model_without_attention_interface_is_rejected(tiny_tokenizer, tiny_model):
    class Legacy(type(tiny_model)):
        _supports_attention_backend = False

    legacy = Legacy(tiny_model.config).eval()
    with pytest.raises(TypeError, match="attention interface"):
        ByteLevelLM(legacy, tiny_tokenizer).next_byte_proba("the")


def test_model_attention_setting_is_restored(tiny_tokenizer, tiny_model):
    before = tiny_model.config._attn_implementation
    ByteLevelLM(tiny_model, tiny_tokenizer, beam_width=2).next_byte_proba_batch(["the", "cat"])
    assert tiny_model.config._attn_implementation == before
