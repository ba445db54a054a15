"""The peer covering beam, ``genlm-bytes`` (Vieira et al.), run on the same model and texts.

Optional, benchmark-only (``pip install sklearn-lts[bench-peers]``: ``genlm-bytes==0.2.0``
and ``genlm-backend==0.3.1``). Used by ``byte_conversion.py --peer genlm``.

How its rows are made comparable with ``ByteLevelLM``'s (both described in the results file):

* Both condition the first byte on BOS alone: genlm starts every beam from
  ``[tokenizer.bos_token_id]``, ``ByteLevelLM`` from BOS too (the same id here).
* genlm's ``logp_next`` is 258-way: 256 bytes, 256 = end of token (EOT; always 0 at a row, as
  the masked non-extended states are the only ones that can reach it), 257 = EOS. Every
  special/added token of the tokenizer is given to genlm as an EOS byte string, so their
  mass goes to column 257 and not to the bytes of their literal names (``<|im_end|>`` would
  otherwise count as the bytes ``<``, ``|``, ...). ``ByteLevelLM`` leaves non-EOS specials out
  and puts EOS in its column 256. The two sides therefore agree on everything but the special
  mass, and the comparison is over the 256-byte conditional: the special columns are dropped
  and each row renormalised (their mass is reported apart).
* Rows: one per byte position plus the row after the last byte (``n_bytes + 1`` per text, as
  ``ByteLevelLM``); genlm's row ``i`` is ``logp_next`` of the beam after ``i`` bytes, each step
  being ``beam.prune() << byte`` (what its ``prefill`` does).
* No prune threshold (``prune_threshold=0``), the same ``K``. Token healing is off; if the
  beam ever loses every path to the next byte, that step is redone with genlm's healing on and
  counted (``n_heals``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

GENLM_VERSIONS = {"genlm-bytes": "0.2.0", "genlm-backend": "0.3.1"}
_MISSING = (
    "--peer genlm needs the optional packages genlm-bytes==0.2.0 and genlm-backend==0.3.1 "
    "(pip install 'sklearn-lts[bench-peers]'; they install beside transformers 5 without "
    "their vllm extra): {err}"
)


def import_genlm():
    """The genlm modules, or a SystemExit saying what to install."""
    try:
        from genlm.backend import load_model_by_name
        from genlm.bytes import BeamParams, ByteBeamState
    except ImportError as err:  # optional: a clear message, not a traceback
        raise SystemExit(_MISSING.format(err=err)) from None
    return load_model_by_name, BeamParams, ByteBeamState


@dataclass
class PeerRun:
    """genlm's rows for some texts: log-probabilities, 258 columns, and its cost."""

    rows: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    n_heals: int = 0
    n_forward_calls: int = 0


class GenlmPeer:
    """genlm-bytes on a local Hugging Face folder (offline), on the CPU, in float32.

    ``timeout`` is the HF backend's wait for more queries before a forward call: its default
    (0.02 s) leaves the CPU idle between one text's calls, while 0 still batches every query
    issued in the same event-loop step (all the extensions of one beam step).
    """

    def __init__(self, folder: str, special_strings: list[bytes], timeout: float = 0.0):
        import torch

        load_model_by_name, self._BeamParams, self._Beam = import_genlm()
        self.llm = load_model_by_name(folder, backend="hf", llm_opts={
            "hf_opts": {"torch_dtype": torch.float32, "device_map": "cpu"},
            "timeout": timeout,
        })
        self.special_strings = special_strings
        self._calls = 0
        forward = self.llm.model.forward

        def counted(*a, **kw):
            self._calls += 1
            return forward(*a, **kw)

        self.llm.model.forward = counted  # count its LM calls, as ByteLevelLM's stats do
        t0 = time.perf_counter()
        self._initial = asyncio.run(self._make_initial())
        self.setup_seconds = time.perf_counter() - t0  # its byte trie, built once

    async def _make_initial(self):
        params = self._BeamParams(K=1, eos_byte_strings=self.special_strings)
        beam = await self._Beam.initial(self.llm, params)
        await beam.cleanup()
        return beam

    def run(self, texts: list[str], k: int) -> PeerRun:
        """Rows of every text with beam width ``k`` (one text at a time, as genlm's API)."""
        return asyncio.run(self._run(texts, k))

    async def _run(self, texts: list[str], k: int) -> PeerRun:
        plain = self._BeamParams(K=k, prune_threshold=0.0, heal=False,
                                 eos_byte_strings=self.special_strings)
        healing = self._BeamParams(K=k, prune_threshold=0.0, heal=True,
                                   eos_byte_strings=self.special_strings)
        out = PeerRun()
        calls0 = self._calls
        for text in texts:
            self.llm.clear_cache()  # texts are independent; bounds the memory of its cache
            t0 = time.perf_counter()
            beam = self._Beam(self._initial.states, plain)
            rows = []
            for b in text.encode():
                rows.append(np.asarray((await beam.logp_next()).ps, dtype=float))
                beam, healed = await self._advance(beam, b, plain, healing)
                out.n_heals += healed
            rows.append(np.asarray((await beam.logp_next()).ps, dtype=float))
            await beam.cleanup()
            out.seconds += time.perf_counter() - t0
            out.rows.append(np.stack(rows))
        out.n_forward_calls = self._calls - calls0
        return out

    async def _advance(self, beam, b: int, plain, healing):
        """``beam.prune() << b``; redone with genlm's token healing if the beam empties."""
        pruned = beam.prune()
        new = await (pruned << b)
        if len(new):
            return new, 0
        new = await (self._Beam(pruned.states, healing) << b)
        if not len(new):
            raise RuntimeError(f"genlm's beam (K={plain.K}) lost byte {b} even with healing")
        return self._Beam(new.states, plain), 1


def byte_conditional(p: np.ndarray, n_bytes_cols: int = 256) -> np.ndarray:
    """Rows restricted to the 256 byte columns and renormalised.

    >>> byte_conditional(np.array([[0.5, 0.25, 0.25]]), 2)
    array([[0.66666667, 0.33333333]])
    """
    b = p[:, :n_bytes_cols]
    return b / b.sum(1, keepdims=True)
