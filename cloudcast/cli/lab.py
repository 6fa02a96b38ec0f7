"""`cloudcast lab ...`: build, inspect and remove the local lab of simulated hosts."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from cloudcast import lab
from cloudcast.cli.env import Environment
from cloudcast.cli.jsonout import emit
from cloudcast.errors import ExitStatus
from cloudcast.lab.models import LabHost, LabStatus

_DESCRIPTION = """\
The local lab: hosts simulated on this machine, no cloud account needed.

Each host is a set of Linux namespaces with its own sshd (PID 1), /etc, /var, /root, /run
and /tmp, reachable from here over SSH as root with the lab's controller key. The hosts sit on
a simulated internet in 198.18.0.0/15 that has no uplink: this machine gets one link into it
(<prefix>0, 198.18.0.2) and a route to that range, nothing else. Hosts can sit behind NAT
(LAN 100.64.N.0/24) or double NAT (100.64.N.0/24, then 100.65.N.0/24); their routers forward
tcp/22 inward so SSH to the public IP still works, and let nothing else in unsolicited.

A host can also be a virtual machine (--machine vm): a QEMU guest with its own kernel and
systemd, booted from a fresh Debian 12 cloud image (`lab image build`, cached) with its SSH key
from a cloud-init seed, on the same links (its NICs are taps inside the host's namespace). VMs
install packages from the lab's mirror host (198.18.0.3), which serves the image's repository.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN). Several labs are kept apart by a prefix
(--prefix or $CLOUDCAST_LAB_PREFIX, default `cclab`); only one at a time can be up, since
they share the address range."""

_EPILOG = """\
examples:
  cloudcast lab up --hosts 5 --nat 1 --double-nat 1
        host1-host3 public, host4 behind NAT, host5 behind double NAT
  cloudcast lab status
  ssh -i /run/cloudcast/lab-cclab/id_ed25519 root@198.19.0.11
  cloudcast lab host-up edge1 --ip 198.19.1.5 --nat nat --lan-index 7
  cloudcast lab host-up gw1 --ip 198.19.1.6 --lan office --lan-ip 10.1.0.10/24
  cloudcast lab image build                 the VM image (once; cached by its recipe)
  cloudcast lab host-up vm1 --ip 198.19.1.7 --machine vm
  cloudcast lab host-reboot vm1             a real guest reboot; prints the seconds it took
  cloudcast lab host-down edge1
  cloudcast lab down                        remove every host, router, link and file

