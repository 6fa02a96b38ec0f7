"""Stage 1: load and validate the user's spec."""

from cloudcast.spec.load import load_spec, parse_spec
from cloudcast.spec.models import Node, Provider, Role, Site, Spec, Topology, Transport
from cloudcast.spec.reader import read_document

__all__ = [
    "Node",
    "Provider",
    "Role",
    "Site",
    "Spec",
    "Topology",
    "Transport",
    "load_spec",
    "parse_spec",
    "read_document",
]
