"""The VM lab hosts' image: a fresh Debian 12 cloud machine, built once per recipe and cached.

`build()` runs `debootstrap --variant=minbase` with systemd, sshd, cloud-init and the cloud
kernel (but no wireguard-tools, strongSwan or nftables: the bootstrapper must install them),
makes a raw ext4 disk of it with `mkfs.ext4 -d` (no loop mount), and downloads, in the image's
own chroot, the packages a fresh host may need into a Debian repository (`mirror/`, indexed
with `dpkg-scanpackages`) that a mirror host on the lab internet serves to the guests.

The cache is content-addressed: `<cache>/<hash>/` where the hash covers everything that
shapes the result (suite, packages, the configuration script, the disk size). The same recipe
is never built twice; a changed recipe builds a new directory beside the old one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cloudcast.errors import LabError
from cloudcast.lab import proc

CACHE_ENV = "CLOUDCAST_IMAGE_CACHE"
DEFAULT_CACHE = Path("/var/cache/cloudcast/images")
MIRROR_ENV = "CLOUDCAST_DEBIAN_MIRROR"
SUITE = "bookworm"
DISK_SIZE = "1536M"

#: What a fresh cloud instance has: an init, sshd, cloud-init, a kernel with modules; and
#: nothing cloudcast installs itself.
IMAGE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "cloud-init",
    # debootstrap resolves no virtual packages: cloud-init's python3-cryptography needs
    # python3-cffi-backend-api-*, which only this package provides
    "python3-cffi-backend",
    "ifupdown",
    "iproute2",
    "iputils-ping",
    "kmod",
    "procps",
    "linux-image-cloud-amd64",
)
#: What the bootstrapper may install on a fresh host (every package of its install step),
#: plus the tools the tests and benchmarks use on guests.
MIRROR_PACKAGES = (
    "wireguard-tools",
    "wireguard-go",
    "nftables",
    "strongswan-swanctl",
    "strongswan-charon",
    "charon-systemd",
    "libstrongswan-standard-plugins",
    "libcharon-extra-plugins",
    "openssl",
    "iperf3",
    "socat",
)

#: Run in the root filesystem after debootstrap (cwd = ROOTFS): make it a generic image that
#: every VM boots as a new machine (cloud-init makes host keys, machine id and hostname).
CONFIGURE = r"""set -eu
rm -f etc/ssh/ssh_host_*
: > etc/machine-id
rm -f var/lib/dbus/machine-id
printf 'localhost\n' > etc/hostname
# minbase has no /etc/hosts (netbase ships it); cloud images do
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > etc/hosts
printf 'LABEL=root / ext4 rw,errors=remount-ro 0 1\n' > etc/fstab
# cloud-init writes interfaces.d/50-cloud-init: without the `source` line eth0 stays down
printf 'source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n' > etc/network/interfaces
mkdir -p etc/network/interfaces.d etc/cloud/cloud.cfg.d
# Only the NoCloud seed: probing cloud metadata services would stall the boot.
# No locale generation (the image has C.UTF-8 only) and no DSA/RSA host keys: each costs
# seconds of every first boot under TCG.
printf '%s\n' 'datasource_list: [NoCloud, None]' 'locale: false' 'ssh_genkeytypes: [ed25519, ecdsa]' \
    > etc/cloud/cloud.cfg.d/90-cloudcast-lab.cfg
