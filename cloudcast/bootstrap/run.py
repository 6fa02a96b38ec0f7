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
from typing import Any

from cloudcast.bootstrap.actions import (
    Action,
    ActionKind,
    apply_actions,
    prepare_actions,
    renew_action,
    teardown_actions,
)
from cloudcast.bootstrap.desired import Desired, IpsecCert, desired_state
from cloudcast.bootstrap.execute import StepFailed, execute
from cloudcast.bootstrap.facts import Facts, facts_script, parse_facts
from cloudcast.bootstrap.paths import Paths
from cloudcast.errors import BootstrapError, CloudcastError
from cloudcast.events import Reporter
from cloudcast.inventory.hosts import Host, Inventory
from cloudcast.plan.model import NetworkPlan, NodePlan
from cloudcast.ssh import ConnectError, Fleet, Transport, describe
from cloudcast.state.store import Secrets, State

STAGE = "bootstrap"


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
    actions: list[Action] = field(default_factory=list)  # done so far
    seconds: float = 0.0
    error: BaseException | None = None
    desired: Desired | None = None
    deferred: list[Action] = field(default_factory=list)  # run once every host has converged


def gather(transport: Transport, paths: Paths, *, ipsec: bool = False) -> Facts:
    """Facts of one host in one round trip."""
    result = transport.run("sh -s", stdin=facts_script(paths, ipsec=ipsec).encode(), timeout=60.0)
    if not result.ok:
        raise BootstrapError(f"cannot gather facts: {result.tail()}")
    return parse_facts(result.stdout)


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
        s.actions += exc.done
        raise
    s.actions += done
    for action in done:
        reporter.event(s.node.name, STAGE, action.description)


def _timed(s: _Session, fn: Callable[[], None], reporter: Reporter) -> _Session:
    start = time.monotonic()
    try:
        fn()
    except Exception as exc:
        s.error = exc
        reporter.event(s.node.name, STAGE, f"failed: {describe(exc)}")
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
        actions=[a.description for a in s.actions],
        error=None if err is None else describe(err),
        public_key=public_key,
        seconds=s.seconds,
        hint=err.hint if isinstance(err, CloudcastError) else None,
    )


