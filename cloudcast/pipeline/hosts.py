"""From Terraform outputs to the inventory of reachable hosts."""

from __future__ import annotations

from pathlib import Path

from cloudcast.inventory import Inventory, build_inventory
from cloudcast.pipeline.context import Context
from cloudcast.plan.model import NetworkPlan
from cloudcast.terraform.runner import Terraform


def lab_key(ctx: Context) -> Path | None:
    """The lab's controller key, when the spec has lab sites."""
    if not ctx.has_lab_sites():
        return None
    from cloudcast import lab

    return lab.controller_key(ctx.lab_prefix)


def inventory(ctx: Context, plan: NetworkPlan, tf: Terraform) -> Inventory:
    """Read Terraform's outputs and join them with static nodes."""
    outputs = tf.outputs() if tf.workdir.joinpath("main.tf.json").exists() else {}
    return build_inventory(ctx.spec, plan, outputs, lab_key=lab_key(ctx))
