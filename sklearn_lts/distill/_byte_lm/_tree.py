"""Growing a text's token tree: children, canonical continuations, what still needs the LM."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from ._state import Node
from ._tokenize import greedy_ids
from ._vocab import Vocabulary

__all__ = ["child", "spine", "unevaluated"]


def child(node: Node, token: int, vocab: Vocabulary) -> Node:
    """The child of ``node`` by ``token`` (created on first use)."""
    ch = node.children.get(token)
    if ch is None:
        text = node.text
        nxt = node.canon + 1
        on_path = node.on_canonical_path and nxt < len(text.canon) and text.canon[nxt] == token
        ch = Node(node, token, node.depth + 1, text, node.offset + len(vocab.tb.token_bytes[token]),
                  canon=nxt if on_path else -1)
        node.children[token] = ch
    return ch


def spine(node: Node, length: int, vocab: Vocabulary) -> list[Node]:
    """Node plus its likely continuation: ``length`` tokens of canonical tokenization.

    Off the canonical path, that is the greedy tokenization of the rest of the canonical token
    the node ends in, then the canonical tokens after it.
    """
    text = node.text
    toks: list[int] = []
    if node.on_canonical_path:
        canon_start = node.canon + 1
    else:
        k = bisect.bisect_left(text.bounds, node.offset)
        if not (k < len(text.bounds) and text.bounds[k] == node.offset):
            end = text.bounds[k] if k < len(text.bounds) else len(text.x)
            toks = greedy_ids(vocab, text.x, node.offset, end, limit=length)
        canon_start = k + 1
    toks = toks + text.canon[canon_start : canon_start + max(0, length - len(toks))]
    out = [node]
    for t in toks[:length]:
        out.append(child(out[-1], t, vocab))
    return out


def unevaluated(nodes: Iterable[Node]) -> list[Node]:
    """The nodes and their ancestors that are not evaluated yet, once each, parents first."""
    seen: set[int] = set()
    todo: list[Node] = []
    for node in nodes:
        chain = []
        while node is not None and node.slot is None and id(node) not in seen:
            seen.add(id(node))
            chain.append(node)
            node = node.parent
        todo.extend(reversed(chain))
    todo.sort(key=lambda n: n.depth)  # stable: parents first, in request order
    return todo
