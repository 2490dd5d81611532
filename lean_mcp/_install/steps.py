"""The steps of `lean-mcp setup`, in order, each a small object that checks before it acts.

`Step.done()` looks at the machine (never at a marker of its own) and returns why nothing is needed,
or None; `Step.run()` does the work, idempotently, so an interrupted run simply continues. Every
step writes only inside the project, elan's home, or lean-mcp's cache and config directories.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from .._toolchain import find_lake, lakefile_of, read_toolchain
from . import record
from .shell import StepFailed, download, run_tool

#: The Lean version setup uses when neither `--lean` nor the project says: the newest release with a REPL tag.
DEFAULT_LEAN = "4.32.0"
ELAN_INSTALLER = "https://elan.lean-lang.org/elan-init.sh"
REPL_URL = "https://github.com/leanprover-community/repl"
MATHLIB_URL = "https://github.com/leanprover-community/mathlib4"
#: Lean releases the REPL has commits for but no tag (pin the commit; see the REPL's history).
UNTAGGED_REPL = {"4.11.0": "adbbfcb", "4.20.1-rc1": "7ddf0a7", "4.20.1": "8d02513", "4.23.0": "2f8073a"}
#: The first line of a file setup wrote; setup may rewrite such a file, never one without it.
MARKER = "-- Written by `lean-mcp setup`; it rewrites this file when asked for another Lean version."
_VERSION = re.compile(r"^\d+\.\d+\.\d+(-rc\d+)?$")


def normalize_version(text: str) -> str:
    """`4.15.0`, `v4.15.0` or `leanprover/lean4:v4.15.0` → `4.15.0`; ValueError for anything else."""
    version = text.strip().removeprefix("leanprover/lean4:").removeprefix("v")
    if not _VERSION.match(version):
        raise ValueError(f"{text!r} is not a Lean release; give one like {DEFAULT_LEAN} or 4.33.0-rc2")
    return version


def repl_revision(version: str) -> str:
    """The REPL tag (or commit) built for Lean `version`."""
    return UNTAGGED_REPL.get(version, f"v{version}")


@dataclasses.dataclass
class Plan:
    """What this setup run is for, and where its output goes."""

    project: Path
    version: str
    mathlib: bool = False
    installer: str = ELAN_INSTALLER
    out: TextIO = dataclasses.field(default_factory=lambda: sys.stderr)

    @property
    def toolchain(self) -> str:
        return f"leanprover/lean4:v{self.version}"

    @property
    def repl_checkout(self) -> Path:
        return record.repl_checkout(self.version)


class Step:
    """One step: a title, a check, the commands it would run, the work, and what to do when it fails."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    @property
    def title(self) -> str:
        """What the step makes, as its progress line names it."""
        return type(self).__name__

    @property
    def hint(self) -> str:
        """What to do when the step fails."""
        return "Run `lean-mcp setup` again."

    def done(self) -> str | None:
        """Why nothing is needed (e.g. `found ~/.elan/bin/elan`), or None when `run()` must run."""
        return None

    def commands(self) -> list[str]:
        """What `run()` does, for `--dry-run`."""
        return []

    def run(self) -> None:
        """Do the step; raises StepFailed saying what failed and what to do."""

    def tool(self, argv: list[str], cwd: Path | None = None) -> None:
        run_tool(argv, cwd=cwd, out=self.plan.out, hint=self.hint)


def _elan() -> Path | None:
    found = shutil.which("elan")
    if found:
        return Path(found)
    beside = record.elan_home() / "bin" / "elan"
    return beside if beside.is_file() and os.access(beside, os.X_OK) else None


def _lake() -> str:
    lake = find_lake(None)
    if lake is None:
        raise StepFailed("`lake` was not found on PATH nor in elan's home.", hint="Run `lean-mcp setup` again.")
    return str(lake)


class InstallElan(Step):
    """elan, Lean's toolchain manager, from its official installer (no shell profile is changed)."""

    title = "elan (the Lean toolchain manager)"
    hint = (
        "Check the network (the installer comes from elan.lean-lang.org and GitHub), or install elan yourself "
        "(https://github.com/leanprover/elan) and run `lean-mcp setup` again."
    )

    @property
    def script(self) -> Path:
        return record.cache_dir() / "elan-init.sh"

    def done(self) -> str | None:
        elan = _elan()
        return f"found {elan}" if elan else None

    def commands(self) -> list[str]:
        return [f"download {self.plan.installer} to {self.script}", f"sh {self.script} {' '.join(self._flags())}"]

    @staticmethod
    def _flags() -> list[str]:
        return ["-y", "--no-modify-path", "--default-toolchain", "none"]

    def run(self) -> None:
        download(self.plan.installer, self.script, out=self.plan.out, hint=self.hint)
        self.tool(["sh", str(self.script), *self._flags()])
        if _elan() is None:
            missing = record.elan_home() / "bin" / "elan"
            raise StepFailed(f"The elan installer ran but {missing} is not there.", hint=self.hint)


