"""The one place that runs `terraform` (or `tofu`): pure argument building plus one call site."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudcast.errors import TerraformError

# Every command gets these: never prompt, never colour (we parse and re-render output).
COMMON = ("-input=false", "-no-color")
EventSink = Callable[[dict[str, Any]], None]


def find_binary(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """`--terraform-bin`, else $CLOUDCAST_TERRAFORM, else `terraform`, else `tofu` on PATH."""
    env = os.environ if environ is None else environ
    for candidate in (explicit, env.get("CLOUDCAST_TERRAFORM"), "terraform", "tofu"):
        if not candidate:
            continue
        found = shutil.which(candidate)
        if found:
            return found
        if explicit or candidate == env.get("CLOUDCAST_TERRAFORM"):
            raise TerraformError(
                f"Terraform executable not found: {candidate}",
                hint="install Terraform >= 1.5 or OpenTofu, or pass --terraform-bin PATH",
            )
    raise TerraformError(
        "Terraform executable not found (looked for terraform and tofu on PATH)",
        hint="install Terraform >= 1.5 or OpenTofu, or pass --terraform-bin PATH",
    )


def build_args(command: str, **opts: Any) -> list[str]:
    """Arguments for one Terraform command (pure; table-tested)."""
    args = [command]
    if command in ("init", "plan", "apply", "destroy", "validate", "output", "show"):
        args += [a for a in COMMON if not (command in ("output", "show", "validate") and a == "-input=false")]
    if command == "init":
        args.append("-upgrade=false")
        if opts.get("reconfigure"):
            args.append("-reconfigure")
    if command in ("plan", "apply", "destroy", "validate", "output", "show") and opts.get("json", True):
        args.append("-json")
    if command == "plan":
        args.append("-detailed-exitcode")
        if opts.get("destroy"):
            args.append("-destroy")
        if opts.get("out"):
            args.append(f"-out={opts['out']}")
        args += [f"-target={target}" for target in opts.get("targets") or ()]
    if command == "destroy" or (command == "apply" and not opts.get("planfile")):
        args.append("-auto-approve")
    if command in ("plan", "apply", "destroy") and opts.get("lock_timeout"):
        args.append(f"-lock-timeout={opts['lock_timeout']}")
    if command in ("plan", "apply", "destroy"):
        args.append(f"-parallelism={int(opts.get('parallelism', 10))}")
    if command == "apply" and opts.get("planfile"):
        args.append(str(opts["planfile"]))
    if command == "show" and opts.get("planfile"):
        args.append(str(opts["planfile"]))
    return args


@dataclass
class Result:
    code: int
    stdout: str = ""


@dataclass
class Terraform:
    """Runs Terraform in one working dir, streaming `-json` events to `sink`."""

    workdir: Path
    binary: str
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    sink: EventSink | None = None
    lock_timeout: str | None = None  # `-lock-timeout` for plan, apply and destroy
    parallelism: int | None = None  # `-parallelism`; Terraform's 10 when None

    def _limits(self) -> dict[str, Any]:
        limits: dict[str, Any] = {}
        if self.lock_timeout and self.lock_timeout not in ("0", "0s"):
            limits["lock_timeout"] = self.lock_timeout
        if self.parallelism is not None:
            limits["parallelism"] = self.parallelism
        return limits

    def init(self) -> None:
        self._run(build_args("init"), stream=False)

    def validate(self) -> dict[str, Any]:
        res = self._run(build_args("validate"), stream=False, ok_codes=(0, 1))
        data: dict[str, Any] = json.loads(res.stdout or "{}")
        return data

    def plan(self, out: Path, *, destroy: bool = False, targets: Sequence[str] = ()) -> bool:
        """Plan into `out` (only `targets`, Terraform addresses, when given); True when it has changes."""
        args = build_args("plan", out=out, destroy=destroy, targets=list(targets), **self._limits())
        res = self._run(args, ok_codes=(0, 2))
        return res.code == 2

    def apply(self, planfile: Path) -> None:
        self._run(build_args("apply", planfile=planfile, **self._limits()))

    def destroy(self) -> None:
        self._run(build_args("destroy", **self._limits()))

    def show(self, planfile: Path | None = None) -> dict[str, Any]:
        res = self._run(build_args("show", planfile=planfile), stream=False)
        data: dict[str, Any] = json.loads(res.stdout or "{}")
        return data

    def outputs(self) -> dict[str, Any]:
        """`output -json`, unwrapped to name -> value."""
        res = self._run(build_args("output"), stream=False)
        raw = json.loads(res.stdout or "{}")
        return {name: item.get("value") for name, item in raw.items()}

    def _run(self, args: Sequence[str], *, stream: bool = True, ok_codes: tuple[int, ...] = (0,)) -> Result:
        cmd = [self.binary, *args]
        env = dict(self.environ)
        env.setdefault("TF_IN_AUTOMATION", "1")
        # no version check against checkpoint-api.hashicorp.com: a run talks to the providers only
        env.setdefault("CHECKPOINT_DISABLE", "1")
        tail: deque[str] = deque(maxlen=12)
        errors: list[str] = []
        out_lines: list[str] = []
        # stderr goes to a file: read after exit, it can never block the stdout stream
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as errfile:
            try:
                proc = subprocess.Popen(
                    cmd,
                    cwd=self.workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=errfile,
                    text=True,
                    bufsize=1,
                )
            except OSError as exc:
                raise TerraformError(f"cannot run {self.binary}: {exc.strerror}") from None
            assert proc.stdout is not None
            with proc:
                for line in proc.stdout:
                    out_lines.append(line)
                    text = line.rstrip("\n")
                    if text:
                        tail.append(text)
                    if not (stream and text.startswith("{")):
                        continue
                    try:
                        event = json.loads(text)
                    except ValueError:
                        continue
                    if event.get("type") == "diagnostic" and event.get("@level") == "error":
                        diag = event.get("diagnostic", {})
                        errors.append(_diagnostic_line(diag))
                    if self.sink:
                        self.sink(event)
                code = proc.wait()
            errfile.seek(0)
            stderr = errfile.read()
        tail.extend(line for line in stderr.splitlines() if line.strip())
        stdout = "".join(out_lines)
        if code not in ok_codes:
            if not errors and stdout.lstrip().startswith("{") and not stream:
                errors = _diagnostics_from_document(stdout)
            detail = "; ".join(errors) or " | ".join(tail) or "no output"
            locked = lock_error(detail, self.workdir)
            if locked is not None:
                raise locked
            stale = "Saved plan is stale" in detail
            raise TerraformError(
                f"terraform {args[0]} failed (exit {code}): {detail}",
                hint="the state changed since the plan was saved: run `cloudcast plan -out FILE` again"
                if stale
                else f"the Terraform working dir is {self.workdir}",
            )
        return Result(code=code, stdout=stdout)


_LOCK_FIELDS = ("ID", "Path", "Operation", "Who", "Version", "Created", "Info")


def lock_error(detail: str, workdir: Path) -> TerraformError | None:
    """A clear error when Terraform could not take the state lock (another run holds it)."""
    if "Error acquiring the state lock" not in detail:
        return None
    info: dict[str, str] = {}
    _, _, rest = detail.partition("Lock Info:")
    names = "|".join(_LOCK_FIELDS)
    for match in re.finditer(rf"\b({names}):\s*(.*?)(?=\s+\b(?:{names}):|$)", rest):
        info.setdefault(match.group(1), match.group(2).strip())
    op = info.get("Operation", "").removeprefix("OperationType").lower() or "a run"
    who = info.get("Who") or "someone"
    created = re.sub(r"\.\d+", "", info.get("Created", ""))
    since = f" since {created}" if created else ""
    lock_id = info.get("ID", "")
    where = f" ({info['Path']})" if info.get("Path") else ""
    unlock = f"`terraform force-unlock {lock_id}` in {workdir}" if lock_id else "`terraform force-unlock`"
    return TerraformError(
        f"the Terraform state{where} is locked: {who} is running {op}{since}"
        + (f" (lock ID {lock_id})" if lock_id else ""),
        hint=f"wait for that run to finish and try again; if it died, release the lock with {unlock}",
    )


def _diagnostic_line(diag: dict[str, Any]) -> str:
    summary = str(diag.get("summary", "")).strip()
    detail = " ".join(str(diag.get("detail", "")).split())
    rng = diag.get("range") or {}
    where = f" ({rng.get('filename')}:{rng.get('start', {}).get('line')})" if rng.get("filename") else ""
    return f"{summary}{where}: {detail}" if detail else f"{summary}{where}"


def _diagnostics_from_document(text: str) -> list[str]:
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    return [_diagnostic_line(d) for d in doc.get("diagnostics", []) if d.get("severity") == "error"]
