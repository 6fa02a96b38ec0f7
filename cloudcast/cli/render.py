"""Human renderings of library results (kept out of the library)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from cloudcast.pipeline.summary import PlanSummary

if TYPE_CHECKING:
    from cloudcast.pipeline.apply import DestroyPreview


def print_destroy(console: Console, preview: DestroyPreview, *, max_resources: int = 40) -> None:
    """What `destroy` removes, before it asks."""
    if preview.empty:
        console.print(f"[bold]Nothing to destroy[/] for {preview.network}: no resources, no static hosts.")
        return
    console.print(f"[bold]Destroy {preview.network}:[/] {len(preview.resources)} Terraform resources")
    for addr in preview.resources[:max_resources]:
        console.print(f"  [red]-[/] {addr}", highlight=False)
    if len(preview.resources) > max_resources:
        console.print(f"  … and {len(preview.resources) - max_resources} more")
    if preview.machines:
        console.print(f"machines destroyed: {', '.join(preview.machines)}", highlight=False)
    if preview.cleaned:
        console.print(
            f"static hosts cleaned (tunnel, files, names, firewall removed): {', '.join(preview.cleaned)}",
            highlight=False,
        )


def print_plan(console: Console, summary: PlanSummary, *, max_resources: int = 12) -> None:
    """Resources per site, nodes with their overlay addresses, peers, and host-side changes."""
    plan = summary.plan
    add, change, destroy = summary.counts()
    console.print(f"[bold]Terraform:[/] {add} to add, {change} to change, {destroy} to destroy")
    for site in plan.sites:
        c = summary.sites.get(site.name)
        where = ", ".join(x for x in (site.provider, site.region or "", site.cidr) if x)
        if c is None or c.empty:
            console.print(f"  site {site.name} ({where}): no changes")
            continue
        console.print(f"  site {site.name} ({where}): +{len(c.add)} ~{len(c.change)} -{len(c.destroy)}")
        rows = [("+", a) for a in c.add] + [("~", a) for a in c.change] + [("-", a) for a in c.destroy]
        for sign, addr in rows[:max_resources]:
            style = {"+": "green", "~": "yellow", "-": "red"}[sign]
            console.print(f"      [{style}]{sign}[/] {addr}", highlight=False)
        if len(rows) > max_resources:
            console.print(f"      … and {len(rows) - max_resources} more")
    table = Table(
        title=f"Nodes — overlay {plan.overlay}, {plan.transport}, {plan.topology}, MTU {plan.mtu}",
        title_justify="left",
    )
    for col in ("node", "site", "overlay", "name", "role", "nat", "peers"):
        table.add_column(col)
    for n in plan.nodes:
        peers = len(n.peers) if n.vpn else f"via {n.gateway}"
        table.add_row(n.name, n.site, n.overlay_ip, n.fqdn, n.role, n.behind_nat, str(peers))
    console.print(table)
    console.print(f"{len(plan.pairs())} peered pairs, one preshared key each")
    if plan.services:
        for svc in plan.services:
            console.print(
                f"service {svc.name}: {svc.node} {svc.protocol}/{svc.port} at {svc.overlay_ip} (overlay only)"
            )
    if summary.hosts:
        counted = "" if summary.include_hosts else " (not counted: --skip-bootstrap)"
        console.print(f"[bold]Hosts{counted}:[/]")
        for h in summary.hosts:
            sign = {"add": "[green]+[/]", "remove": "[red]-[/]", "update": "[yellow]~[/]"}[h.kind]
            console.print(f"  {sign} {h.node}: {'; '.join(h.details)}", highlight=False)
    else:
        console.print("Hosts: no changes")
    for route in summary.routes:
        console.print(f"  route {route}", highlight=False)
    for warning in plan.warnings:
        console.print(f"[yellow]note:[/] {warning}", highlight=False)
    if summary.has_changes:
        hosts = len(summary.hosts) if summary.include_hosts else 0
        console.print(
            f"[bold]Plan:[/] {add} to add, {change} to change, {destroy} to destroy; "
            f"{hosts} hosts to configure."
        )
    else:
        console.print("[bold]No changes.[/] The network matches the spec.")