class InstallToolchain(Step):
    """The pinned Lean toolchain, through elan."""

    hint = "Check the network and the disk space in elan's home, then run `lean-mcp setup` again."

    @property
    def title(self) -> str:
        return f"Lean {self.plan.version} ({self.plan.toolchain})"

    def done(self) -> str | None:
        elan = _elan()
        if elan is None:
            return None
        try:
            listed = subprocess.run(
                [str(elan), "toolchain", "list"],
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        names = {line.split()[0] for line in listed.splitlines() if line.strip()}
        return "already installed" if self.plan.toolchain in names else None

    def commands(self) -> list[str]:
        return [f"elan toolchain install {self.plan.toolchain}"]

    def run(self) -> None:
        elan = _elan()
        if elan is None:
            raise StepFailed("elan is not installed.", hint="Run `lean-mcp setup` again (it installs elan first).")
        self.tool([str(elan), "toolchain", "install", self.plan.toolchain])


class CreateProject(Step):
    """The Lake project with the pinned toolchain: created, rewritten if setup wrote it, else reused as it is."""

    hint = "Choose another directory with --project, or fix the project as said above."

    @property
    def title(self) -> str:
        return f"Lake project {self.plan.project}"

    def files(self) -> dict[str, str]:
        """The files setup writes into a new project."""
        lakefile = f"{MARKER}\nimport Lake\nopen Lake DSL\n\npackage «lean_mcp_project» where\n"
        if self.plan.mathlib:
            lakefile += f'\nrequire mathlib from git\n  "{MATHLIB_URL}" @ "v{self.plan.version}"\n'
        return {"lean-toolchain": self.plan.toolchain + "\n", "lakefile.lean": lakefile}

    def done(self) -> str | None:
        project = self.plan.project
        if lakefile_of(project) is None or read_toolchain(project) != self.plan.toolchain:
            return None
        if self.plan.mathlib and not _requires_mathlib(project):
            return None
        return "already there" + (" with Mathlib" if self.plan.mathlib else "")

    def commands(self) -> list[str]:
        return [f"write {self.plan.project / name}" for name in self.files()]

    def run(self) -> None:
        project = self.plan.project
        lakefile = lakefile_of(project)
        ours = lakefile is not None and lakefile.read_text(encoding="utf-8").startswith(MARKER)
        if lakefile is not None and not ours:
            raise StepFailed(self._mismatch(), hint=self.hint)
        if lakefile is None and project.is_dir() and any(project.iterdir()):
            raise StepFailed(f"{project} is not empty and is not a Lake project (no lakefile).", hint=self.hint)
        project.mkdir(parents=True, exist_ok=True)
        if ours:  # another version or Mathlib: the dependencies Lake resolved before no longer hold
            (project / "lake-manifest.json").unlink(missing_ok=True)
        for name, text in self.files().items():
            partial = project / f".{name}.partial"
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, project / name)

    def _mismatch(self) -> str:
        pinned = read_toolchain(self.plan.project)
        if pinned != self.plan.toolchain:
            return (
                f"The project {self.plan.project} pins {pinned or 'no toolchain'} (lean-toolchain), not "
                f"{self.plan.toolchain}. Run setup without --lean to use the project's version, or change its "
                "lean-toolchain yourself."
            )
        return (
            f"The project {self.plan.project} does not require Mathlib. Add to its lakefile.lean:\n"
            f'    require mathlib from git "{MATHLIB_URL}" @ "v{self.plan.version}"\n'
            "(or to lakefile.toml the matching [[require]] entry), then run `lean-mcp setup --mathlib` again."
        )


def _requires_mathlib(project: Path) -> bool:
    lakefile = lakefile_of(project)
    texts = [lakefile.read_text(encoding="utf-8") if lakefile else ""]
    manifest = project / "lake-manifest.json"
    if manifest.is_file():
        texts.append(manifest.read_text(encoding="utf-8"))
    return any("mathlib" in text.lower() for text in texts)


class GetMathlib(Step):
    """Mathlib's sources (`lake update` when the project has no lake-manifest.json yet: it resolves and
    clones the dependencies) and its prebuilt .olean files (`lake exe cache get`)."""

    title = "Mathlib and its prebuilt cache"

    @property
    def hint(self) -> str:
        return (
            "Check the network (Lake clones from GitHub, the cache comes from Mathlib's servers) and the disk space "
            f"(about 5 GB), and that Mathlib has a tag v{self.plan.version} ({MATHLIB_URL}/tags); then run "
            f"`lean-mcp setup --mathlib` again: it continues where it stopped. To see everything, run the command "
            f"above in {self.plan.project} yourself."
        )

    def olean(self) -> Path | None:
        build = self.plan.project / ".lake" / "packages" / "mathlib" / ".lake" / "build" / "lib"
        return next((p for p in (build / "Mathlib.olean", build / "lean" / "Mathlib.olean") if p.is_file()), None)

    def done(self) -> str | None:
        olean = self.olean()
        return f"found {olean}" if olean and not self._needs_update() else None

    def _needs_update(self) -> bool:
        return not (self.plan.project / "lake-manifest.json").is_file()

    def commands(self) -> list[str]:
        update = [f"lake update (in {self.plan.project})"] if self._needs_update() else []
        return [*update, f"lake exe cache get (in {self.plan.project})"]

    def run(self) -> None:
        if self._needs_update():
            self.tool([_lake(), "update"], cwd=self.plan.project)
        self.tool([_lake(), "exe", "cache", "get"], cwd=self.plan.project)
        if self.olean() is None:
            raise StepFailed(
                f"`lake exe cache get` succeeded but {self.plan.project}/.lake/packages/mathlib has no Mathlib.olean.",
                hint=self.hint,
            )


