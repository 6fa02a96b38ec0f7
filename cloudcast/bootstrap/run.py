"""The bootstrap stage's entry points: `bootstrap` (converge every host) and `teardown`.

Phase 1, per host in parallel: connect, gather facts, install what is missing, make the key
pair on the host; its public key comes back. Phase 2, once every key is known: render each
host's files and apply them. A host that fails phase 1 keeps its old config, and its peers
keep talking to it with its last known public key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cloudcast.bootstrap.actions import (
    Action,
    apply_actions,
    prepare_actions,
    renew_script,
    teardown_actions,
)
from cloudcast.bootstrap.desired import Desired, IpsecCert, desired_state
from cloudcast.bootstrap.execute import StepFailed, execute
from cloudcast.bootstrap.facts import Facts, facts_script, parse_facts
from cloudcast.bootstrap.fanout import fan_out
from cloudcast.bootstrap.paths import Paths
from cloudcast.bootstrap.transport import ConnectError, SSHOptions, SSHTransport, Transport
from cloudcast.errors import BootstrapError, CloudcastError
from cloudcast.inventory.hosts import Host, Inventory
from cloudcast.plan.model import NetworkPlan, NodePlan
from cloudcast.state.store import Secrets, State, WorkDir

STAGE = "bootstrap"


class Reporter(Protocol):
    def event(self, host: str, stage: str, message: str) -> None: ...


class _Quiet:
    def event(self, host: str, stage: str, message: str) -> None:
        return None


Connector = Callable[[Host], Transport]
#: re-plan with these nodes known to be down (see `build_plan(down=...)`)
Replanner = Callable[[frozenset[str]], NetworkPlan]


@dataclass
class HostResult:
    name: str
    ok: bool
    actions: list[str] = field(default_factory=list)
    error: str | None = None
    public_key: str | None = None
    seconds: float = 0.0
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "actions": list(self.actions),
            "error": self.error,
            "public_key": self.public_key,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class BootstrapResult:
    hosts: list[HostResult]
    public_keys: dict[str, str] = field(default_factory=dict)  # gathered this run: store in state
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    plan: NetworkPlan | None = None  # the plan applied: re-planned when a gateway or hub is down
    down: tuple[str, ...] = ()  # nodes that could not be reached (and were planned around)

    @property
    def failed(self) -> list[HostResult]:
        return [h for h in self.hosts if not h.ok]

    @property
    def changed(self) -> list[HostResult]:
        return [h for h in self.hosts if h.actions]

    @property
    def ok(self) -> bool:
        return not self.failed

    def host(self, name: str) -> HostResult:
        return next(h for h in self.hosts if h.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hosts": [h.to_dict() for h in self.hosts],
            "public_keys": dict(sorted(self.public_keys.items())),
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Session:
    """One host during a run."""

    node: NodePlan
    host: Host
    transport: Transport | None = None
    facts: Facts | None = None
    actions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: BaseException | None = None
    desired: Desired | None = None
    deferred: list[Action] = field(default_factory=list)  # run once every host has converged


def connector(workdir: WorkDir, known_hosts: Path | None = None, **options: float) -> Connector:
    """The real connector: Paramiko; host keys recorded in the work dir, or strict."""
    opts = SSHOptions(known_hosts=workdir.ensure().known_hosts, strict_known_hosts=known_hosts, **options)
    return lambda host: SSHTransport.connect(host, opts)


def gather(transport: Transport, paths: Paths, *, ipsec: bool = False) -> Facts:
    """Facts of one host in one round trip."""
    result = transport.run("sh -s", stdin=facts_script(paths, ipsec=ipsec).encode(), timeout=60.0)
    if not result.ok:
        raise BootstrapError(f"cannot gather facts: {result.tail()}")
    return parse_facts(result.stdout)


def _message(exc: BaseException) -> str:
    if isinstance(exc, CloudcastError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _sessions(
    plan: NetworkPlan, inventory: Inventory, only: Collection[str] | None
) -> tuple[list[_Session], list[HostResult]]:
    known = {h.name: h for h in inventory.hosts}
    sessions, missing = [], []
    for node in plan.nodes:
        if only is not None and node.name not in only:
            continue
        if node.name in known:
            sessions.append(_Session(node, known[node.name]))
        else:
            missing.append(
                HostResult(node.name, ok=False, error="not in the inventory (no address to reach it)")
            )
    return sessions, missing


def _run_step(s: _Session, actions: list[Action], reporter: Reporter) -> None:
    assert s.transport is not None
    try:
        done = execute(s.transport, actions)
    except StepFailed as exc:
        s.actions += [a.description for a in exc.done]
        raise
    s.actions += [a.description for a in done]
    for action in done:
        reporter.event(s.node.name, STAGE, action.description)


def _timed(s: _Session, fn: Callable[[], None], reporter: Reporter) -> _Session:
    start = time.monotonic()
    try:
        fn()
    except Exception as exc:
        s.error = exc
        reporter.event(s.node.name, STAGE, f"failed: {_message(exc)}")
        if s.transport is not None:
            s.transport.close()
            s.transport = None
        raise
    finally:
        s.seconds += time.monotonic() - start
    return s


def _result(s: _Session, public_key: str | None) -> HostResult:
    err = s.error
    return HostResult(
        name=s.node.name,
        ok=err is None,
        actions=list(s.actions),
        error=None if err is None else _message(err),
        public_key=public_key,
        seconds=s.seconds,
        hint=err.hint if isinstance(err, CloudcastError) else None,
    )


def bootstrap(
    plan: NetworkPlan,
    inventory: Inventory,
    secrets: Secrets,
    state: State,
    workdir: WorkDir,
    *,
    parallel: int = 32,
    known_hosts: Path | None = None,
    connect_budget: float = 60.0,
    reporter: Reporter | None = None,
    connect: Connector | None = None,
    replan: Replanner | None = None,
) -> BootstrapResult:
    """Converge every host of `plan` (see the module docstring); never raises for one host.

    `connect_budget`: seconds to keep retrying a host whose SSH is not up yet (new VMs).
    `known_hosts`: strict mode, the spec's `ssh.known_hosts` (unknown hosts are refused).
    `replan`: when a gateway or hub cannot be reached in phase 1 and its site (or the network)
    has another one, phase 2 applies the plan `replan(down)` makes: the live one takes over.
    """
    if plan.transport not in ("wireguard", "ipsec"):
        raise BootstrapError(f"transport {plan.transport!r} is not supported by the bootstrapper")
    ipsec = plan.transport == "ipsec"
    certs = ipsec and plan.ipsec_auth == "certificates"
    rep = reporter or _Quiet()
    conn = connect or connector(workdir, known_hosts, connect_budget=connect_budget)
    paths = Paths(plan.interface)
    started = time.monotonic()
    sessions, results = _sessions(plan, inventory, None)

    def prepare(s: _Session) -> _Session:
        def body() -> None:
            s.transport = conn(s.host)
            rep.event(s.node.name, STAGE, "connected")
            s.facts = gather(s.transport, paths, ipsec=ipsec)
            actions = prepare_actions(s.facts, paths, vpn=s.node.vpn, transport=plan.transport, certs=certs)
            if actions:
                _run_step(s, actions, rep)
                s.facts = gather(s.transport, paths, ipsec=ipsec)
            if s.node.vpn and not ipsec and not s.facts.public_key:
                raise BootstrapError("the WireGuard key pair is missing after generating it")
            if s.node.vpn and certs and not s.facts.ipsec_public_key:
                raise BootstrapError("the IPsec key pair is missing after generating it")

        return _timed(s, body, rep)

    fan_out(sessions, prepare, key=lambda s: s.node.name, parallel=parallel)
    gathered = {s.node.name: s.facts.public_key for s in sessions if s.facts and s.facts.public_key}
    keys = {**state.public_keys, **gathered}
    warnings = [
        f"{s.node.name} failed; its peers keep its last known key"
        for s in sessions
        if s.error is not None and s.node.vpn and s.node.name in keys and not ipsec
    ]
    down = frozenset(s.node.name for s in sessions if isinstance(s.error, ConnectError))
    if replan is not None and down & _carriers(plan):
        plan = replan(down)
        by_name = {n.name: n for n in plan.nodes}
        for s in sessions:
            s.node = by_name[s.node.name]
        for note in plan.warnings:
            if " is down: " in note:
                rep.event("", STAGE, note)
                warnings.append(note)

    issued = _issue_certs(sessions, secrets, state) if certs else {}

    def converge(s: _Session) -> _Session:
        def body() -> None:
            assert s.facts is not None and s.transport is not None
            if certs and s.node.vpn and s.node.name not in issued:
                raise BootstrapError("no IPsec certificate for this gateway (its key pair is missing)")
            desired = desired_state(
                plan,
                s.node,
                inventory,
                keys,
                secrets.psk,
                systemd=s.facts.systemd,
                userspace=not s.facts.kernel_wg,
                kernel_esp=s.facts.kernel_esp,
                cert=issued.get(s.node.name),
            )
            s.desired = desired
            for peer in desired.left_out:
                rep.event(s.node.name, STAGE, f"peer {peer} left out: its public key is not known yet")
            actions = apply_actions(desired, s.facts)
            # failover agents start last: probing a primary whose tunnel is not configured yet
            # would cost a first handshake, and WireGuard retries one only after 5 s
            s.deferred = [a for a in actions if a.kind == "failover"]
            now = [a for a in actions if a.kind != "failover"]
            if now:
                _run_step(s, now, rep)
            count = len(s.actions) + len(s.deferred)
            rep.event(s.node.name, STAGE, f"{count} changes" if count else "up to date")

        return _timed(s, body, rep)

    try:
        fan_out(
            [s for s in sessions if s.error is None],
            converge,
            key=lambda s: s.node.name,
            parallel=parallel,
        )
        if ipsec:
            _renew_sas(sessions, rep, parallel)
        _run_deferred(sessions, rep, parallel)
    finally:
        for s in sessions:
            if s.transport is not None:
                s.transport.close()
    results += [_result(s, gathered.get(s.node.name)) for s in sessions]
    order = {n.name: i for i, n in enumerate(plan.nodes)}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    return BootstrapResult(
        results, gathered, warnings, time.monotonic() - started, plan=plan, down=tuple(sorted(down))
    )


def _issue_certs(sessions: list[_Session], secrets: Secrets, state: State) -> dict[str, IpsecCert]:
    """Certificates for the gateways' public keys (kept ones reused); a node that fails is marked."""
    from cloudcast.bootstrap.pki import issue  # cryptography's x509: only for certificate auth

    issued: dict[str, IpsecCert] = {}
    for s in sessions:
        if s.error is None and s.node.vpn and s.facts is not None and s.facts.ipsec_public_key:
            try:
                pem = issue(secrets, state, s.node.name, s.node.fqdn, s.facts.ipsec_public_key)
            except BootstrapError as exc:
                s.error = exc
                continue
            issued[s.node.name] = IpsecCert(pem, state.ca_cert)
    return issued


