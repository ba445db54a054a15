"""VocabTrie against brute force, on vocabularies that lack prefixes of their own tokens.

Byte-level BPE vocabularies hold every prefix of every token (each merge builds on tokens that
exist), so a trie bug that confuses "a token ends here" with "a token goes on here" stays
invisible with them. These vocabularies have gaps: ``b"abcd"`` without ``b"ab"`` or ``b"abc"``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_lts.distill import TokenBytes, VocabTrie


def _trie(tokens: list[bytes]) -> tuple[VocabTrie, list[bytes | None]]:
    table: list[bytes | None] = [None, *tokens]  # id 0: a special token
    return VocabTrie(TokenBytes(tuple(table), "plain")), table


def _brute_plan(table: list[bytes | None], text: bytes, start: int):
    """Depth, token ids ending at each level, and 'a token ends deeper' per level."""
    tokens = [(i, b) for i, b in enumerate(table) if b]
    rest = text[start:]
    depth = max((d for d in range(len(rest) + 1)
                 if any(b.startswith(rest[:d]) for _, b in tokens)), default=0)
    ends = [sorted(i for i, b in tokens if b == rest[:d]) for d in range(depth + 1)]
    after = [any(ends[e] for e in range(d + 1, depth + 1)) for d in range(depth + 1)]
    return depth, ends, after


def _check(tokens: list[bytes], text: bytes) -> None:
    trie, table = _trie(tokens)
    for start in range(len(text) + 1):
        plan = trie.path_plan(text, start)
        depth, ends, after = _brute_plan(table, text, start)
        assert plan.depth == depth, (start, plan.depth, depth)
        assert [sorted(e.tolist()) for e in plan.end_ids] == ends
        assert plan.has_end_after.tolist() == after, (start, plan.has_end_after, after)
        assert len(trie.path_nodes(text, start)) == depth + 1


def test_has_end_after_with_a_gap_in_the_prefixes():
    tokens = [b"a", b"b", b"c", b"d", b"abcd"]  # no b"ab", no b"abc"
    trie, _ = _trie(tokens)
    plan = trie.path_plan(b"abcde", 0)
    assert plan.depth == 4
    assert [e.size for e in plan.end_ids] == [0, 1, 0, 0, 1]
    # levels 2 and 3 end no token, but one ends deeper (at 4); level 4 is the last
    assert plan.has_end_after.tolist() == [True, True, True, True, False]
    _check(tokens, b"abcdabcabd")


def test_no_token_ends_after_a_dead_end():
    tokens = [b"a", b"b", b"abba"]
    trie, _ = _trie(tokens)
    plan = trie.path_plan(b"abbb", 0)  # "abb" is a node, but "abbb" is not: depth 3, no end
    assert plan.depth == 3
    assert plan.has_end_after.tolist() == [True, False, False, False]
    _check(tokens, b"abbbabba")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(min_size=2, max_size=5).map(lambda b: bytes(97 + x % 3 for x in b)),
             max_size=12, unique=True),
    st.binary(max_size=10).map(lambda b: bytes(97 + x % 3 for x in b)),
)
def test_path_plan_matches_brute_force(multi, text):
    """Random vocabularies over "abc" (single bytes plus multi-byte tokens with gaps)."""
    _check([b"a", b"b", b"c", *multi], text)


def test_node_is_a_named_record():
    trie, table = _trie([b"a", b"b", b"ab", b"abc"])
    node = trie.node(b"ab")
    assert node.hi - node.lo == 2 and node.n_end == 1
    assert node.child_bytes.tolist() == [ord("c")]
    assert int(trie.order[node.lo]) == table.index(b"ab")
    assert np.array_equal(node.child_starts, [node.lo + 1])
