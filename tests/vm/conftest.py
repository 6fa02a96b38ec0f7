"""Fixtures for the VM tier: lab hosts that are QEMU guests of the lab image (issue 10).

Each module builds one network and takes it through its scenarios (VMs boot in ~1.5 min under
TCG, so they are shared). Missing prerequisites (root, QEMU, genisoimage, the built image)
fail the test under CI (env CI set: `.ci/setup` installs them and builds the image) and skip
it otherwise, as the lab tier does.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator

import pytest

from cloudcast import lab
from cloudcast.lab import image, proc
from tests.lab.conftest import fresh_lab, lab_problem

_VM_TOOLS = ("qemu-system-x86_64", "qemu-img", "genisoimage", "ssh")


def vm_problem() -> str | None:
    """Why VM tests cannot run here, or None."""
    problem = lab_problem()
    if problem is not None:
        return problem
    missing = [tool for tool in _VM_TOOLS if shutil.which(tool, path=proc.search_path()) is None]
    if missing:
        return (
            f"VM tests need {', '.join(missing)} "
            "(apt-get install --no-install-recommends qemu-system-x86 qemu-utils genisoimage)"
        )
    built = image.current()
    if not built.complete():
        return f"VM tests need the lab image {built.recipe_hash}: run `cloudcast lab image build`"
    return None


def require_vm() -> None:
    problem = vm_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


@pytest.fixture(scope="module")
def vm_prefix() -> Iterator[str]:
    """A fresh lab for the module (machine-wide lock held), removed at its end even on failure."""
    require_vm()
    with fresh_lab() as prefix:
        yield prefix


def in_parallel(calls: list[Callable[[], object]]) -> None:
    """Run the calls at once (VM boots overlap) and re-raise the first failure."""
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:  # handed back to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def qemu_pids(prefix: str) -> list[int]:
    """QEMU processes of lab `prefix`, found by the marker in their command line."""
    marker = f"cloudcast-lab-{prefix}-"
    return [
        pid
        for pid in proc.all_pids()
        if proc.comm(pid).startswith("qemu-system") and proc.is_running(pid)
        and any(marker in arg for arg in proc.cmdline(pid))
    ]


def reboot_and_report(prefix: str, name: str, capsys: pytest.CaptureFixture[str]) -> float:
    """`lab host-reboot NAME`, with the time it took printed to the test log."""
    seconds = lab.host_reboot(name, prefix)
    with capsys.disabled():
        print(f"\n[vm] {name}: rebooted, SSH back after {seconds:.1f} s")
    return seconds