def _run_deferred(sessions: list[_Session], rep: Reporter, parallel: int) -> None:
    """The actions kept for after every host converged (starting failover agents)."""

    def run(s: _Session) -> _Session:
        return _timed(s, lambda: _run_step(s, s.deferred, rep), rep)

    todo = [s for s in sessions if s.error is None and s.deferred]
    fan_out(todo, run, key=lambda s: s.node.name, parallel=parallel)


def _renew_sas(sessions: list[_Session], rep: Reporter, parallel: int) -> None:
    """Peers of a node whose charon (re)started hold SAs it forgot: their starting side renews them.

    (A fresh IKE SA carries INITIAL_CONTACT, so the restarted side drops nothing it still
    needs; without this, the stale SAs would only go after dead-peer detection, ~30 s.)
    """
    restarted = {
        s.node.name for s in sessions if s.error is None and any("start charon" in a for a in s.actions)
    }
    if not restarted:
        return

    def renew(s: _Session) -> _Session:
        def body() -> None:
            assert s.desired is not None
            conns = [c for c in s.desired.conns if c.initiator and c.peer in restarted]
            actions = [
                Action("sas", f"renew the SAs with {c.peer} (its charon restarted)", renew_script(c))
                for c in conns
            ]
            _run_step(s, actions, rep)

        return _timed(s, body, rep)

    todo = [
        s
        for s in sessions
        if s.error is None
        and s.desired is not None
        and any(c.initiator and c.peer in restarted for c in s.desired.conns)
    ]
    fan_out(todo, renew, key=lambda s: s.node.name, parallel=parallel)


