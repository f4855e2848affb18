"""The subscription index: a trie over dotted type segments, per tenant.

Routing an event walks at most a few branches per segment of its type (the literal segment,
``*`` and ``#``), so its cost grows with the number of *matching* subscriptions, not with the
number of connections. A subscription whose filter names several type patterns is indexed under
each of them; one without type patterns is indexed under ``#``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from tidings.envelope.types import split_pattern

K = TypeVar("K", bound=Hashable)


class _Node(Generic[K]):
    __slots__ = ("children", "here", "rest")

    def __init__(self) -> None:
        self.children: dict[str, _Node[K]] = {}  # by literal segment, and "*"
        self.rest: set[K] = set()  # subscribed with "#" at this depth
        self.here: set[K] = set()  # subscribed with a pattern that ends at this node


class SubscriptionIndex(Generic[K]):
    """Maps type patterns to subscriber keys and answers "who wants this type?"."""

    def __init__(self) -> None:
        self._roots: dict[str, _Node[K]] = {}  # by tenant
        # The split patterns each key registered, to find its entries again on removal.
        self._patterns: dict[tuple[str, K], tuple[tuple[str, ...], ...]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, tenant: str, key: K, patterns: Iterable[str]) -> None:
        """Index ``key`` under every pattern (no patterns means every type)."""
        if (tenant, key) in self._patterns:
            raise KeyError(f"{key!r} is already subscribed")
        wanted = tuple(dict.fromkeys(patterns)) or ("#",)
        # Split every pattern before indexing any: an invalid one must leave nothing behind.
        paths = tuple(split_pattern(pattern) for pattern in wanted)
        root = self._roots.setdefault(tenant, _Node())
        for segments in paths:
            node = root
            for segment in segments:
                if segment == "#":
                    node.rest.add(key)
                    break
                node = node.children.setdefault(segment, _Node())
            else:
                node.here.add(key)
        self._patterns[(tenant, key)] = paths
        self._count += 1

    def remove(self, tenant: str, key: K) -> None:
        paths = self._patterns.pop((tenant, key), None)
        if paths is None:
            return
        self._count -= 1
        root = self._roots[tenant]
        for segments in paths:
            self._remove_path(root, segments, key)
        if _empty(root):
            del self._roots[tenant]

    def _remove_path(self, node: _Node[K], segments: tuple[str, ...], key: K) -> None:
        path: list[tuple[_Node[K], str]] = []
        for segment in segments:
            if segment == "#":
                node.rest.discard(key)
                break
            path.append((node, segment))
            node = node.children[segment]
        else:
            node.here.discard(key)
        for parent, segment in reversed(path):  # prune branches that no longer lead anywhere
            child = parent.children[segment]
            if _empty(child):
                del parent.children[segment]

    def match(self, tenant: str, event_type: str) -> set[K]:
        """Every key with a pattern matching ``event_type``."""
        root = self._roots.get(tenant)
        if root is None:
            return set()
        found: set[K] = set()
        segments = event_type.split(".")
        frontier = [root]
        for segment in segments:
            following: list[_Node[K]] = []
            for node in frontier:
                if node.rest:
                    found |= node.rest
                child = node.children.get(segment)
                if child is not None:
                    following.append(child)
                star = node.children.get("*")
                if star is not None:
                    following.append(star)
            if not following:
                return found
            frontier = following
        for node in frontier:
            found |= node.here
            found |= node.rest  # "a.#" matches "a" itself
        return found


def _empty(node: _Node[K]) -> bool:
    return not (node.children or node.rest or node.here)