@dataclass
class _Run:
    """What the steps of one bootstrap run share; `plan` is replaced when a carrier is planned around."""

    plan: NetworkPlan
    inventory: Inventory
    fleet: Fleet
    paths: Paths = field(init=False)

    def __post_init__(self) -> None:
        self.paths = Paths(self.plan.interface)

    @property
    def ipsec(self) -> bool:
        return self.plan.transport == "ipsec"

    @property
    def certs(self) -> bool:
        return self.ipsec and self.plan.ipsec_auth == "certificates"

    def prepare(self, s: _Session) -> _Session:
        """Phase 1 on one host: connect, gather facts, install what is missing, make its key pair."""
        paths, ipsec, certs, rep = self.paths, self.ipsec, self.certs, self.fleet.reporter

        def body() -> None:
            s.transport = self.fleet.connect(s.host)
            rep.event(s.node.name, STAGE, "connected")
            s.facts = gather(s.transport, paths, ipsec=ipsec)
            actions = prepare_actions(
                s.facts, paths, vpn=s.node.vpn, transport=self.plan.transport, certs=certs
            )
            if actions:
                _run_step(s, actions, rep)
                s.facts = gather(s.transport, paths, ipsec=ipsec)
            if s.node.vpn and not ipsec and not s.facts.public_key:
                raise BootstrapError("the WireGuard key pair is missing after generating it")
            if s.node.vpn and certs and not s.facts.ipsec_public_key:
                raise BootstrapError("the IPsec key pair is missing after generating it")

        return _timed(s, body, rep)

    def plan_around(self, plan: NetworkPlan, sessions: list[_Session]) -> list[str]:
        """Go on with `plan`, made with the carriers found down; returns its notes on them."""
        self.plan = plan
        by_name = {n.name: n for n in plan.nodes}
        for s in sessions:
            s.node = by_name[s.node.name]
        warnings = []
        for note in plan.down_hosts:
            self.fleet.reporter.event("", STAGE, str(note))
            warnings.append(str(note))
        return warnings

    def converge(
        self,
        sessions: list[_Session],
        keys: dict[str, str],
        psk: dict[str, str],
        issued: dict[str, IpsecCert],
    ) -> None:
        """Phase 2 on every host phase 1 left healthy; then renew SAs and run deferred actions."""

        def one(s: _Session) -> _Session:
            return _timed(s, lambda: self._converge(s, keys, psk, issued), self.fleet.reporter)

        self.fleet.fan_out([s for s in sessions if s.error is None], one, key=_name)
        if self.ipsec:
            _renew_sas(sessions, self.fleet)
        _run_deferred(sessions, self.fleet)

    def _converge(
        self, s: _Session, keys: dict[str, str], psk: dict[str, str], issued: dict[str, IpsecCert]
    ) -> None:
        assert s.facts is not None and s.transport is not None
        rep = self.fleet.reporter
        if self.certs and s.node.vpn and s.node.name not in issued:
            raise BootstrapError("no IPsec certificate for this gateway (its key pair is missing)")
        desired = desired_state(
            self.plan,
            s.node,
            self.inventory,
            keys,
            psk,
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
        s.deferred = [a for a in actions if a.kind is ActionKind.FAILOVER]
        now = [a for a in actions if a.kind is not ActionKind.FAILOVER]
        if now:
            _run_step(s, now, rep)
        count = len(s.actions) + len(s.deferred)
        rep.event(s.node.name, STAGE, f"{count} changes" if count else "up to date")


def _name(s: _Session) -> str:
    return s.node.name


def bootstrap(
    plan: NetworkPlan,
    inventory: Inventory,
    secrets: Secrets,
    state: State,
    fleet: Fleet,
    *,
    replan: Replanner | None = None,
    only: Collection[str] | None = None,
) -> BootstrapResult:
    """Converge every host of `plan` (or those in `only`: `-target`; see the module docstring);
    never raises for one host.

    `fleet`: how hosts are reached; its connector's settings say how long to keep retrying a
    host whose SSH is not up yet (new VMs) and whether unknown host keys are refused.
    `replan`: when a gateway or hub cannot be reached in phase 1 and its site (or the network)
    has another one, phase 2 applies the plan `replan(down)` makes: the live one takes over.
    """
    if plan.transport not in ("wireguard", "ipsec"):
        raise BootstrapError(f"transport {plan.transport!r} is not supported by the bootstrapper")
    started = time.monotonic()
    run = _Run(plan, inventory, fleet)
    sessions, results = _sessions(plan, inventory, only)
    fleet.fan_out(sessions, run.prepare, key=_name)
    gathered = {s.node.name: s.facts.public_key for s in sessions if s.facts and s.facts.public_key}
    keys = {**state.public_keys, **gathered}
    warnings = [
        f"{s.node.name} failed; its peers keep its last known key"
        for s in sessions
        if s.error is not None and s.node.vpn and s.node.name in keys and not run.ipsec
    ]
    down = frozenset(s.node.name for s in sessions if isinstance(s.error, ConnectError))
    if replan is not None and down & _carriers(plan):
        warnings += run.plan_around(replan(down), sessions)
    issued = _issue_certs(sessions, secrets, state) if run.certs else {}
    try:
        run.converge(sessions, keys, secrets.psk, issued)
    finally:
        for s in sessions:
            if s.transport is not None:
                s.transport.close()
    results += [_result(s, gathered.get(s.node.name)) for s in sessions]
    order = {n.name: i for i, n in enumerate(run.plan.nodes)}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    return BootstrapResult(
        results, gathered, warnings, time.monotonic() - started, plan=run.plan, down=tuple(sorted(down))
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


def _run_deferred(sessions: list[_Session], fleet: Fleet) -> None:
    """The actions kept for after every host converged (starting failover agents)."""
    rep = fleet.reporter

    def run(s: _Session) -> _Session:
        return _timed(s, lambda: _run_step(s, s.deferred, rep), rep)

    todo = [s for s in sessions if s.error is None and s.deferred]
    fleet.fan_out(todo, run, key=_name)


def _renew_sas(sessions: list[_Session], fleet: Fleet) -> None:
    """Peers of a node whose charon (re)started hold SAs it forgot: their starting side renews them.

    (A fresh IKE SA carries INITIAL_CONTACT, so the restarted side drops nothing it still
    needs; without this, the stale SAs would only go after dead-peer detection, ~30 s.)
    """
    restarted = {
        s.node.name
        for s in sessions
        if s.error is None and any(a.kind is ActionKind.CHARON for a in s.actions)
    }
    if not restarted:
        return
    rep = fleet.reporter

    def renew(s: _Session) -> _Session:
        def body() -> None:
            assert s.desired is not None
            conns = [c for c in s.desired.conns if c.initiator and c.peer in restarted]
            _run_step(s, [renew_action(c) for c in conns], rep)

        return _timed(s, body, rep)

    todo = [
        s
        for s in sessions
        if s.error is None
        and s.desired is not None
        and any(c.initiator and c.peer in restarted for c in s.desired.conns)
    ]
    fleet.fan_out(todo, renew, key=_name)


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
    out.update(plan.relays)
    return out


def teardown(
    plan: NetworkPlan,
    inventory: Inventory,
    fleet: Fleet,
    *,
    only: Collection[str] | None = None,
) -> BootstrapResult:
    """Remove the interface, files, hosts block, firewall table and routes cloudcast made."""
    rep = fleet.reporter
    paths = Paths(plan.interface)
    started = time.monotonic()
    sessions, results = _sessions(plan, inventory, only)

    def clean(s: _Session) -> _Session:
        def body() -> None:
            s.transport = fleet.connect(s.host)
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

    fleet.fan_out(sessions, clean, key=_name)
    results += [_result(s, None) for s in sessions]
    return BootstrapResult(results, {}, [], time.monotonic() - started)
