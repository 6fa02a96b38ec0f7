"""Stage 2: allocate addresses and decide peers (pure functions, no I/O)."""

from cloudcast.plan.build import build_plan
from cloudcast.plan.model import Allocations, Link, NetworkPlan, NodePlan, pair_id

__all__ = ["Allocations", "Link", "NetworkPlan", "NodePlan", "build_plan", "pair_id"]