class FetchRepl(Step):
    """The REPL's sources at the revision built for this Lean version, in lean-mcp's cache."""

    @property
    def title(self) -> str:
        return f"REPL sources ({repl_revision(self.plan.version)}) in {self.plan.repl_checkout}"

    @property
    def hint(self) -> str:
        return (
            f"Check the network and that git is installed. If the REPL has no revision for Lean {self.plan.version}, "
            f"pick a version listed at {REPL_URL}/tags with --lean (the project must use the same version)."
        )

    def done(self) -> str | None:
        return "already there" if (self.plan.repl_checkout / "lean-toolchain").is_file() else None

    def commands(self) -> list[str]:
        partial = self._partial()
        return [f"git clone {REPL_URL} {partial}", f"git checkout {repl_revision(self.plan.version)} (in {partial})"]

    def _partial(self) -> Path:
        return self.plan.repl_checkout.with_name(self.plan.repl_checkout.name + ".partial")

    def run(self) -> None:
        git = shutil.which("git")
        if git is None:
            raise StepFailed("git is not installed (setup clones the REPL with it).", hint="Install git, then rerun.")
        partial = self._partial()
        shutil.rmtree(partial, ignore_errors=True)  # what an interrupted clone left
        shutil.rmtree(self.plan.repl_checkout, ignore_errors=True)  # a checkout without lean-toolchain is broken
        partial.parent.mkdir(parents=True, exist_ok=True)
        self.tool([git, "clone", "--progress", REPL_URL, str(partial)])
        self.tool([git, "checkout", "--quiet", repl_revision(self.plan.version)], cwd=partial)
        pinned = read_toolchain(partial)
        if pinned != self.plan.toolchain:
            revision = repl_revision(self.plan.version)
            raise StepFailed(
                f"The REPL at {revision} is for {pinned or 'no toolchain'}, not {self.plan.toolchain}.",
                hint=self.hint,
            )
        os.replace(partial, self.plan.repl_checkout)


class BuildRepl(Step):
    """`lake build` in the REPL checkout (shared by every project of this Lean version)."""

    @property
    def title(self) -> str:
        return f"REPL build for Lean {self.plan.version}"

    @property
    def hint(self) -> str:
        return (
            f"Run `lake build` in {self.plan.repl_checkout} to see the whole output; to start over, delete that "
            "directory and run `lean-mcp setup` again."
        )

    def binary(self) -> Path:
        return record.repl_binary(self.plan.version)

    def done(self) -> str | None:
        binary = self.binary()
        return f"found {binary}" if binary.is_file() and os.access(binary, os.X_OK) else None

    def commands(self) -> list[str]:
        return [f"lake build (in {self.plan.repl_checkout})"]

    def run(self) -> None:
        self.tool([_lake(), "build"], cwd=self.plan.repl_checkout)
        if self.done() is None:
            raise StepFailed(f"`lake build` succeeded but {self.binary()} is not there.", hint=self.hint)


class Record(Step):
    """The record that lets plain `lean-mcp` find the project and the REPL with no environment variables."""

    title = "Record of this setup"
    hint = "Check that lean-mcp's config directory ($XDG_CONFIG_HOME/lean-mcp, default ~/.config/lean-mcp) is writable."

    def wanted(self) -> record.SetupRecord:
        return record.SetupRecord(
            project=str(self.plan.project),
            toolchain=self.plan.toolchain,
            repl=str(record.repl_binary(self.plan.version)),
            mathlib=self.plan.mathlib,
        )

    def done(self) -> str | None:
        return f"{record.record_path()} is up to date" if record.load_record() == self.wanted() else None

    def commands(self) -> list[str]:
        return [f"write {record.record_path()}"]

    def run(self) -> None:
        try:
            record.save_record(self.wanted())
        except OSError as exc:
            raise StepFailed(f"Writing {record.record_path()} failed: {exc.strerror or exc}.", hint=self.hint) from None


def steps_for(plan: Plan) -> list[Step]:
    """The steps of `plan`, in order (the final check is the command's, see `lean_mcp._commands.setup`)."""
    steps: list[Step] = [InstallElan(plan), InstallToolchain(plan), CreateProject(plan)]
    if plan.mathlib:
        steps.append(GetMathlib(plan))
    steps += [FetchRepl(plan), BuildRepl(plan), Record(plan)]
    return steps
