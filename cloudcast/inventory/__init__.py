"""Stage 4: the list of reachable hosts."""

from cloudcast.inventory.hosts import Host, Inventory, build_inventory

__all__ = ["Host", "Inventory", "build_inventory"]
