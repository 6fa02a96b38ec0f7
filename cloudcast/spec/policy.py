"""What a policy rule's names mean: tags, nodes and sites resolved to the nodes they cover.

Shared by the cross-checks (`check.py`: unknown, ambiguous, empty and shadowed rules) and the
planner (`plan/policy.py`), so both read a rule the same way. Names compare case-insensitively,
as node names do; a node carries its own tags and its site's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cloudcast.spec.models import FlowProtocol, PortRange, Rule, Spec


class NameKind(StrEnum):
    TAG = "tag"
    NODE = "node"
    SITE = "site"


@dataclass(frozen=True, slots=True)
class Meaning:
    """What one name a rule may use stands for: the nodes (canonical names, spec order)."""

    kind: NameKind
    name: str  # as the spec spells it first
    nodes: tuple[str, ...]


def directory(spec: Spec) -> dict[str, list[Meaning]]:
    """Lower-cased name -> every meaning it has (more than one: ambiguous, unless they agree)."""
    tags: dict[str, tuple[str, list[str]]] = {}
    meanings: dict[str, list[Meaning]] = {}
    for site in spec.sites:
        meanings.setdefault(site.name.lower(), []).append(
            Meaning(NameKind.SITE, site.name, tuple(n.name for n in site.nodes))
        )
        for node in site.nodes:
            meanings.setdefault(node.name.lower(), []).append(Meaning(NameKind.NODE, node.name, (node.name,)))
            for tag in (*site.tags, *node.tags):
                _, members = tags.setdefault(tag.lower(), (tag, []))
                if not members or members[-1] != node.name:
                    members.append(node.name)
    for key, (spelled, members) in tags.items():
        meanings.setdefault(key, []).append(Meaning(NameKind.TAG, spelled, tuple(members)))
    return meanings


def node_tags(spec: Spec) -> dict[str, tuple[str, ...]]:
    """Node -> its tags (its own, then its site's; lower-cased, each once)."""
    return {
        node.name: tuple(dict.fromkeys(t.lower() for t in (*node.tags, *site.tags)))
        for site, node in spec.all_nodes()
    }


def resolve(names: list[str], table: dict[str, list[Meaning]]) -> tuple[str, ...]:
    """The nodes `names` cover (unknown names cover none; ambiguous ones every meaning)."""
    found: dict[str, None] = {}
    for name in names:
        for meaning in table.get(name.lower(), []):
            found.update(dict.fromkeys(meaning.nodes))
    return tuple(found)


def spans(rule: Rule) -> tuple[tuple[int, int], ...]:
    """The rule's ports as sorted, merged (first, last) spans; () for icmp."""
    if rule.protocol is FlowProtocol.ICMP:
        return ()
    raw = sorted((p.first, p.last) if isinstance(p, PortRange) else (p, p) for p in rule.ports)
    merged: list[tuple[int, int]] = []
    for first, last in raw:
        if first > last:
            continue  # refused by the checks
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(merged)


def covers(outer: tuple[tuple[int, int], ...], inner: tuple[tuple[int, int], ...]) -> bool:
    """Every port of `inner` is in `outer` (both merged spans)."""
    return all(any(a <= first and last <= b for a, b in outer) for first, last in inner)