def _carriers(plan: NetworkPlan) -> set[str]:
    """Gateways and hubs another node could take over from (a second one in the site or network)."""
    out: set[str] = set()
    for site in plan.sites:
        if len(site.gateways) > 1:
            out.update(site.gateways)
    hubs = [n.name for n in plan.nodes if n.role == "hub"]
    if len(hubs) > 1:
        out.update(hubs)
    # a relay for NAT-to-NAT pairs is replaced by the next public node
    out.update(w.rsplit(" ", 1)[-1] for w in plan.warnings if " relayed through " in w)
    return out


def teardown(
    plan: NetworkPlan,
    inventory: Inventory,
    workdir: WorkDir,
    *,
    only: Collection[str] | None = None,
    parallel: int = 32,
    known_hosts: Path | None = None,
    connect_budget: float = 60.0,
    reporter: Reporter | None = None,
    connect: Connector | None = None,
) -> BootstrapResult:
    """Remove the interface, files, hosts block, firewall table and routes cloudcast made."""
    rep = reporter or _Quiet()
    conn = connect or connector(workdir, known_hosts, connect_budget=connect_budget)
    paths = Paths(plan.interface)
    started = time.monotonic()
    sessions, results = _sessions(plan, inventory, only)

    def clean(s: _Session) -> _Session:
        def body() -> None:
            s.transport = conn(s.host)
            s.facts = gather(s.transport, paths, ipsec=plan.transport == "ipsec")
            # no secrets are needed to take things down: placeholders stand in for the PSKs
            desired = desired_state(plan, s.node, inventory, {}, dict.fromkeys(plan.pairs(), ""))
            actions = teardown_actions(desired, s.facts)
            if actions:
                _run_step(s, actions, rep)
            rep.event(s.node.name, STAGE, "removed" if actions else "nothing to remove")
            s.transport.close()
            s.transport = None

        return _timed(s, body, rep)

    fan_out(sessions, clean, key=lambda s: s.node.name, parallel=parallel)
    results += [_result(s, None) for s in sessions]
    return BootstrapResult(results, {}, [], time.monotonic() - started)
