"""Named records of a conversion: token-tree nodes, their profiles, texts, hypotheses, counters.

A *state* is a token sequence after BOS, a :class:`Node` of the token tree. Every text has its
own tree, whose :attr:`TextState.root` is BOS (all roots share one evaluation of BOS, see
:mod:`._runner`). An evaluated node keeps only its :class:`Profile`: the masses of the trie nodes
along the rest of its text under its next-token distribution.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import NamedTuple

import numpy as np

from sklearn_lts.distill._trie import PathPlan, VocabTrie

__all__ = ["Profile", "Node", "TextState", "Hypothesis", "Candidate", "ConversionStats"]


class Profile(NamedTuple):
    """What an evaluated state keeps of its next-token distribution ``p``.

    Attributes
    ----------
    plan : PathPlan
        Trie path of the text from the state's byte offset.
    child_mass : ndarray of shape (plan.depth + 1, 256)
        ``child_mass[d, b]``: mass of the tokens that start with the next ``d`` text bytes + ``b``.
    end_p : list of ndarray
        ``end_p[d]``: probabilities of the tokens that are exactly the next ``d`` text bytes
        (their ids are ``plan.end_ids[d]``).
    p_eos : float
        Probability of EOS.
    """

    plan: PathPlan
    child_mass: np.ndarray
    end_p: list[np.ndarray]
    p_eos: float


@dataclass(eq=False, slots=True)
class Node:
    """A state: a token sequence (a node of its text's token tree; the root is BOS).

    Attributes
    ----------
    parent : Node or None
        ``None`` for the root.
    token : int
        Last token (BOS for the root).
    depth : int
        Tokens after BOS: the position id of :attr:`token`.
    text : TextState
        The text whose tree the node belongs to.
    offset : int
        Number of bytes of ``text.x`` the sequence decodes to.
    canon : int
        Index of :attr:`token` in the canonical tokenization if the whole sequence is its prefix,
        else -1 (also -1 for the root: no canonical token yet).
    slot : int or None
        Cache slot in the text's cache row, once evaluated.
    runs : tuple of (int, int)
        Slots of the node and its ancestors, as ``(start, stop)`` runs: what it attends to.
    logw : float or None
        Log-probability of the sequence (possibly with merged mass, see :mod:`._beam`).
    children : dict of int to Node
    profile : Profile or None
        Set when evaluated; dropped once no hypothesis can use it any more.
    """

    parent: Node | None
    token: int
    depth: int
    text: TextState
    offset: int
    canon: int = -1
    slot: int | None = None
    runs: tuple = ()
    logw: float | None = None
    children: dict[int, Node] = field(default_factory=dict)
    profile: Profile | None = None

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def on_canonical_path(self) -> bool:
        """Whether the sequence is a prefix of the canonical tokenization (the root is)."""
        return self.parent is None or self.canon >= 0


class Hypothesis(NamedTuple):
    """State ``node`` whose next token has read ``depth`` more bytes of the text so far."""

    node: Node
    depth: int


class Candidate(NamedTuple):
    """A hypothesis at the next byte, with its log-weight and whether it can still end a token
    along the text (``viable``)."""

    node: Node
    depth: int
    log_weight: float
    viable: bool


@dataclass(eq=False)
class TextState:
    """One text being converted.

    Attributes
    ----------
    text_id : int
        Position of the text in the call.
    x : bytes
        The bytes scored: the tokenizer's prefix, then the text.
    n_prefix : int
        Length of the prefix (rows start after it).
    canon : list of int
        Canonical token ids of ``x``.
    bounds : list of int
        Byte offset after each canonical token (``bounds[k]`` is the end of token ``k``).
    cache_row : int
        Row of the key/value cache that holds the text's states.
    trie : VocabTrie
    bos_token_id : int
        Init only: the token of the root.
    root : Node
        BOS: the root of the text's token tree.
    proba : ndarray of shape (n_bytes + 1, 257)
        The output rows, filled byte by byte.
    hyps : list of Hypothesis
        The hypotheses at the current byte.
    alive : list of Node
        Nodes holding a profile (only they can get children).
    plans : dict of int to PathPlan
        Trie paths by byte offset (cached).
    """

    text_id: int
    x: bytes
    n_prefix: int
    canon: list[int]
    bounds: list[int]
    cache_row: int
    trie: VocabTrie
    bos_token_id: InitVar[int]
    root: Node = field(init=False)
    proba: np.ndarray = field(init=False)
    hyps: list[Hypothesis] = field(default_factory=list)
    alive: list[Node] = field(default_factory=list)
    plans: dict[int, PathPlan] = field(default_factory=dict)

    def __post_init__(self, bos_token_id: int):
        self.proba = np.zeros((len(self.x) - self.n_prefix + 1, 257))
        self.root = Node(None, bos_token_id, 0, self, 0, logw=0.0)

    def plan(self, offset: int) -> PathPlan:
        """Trie path of ``x[offset:]`` (cached)."""
        plan = self.plans.get(offset)
        if plan is None:
            plan = self.trie.path_plan(self.x, offset)
            self.plans[offset] = plan
        return plan


@dataclass
class ConversionStats:
    """Cost counters of the last :meth:`ByteLevelLM.next_byte_proba_batch` call."""

    n_bytes: int = 0
    n_forward_calls: int = 0
    n_tokens_evaluated: int = 0
    n_canonical_tokens: int = 0
    max_beam: int = 0  # most hypotheses held for one text at one byte
    max_new_states: int = 0  # most new states (each costs an LM evaluation) kept at one byte
    seconds_lm: float = 0.0
    seconds_total: float = 0.0

    @property
    def calls_per_byte(self) -> float:
        return self.n_forward_calls / max(self.n_bytes, 1)