# e2scrub_reap checks LVM snapshots the image does not have: 15 s of a TCG boot
rm -f etc/systemd/system/default.target.wants/e2scrub_reap.service
# No package source until cloud-init names one (the guest has no route to Debian's).
: > etc/apt/sources.list
rm -f etc/apt/sources.list.d/*
rm -rf var/lib/apt/lists/* var/cache/apt/archives/*.deb var/log/*.log
"""


@dataclass(frozen=True)
class Image:
    """A built image: its directory and the files a VM boots from."""

    recipe_hash: str
    root: Path

    @property
    def disk(self) -> Path:
        return self.root / "disk.img"

    @property
    def kernel(self) -> Path:
        return self.root / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.root / "initrd.img"

    @property
    def mirror(self) -> Path:
        """A flat Debian repository: the .debs and their `Packages` index."""
        return self.root / "mirror"

    @property
    def manifest(self) -> Path:
        return self.root / "image.json"

    def complete(self) -> bool:
        files = (self.disk, self.kernel, self.initrd, self.mirror / "Packages", self.manifest)
        return all(f.is_file() for f in files)

    def to_json(self) -> dict[str, object]:
        return {
            "hash": self.recipe_hash,
            "dir": str(self.root),
            "disk": str(self.disk),
            "kernel": str(self.kernel),
            "initrd": str(self.initrd),
            "mirror": str(self.mirror),
        }


def recipe() -> dict[str, object]:
    """Everything that shapes the image; its hash names the cache directory."""
    return {
        "suite": SUITE,
        "variant": "minbase",
        "packages": sorted(IMAGE_PACKAGES),
        "mirror_packages": sorted(MIRROR_PACKAGES),
        "configure": CONFIGURE,
        "disk_size": DISK_SIZE,
    }


def recipe_hash() -> str:
    text = json.dumps(recipe(), sort_keys=True).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(CACHE_ENV) or DEFAULT_CACHE)


def current(environ: Mapping[str, str] | None = None) -> Image:
    """The image of the current recipe (built or not: see `Image.complete`)."""
    return Image(recipe_hash(), cache_dir(environ) / recipe_hash())


def require(environ: Mapping[str, str] | None = None) -> Image:
    """The current image, which must be built already (building takes minutes)."""
    image = current(environ)
    if not image.complete():
        raise LabError(
            f"the VM image {image.recipe_hash} is not built ({image.root})",
            hint="run `cloudcast lab image build` first (about 2 minutes, needs Debian's package mirror)",
        )
    return image


def debian_mirror(environ: Mapping[str, str] | None = None) -> str:
    """The Debian mirror this machine uses (deb822 or one-line sources), or $CLOUDCAST_DEBIAN_MIRROR."""
    env = os.environ if environ is None else environ
    if env.get(MIRROR_ENV):
        return env[MIRROR_ENV]
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        match = re.search(r"^URIs:\s*(\S+)", sources.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    plain = Path("/etc/apt/sources.list")
    if plain.is_file():
        match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE, plain.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


BUILD_TOOLS = {"debootstrap": "debootstrap", "mkfs.ext4": "e2fsprogs", "dpkg-scanpackages": "dpkg-dev"}


def build(
    *,
    force: bool = False,
    environ: Mapping[str, str] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> tuple[Image, bool]:
    """Build the current recipe's image unless it is cached; returns (image, built now)."""
    image = current(environ)
    if image.complete() and not force:
        return image, False
    proc.require_privileges()
    for tool, package in BUILD_TOOLS.items():
        if shutil.which(tool, path=proc.search_path()) is None:
            raise LabError(
                f"`{tool}` is not installed (package {package})",
                hint="apt-get install -y --no-install-recommends debootstrap dpkg-dev e2fsprogs",
            )
    image.root.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(image.root.parent):
        if image.complete() and not force:
            return image, False  # another process built it while we waited
        _build_into(image, debian_mirror(environ), say)
    return image, True


@contextmanager
def _build_lock(cache: Path) -> Iterator[None]:
    fd = os.open(cache / ".build.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _build_into(image: Image, mirror: str, say: Callable[[str], None]) -> None:
    work = image.root.with_name(image.root.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / "rootfs"
    (work / "mirror").mkdir(parents=True)
    started = time.monotonic()
    try:
        say(f"debootstrap {SUITE} (minbase) from {mirror}")
        proc.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(IMAGE_PACKAGES),
                SUITE,
                str(rootfs),
                mirror,
            ],
            timeout=1800,
            what="debootstrap of the VM image",
        )
        say("downloading the mirror's packages in the image's chroot")
        _download_mirror(rootfs, work / "mirror")
        say("configuring the image")
        proc.run(["sh", "-c", CONFIGURE], what="configuring the VM image", cwd=rootfs)
        _copy_boot_files(rootfs, work)
        say(f"mkfs.ext4 -d ({DISK_SIZE})")
        proc.run(
            ["mkfs.ext4", "-q", "-F", "-d", str(rootfs), "-L", "root", str(work / "disk.img"), DISK_SIZE],
            timeout=600,
            what="making the VM disk image",
        )
        shutil.rmtree(rootfs)
        manifest = {**recipe(), "hash": image.recipe_hash, "built": time.time(), "debian_mirror": mirror}
        (work / "image.json").write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(image.root, ignore_errors=True)
        os.replace(work, image.root)
    except BaseException:
        log = rootfs / "debootstrap" / "debootstrap.log"
        if log.is_file():  # the only record of why a package failed to configure
            shutil.copyfile(log, image.root.parent / "debootstrap-failed.log")
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"image {image.recipe_hash} built in {time.monotonic() - started:.0f} s: {image.root}")


def _download_mirror(rootfs: Path, mirror: Path) -> None:
    """`apt-get --download-only` in the chroot: dependencies resolved against what the image lacks."""
    resolv = rootfs / "etc" / "resolv.conf"
    saved = os.readlink(resolv) if resolv.is_symlink() else None
    # systemd-resolved may leave a dangling symlink here: apt needs a real file in the chroot
    resolv.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", resolv)
    archives = "/var/cache/cloudcast-mirror"
    (rootfs / archives.lstrip("/") / "partial").mkdir(parents=True, exist_ok=True)
    try:
        proc.run(
            ["chroot", str(rootfs), "apt-get", "-q", "update"],
            timeout=600,
            what="apt-get update in the image",
        )
        proc.run(
            [
                "chroot",
                str(rootfs),
                "apt-get",
                "-q",
                "-y",
                "--download-only",
                "--no-install-recommends",
                "-o",
                f"Dir::Cache::archives={archives}",
                "install",
                *MIRROR_PACKAGES,
            ],
            timeout=900,
            what="downloading the mirror's packages",
            env={"DEBIAN_FRONTEND": "noninteractive"},
        )
    finally:
        resolv.unlink(missing_ok=True)
        if saved is not None:
            resolv.symlink_to(saved)
    for deb in (rootfs / archives.lstrip("/")).glob("*.deb"):
        shutil.move(str(deb), mirror / deb.name)
    shutil.rmtree(rootfs / archives.lstrip("/"))
    index = proc.run(
        ["dpkg-scanpackages", "--multiversion", "."], cwd=mirror, what="indexing the package mirror"
    )
    (mirror / "Packages").write_text(index.stdout)


def _copy_boot_files(rootfs: Path, work: Path) -> None:
    """The kernel and initrd for QEMU's direct boot (newest installed kernel)."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise LabError("the VM image has no kernel in /boot (linux-image-cloud-amd64 missing?)")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = rootfs / "boot" / f"initrd.img-{version}"
    if not initrd.is_file():
        raise LabError(f"the VM image has no initrd for kernel {version}")
    shutil.copyfile(kernels[-1], work / "vmlinuz")
    shutil.copyfile(initrd, work / "initrd.img")
