"""Views of a plan as a picture: sites, nodes, tunnels, gateways, relays and the policy (Graphviz)."""

from cloudcast.graph.draw import FORMATS, Live, TunnelState, draw, live_from_status, write_graph

__all__ = ["FORMATS", "Live", "TunnelState", "draw", "live_from_status", "write_graph"]