A `lab` site in a cloudcast spec makes its hosts through Terraform (module tf/lab), which
calls `lab host-up` and `lab host-down` for you."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `lab` and its subcommands to the top-level parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--prefix",
        metavar="PREFIX",
        help=f"which lab (default: ${lab.PREFIX_ENV}, else `{lab.DEFAULT_PREFIX}`); "
        "1-11 lowercase letters and digits",
    )
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument(
        "-json", "--json", action="store_true", help="one JSON record on stdout (`cloudcast schema --events`)"
    )

    parser = sub.add_parser(
        "lab",
        help="build, inspect and remove the local lab of simulated hosts",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")
    commands.required = True

    up = commands.add_parser(
        "up",
        parents=[common, json_flag],
        help="create the lab internet and hosts host1..hostN",
        description=(
            "Create the lab's simulated internet and the hosts host1..hostN (host i gets the "
            "public IP 198.19.0.(10+i)). The last --nat + --double-nat of them sit behind NAT: "
            "first the --nat ones, then the --double-nat ones. Safe to repeat: existing hosts "
            "are kept as they are, dead ones restarted; `up` never removes a host."
        ),
        epilog="example: cloudcast lab up --hosts 5 --nat 1 --double-nat 1  "
        "(host4 behind NAT, host5 behind double NAT)",
    )
    up.add_argument("--hosts", type=_count, default=0, metavar="N", help="hosts in all (0)")
    up.add_argument("--nat", type=_count, default=0, metavar="K", help="of them behind NAT (0)")
    up.add_argument("--double-nat", type=_count, default=0, metavar="M", help="of them behind double NAT (0)")
    up.set_defaults(func=_up)

    down = commands.add_parser(
        "down",
        parents=[common, json_flag],
        help="remove the whole lab",
        description=(
            "Remove everything of the lab: hosts and their processes, NAT routers, the "
            "internet, this machine's link into it, mounts and the state dir. Works from what "
            "it finds on the system, so it also cleans up after a crash."
        ),
    )
    down.set_defaults(func=_down)

    status = commands.add_parser(
        "status",
        parents=[common, json_flag],
        help="list the lab's hosts and whether they run",
        description="List the lab's hosts: addresses, NAT, where to SSH, and whether sshd runs.",
    )
    status.set_defaults(func=_status)

    host_up = commands.add_parser(
        "host-up",
        parents=[common, json_flag],
        help="create (or check) one host",
        description=(
            "Create one lab host, or leave it as it is when it already exists with the same "
            "IP, NAT mode, LAN index and site LAN (a dead one is restarted). A change of any of "
            "these rebuilds the host from scratch. Creates the lab internet when missing. "
            "With --lan, the host also gets `lan0` on a site LAN: a bridge (namespace "
            "<prefix>-lan.NAME) shared by every host given the same NAME, made with the first "
            "host and removed with the last."
        ),
        epilog="example: cloudcast lab host-up edge1 --ip 198.19.1.5 --nat double --lan-index 3",
    )
    host_up.add_argument("name", metavar="NAME", help="host name (also its hostname)")
    host_up.add_argument(
        "--ip",
        required=True,
        metavar="IP",
        help="public IP in 198.18.0.0/15 (not 198.18.0.1 or 198.18.0.2)",
    )
    host_up.add_argument(
        "--nat",
        choices=("none", "nat", "double"),
        default="none",
        help="none: the host holds its public IP; nat: behind one NAT router (host at "
        "100.64.N.2); double: behind two (host at 100.65.N.2) (default: none)",
    )
    host_up.add_argument(
        "--lan-index",
        type=int,
        metavar="N",
        help="N (1-254) of the host's LAN behind NAT; default: the lowest one free",
    )
    host_up.add_argument(
        "--lan",
        metavar="NAME",
        default="",
        help="also plug the host into site LAN NAME (a bridge shared by the site's hosts) as "
        "`lan0`; eth0 stays on the internet for SSH (needs --lan-ip)",
    )
    host_up.add_argument(
        "--lan-ip",
        metavar="A.B.C.D/LEN",
        default="",
        help="the host's address on that LAN, with the LAN's prefix length, e.g. 10.1.0.10/24",
    )
    host_up.add_argument(
        "--machine",
        choices=("namespace", "vm"),
        default="namespace",
        help="namespace: namespaces on this machine with sshd as PID 1; vm: a QEMU guest of the "
        "lab image with its NICs on the host's links (returns once SSH logs in) (default: namespace)",
    )
    host_up.add_argument(
        "--authorized-key",
        action="append",
        default=[],
        metavar="KEY",
        help="an extra public key (OpenSSH line) allowed to log in as root; repeatable",
    )
    host_up.set_defaults(func=_host_up)

    host_down = commands.add_parser(
        "host-down",
        parents=[common, json_flag],
        help="remove one host",
        description="Remove one host: its processes, namespaces, NAT routers and files. "
        "A host that does not exist is not an error.",
    )
    host_down.add_argument("name", metavar="NAME", help="host name")
    host_down.set_defaults(func=_host_down)

    reboot = commands.add_parser(
        "host-reboot",
        parents=[common, json_flag],
        help="reboot a VM host from inside and wait until SSH is back",
        description="Reboot a VM host the way an operator would (`systemctl reboot` in the "
        "guest) and wait until it answers SSH with a new boot id; prints the seconds it took.",
    )
    reboot.add_argument("name", metavar="NAME", help="host name (a --machine vm host)")
    reboot.set_defaults(func=_host_reboot)

    image = commands.add_parser(
        "image",
        help="the VM hosts' image",
        description="The image VM hosts boot: Debian 12 with systemd, sshd, cloud-init and the "
        "cloud kernel, but none of what cloudcast installs; and the package repository the lab's "
        "mirror host serves to VMs.",
    )
    image_commands = image.add_subparsers(dest="image_command", metavar="IMAGE_COMMAND")
    image_commands.required = True
    build = image_commands.add_parser(
        "build",
        parents=[json_flag],
        help="build the image unless its recipe is cached",
        description="debootstrap the image from Debian's packages, make its raw disk and the "
        "package mirror, cached under $CLOUDCAST_IMAGE_CACHE (default /var/cache/cloudcast/"
        "images) in a directory named after a hash of the recipe: rebuilt only when the "
        "recipe changes (or with --force). Takes a few minutes; needs root and Debian's mirror.",
    )
    build.add_argument("--force", action="store_true", help="rebuild even when the recipe is cached")
    build.set_defaults(func=_image_build)
    show = image_commands.add_parser(
        "status", parents=[json_flag], help="where the current recipe's image is, and whether it is built"
    )
    show.set_defaults(func=_image_status)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def _prefix(args: argparse.Namespace, env: Environment) -> str:
    value = args.prefix or env.environ.get(lab.PREFIX_ENV) or lab.DEFAULT_PREFIX
    return str(value)


def _print_json(env: Environment, kind: str, data: Any) -> None:
    """One `lab.KIND` record in the cloudcast/v1 envelope (`cloudcast schema --events`)."""
    emit(env.out, f"lab.{kind}", data)


_STATE_STYLE = {"up": "green", "cut": "yellow", "booting": "yellow", "dead": "red", "off": "red"}


def _state(host: LabHost) -> str:
    state = host.state
    return f"[{_STATE_STYLE[state]}]{state}[/{_STATE_STYLE[state]}]"


def _hosts_table(hosts: tuple[LabHost, ...] | list[LabHost]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    columns = ("NAME", "MACHINE", "STATE", "PUBLIC IP", "PRIVATE IP", "NAT", "SITE LAN", "PID", "NAMESPACE")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for host in hosts:
        table.add_row(
            host.name,
            host.machine,
            _state(host),
            host.public_ip,
            host.private_ip,
            host.nat,
            f"{host.lan} {host.lan_ip}" if host.lan else "-",
            str(host.pid or "-"),
            host.ns,
        )
    return table


def _print_status(env: Environment, status: LabStatus) -> None:
    alive = sum(1 for h in status.hosts if h.alive)
    internet = "up" if status.internet else "down"
    env.out.print(
        f"lab [bold]{status.prefix}[/bold]: internet {internet}, "
        f"{len(status.hosts)} host{'s' if len(status.hosts) != 1 else ''} ({alive} running)"
    )
    if status.hosts:
        env.out.print(_hosts_table(status.hosts))
        env.out.print(
            "SSH to each host's public IP, port 22, as root (NAT routers forward tcp/22 inward)",
            highlight=False,
        )
    if status.controller_key:
        env.out.print(f"controller key: {status.controller_key}", highlight=False)
        first = status.hosts[0] if status.hosts else None
        if first is not None:
            env.out.print(
                f"connect: ssh -i {status.controller_key} {first.ssh_user}@{first.ssh_host}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


def _up(args: argparse.Namespace, env: Environment) -> ExitStatus:
    prefix = _prefix(args, env)
    lab.up(hosts=args.hosts, nat=args.nat, double_nat=args.double_nat, prefix=prefix)
    status = lab.status(prefix)
    if args.json:
        _print_json(env, "up", status.to_json())
    else:
        _print_status(env, status)
    return ExitStatus.OK


def _down(args: argparse.Namespace, env: Environment) -> ExitStatus:
    report = lab.down(_prefix(args, env))
    if args.json:
        _print_json(env, "down", report.to_json())
    elif not report.namespaces and not report.state_dir and not report.root_link:
        env.out.print(f"lab {report.prefix}: nothing to remove")
    else:
        env.out.print(
            f"lab {report.prefix} removed: {len(report.namespaces)} namespaces, "
            f"{report.processes} processes"
            + (", the root link" if report.root_link else "")
            + (", the state dir" if report.state_dir else ""),
            highlight=False,
        )
    return ExitStatus.OK


def _status(args: argparse.Namespace, env: Environment) -> ExitStatus:
    status = lab.status(_prefix(args, env))
    if args.json:
        _print_json(env, "status", status.to_json())
    else:
        _print_status(env, status)
    return ExitStatus.OK


def _host_up(args: argparse.Namespace, env: Environment) -> ExitStatus:
    host = lab.host_up(
        args.name,
        args.ip,
        nat=args.nat,
        authorized_keys=tuple(args.authorized_key),
        prefix=_prefix(args, env),
        lan_index=args.lan_index,
        site_lan=args.lan,
        lan_ip=args.lan_ip,
        machine=args.machine,
    )
    if args.json:
        _print_json(env, "host-up", host.to_json())
    else:
        behind = "" if host.nat == "none" else f", behind {host.nat} NAT"
        on_lan = f", LAN {host.lan} {host.lan_ip}" if host.lan else ""
        on_lan += ", a VM" if host.machine == "vm" else ""
        env.out.print(
            f"lab host {host.name} up: ssh {host.ssh_user}@{host.ssh_host} "
            f"(private {host.private_ip}{behind}{on_lan}, namespace {host.ns})",
            highlight=False,
            markup=False,
        )
    return ExitStatus.OK


def _host_down(args: argparse.Namespace, env: Environment) -> ExitStatus:
    existed = lab.host_down(args.name, _prefix(args, env))
    if args.json:
        _print_json(env, "host-down", {"name": args.name, "removed": existed})
    else:
        env.out.print(
            f"lab host {args.name} {'removed' if existed else 'did not exist'}",
            highlight=False,
            markup=False,
        )
    return ExitStatus.OK


def _host_reboot(args: argparse.Namespace, env: Environment) -> ExitStatus:
    seconds = lab.host_reboot(args.name, _prefix(args, env))
    if args.json:
        _print_json(env, "host-reboot", {"name": args.name, "rebooted": True, "seconds": round(seconds, 1)})
    else:
        env.out.print(f"lab VM {args.name} rebooted: SSH back after {seconds:.1f} s", highlight=False)
    return ExitStatus.OK


def _image_build(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.lab import image

    def say(line: str) -> None:
        if not args.json:
            env.err.print(f"image: {line}", highlight=False, markup=False)

    built, fresh = image.build(force=args.force, environ=env.environ, say=say)
    if args.json:
        _print_json(env, "image", {**built.to_json(), "built": fresh})
    else:
        verb = "built" if fresh else "cached (recipe unchanged)"
        env.out.print(f"VM image {built.recipe_hash} {verb}: {built.root}", highlight=False, markup=False)
    return ExitStatus.OK


def _image_status(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from cloudcast.lab import image

    current = image.current(env.environ)
    if args.json:
        _print_json(env, "image", {**current.to_json(), "complete": current.complete()})
    else:
        state = "built" if current.complete() else "not built (run `cloudcast lab image build`)"
        line = f"VM image {current.recipe_hash}: {state}: {current.root}"
        env.out.print(line, highlight=False, markup=False)
    return ExitStatus.OK
