"""The public surface: `lean_mcp.__all__` is the API, pinned here; the docs import only from it;
one version source; every third-party import is a declared dependency."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import lean_mcp

ROOT = Path(__file__).resolve().parent.parent

PUBLIC = {
    # the HTTP clients
    "AsyncLeanClient",
    "LeanClient",
    # the in-process engine
    "ProofService",
    "Settings",
    "open_service",
    "RayVerifier",  # needs the [ray] extra
    # the models
    "JobStatus",
    "LeanOutput",
    "Message",
    "Pos",
    "Proof",
    "ProofConfig",
    "ProofResult",
    "Severity",
    "Sorry",
    "Verdict",
    # tactic mode (repl backend)
    "ProofStatus",
    "TacticCheck",
    "TacticResult",
    "TryTacticsResult",
    "ProofStateError",
    "TacticModeUnavailableError",
    # the errors
    "AuthenticationError",
    "BackendUnavailableError",
    "BusyError",
    "ConfigurationError",
    "InvalidProofError",
    "JobNotFoundError",
    "LeanMCPError",
    "ProofTooLargeError",
    "QueueFullError",
    "RateLimitedError",
    "RemoteError",
    "RunnerUnreachableError",
    "__version__",
}


def test_all_is_the_pinned_api() -> None:
    # A change here is a change of the public API: update PUBLIC and say so in the changelog.
    assert set(lean_mcp.__all__) == PUBLIC
    assert len(lean_mcp.__all__) == len(PUBLIC)


def test_every_public_name_resolves() -> None:
    for name in lean_mcp.__all__:
        assert getattr(lean_mcp, name) is not None, name


def test_errors_are_one_family() -> None:
    errors = [getattr(lean_mcp, n) for n in lean_mcp.__all__ if n.endswith("Error")]
    assert all(issubclass(e, lean_mcp.LeanMCPError) for e in errors)


def docs_code() -> str:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*.py"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def test_docs_and_examples_import_only_the_public_api() -> None:
    text = docs_code()
    deep = re.findall(r"^\s*(?:from|import) (lean_mcp\.[\w.]+)", text, flags=re.MULTILINE)
    assert not deep, f"docs/examples import internals {deep}; export what users need from lean_mcp"
    for names in re.findall(r"^\s*from lean_mcp import \(?([\w, ]+)", text, flags=re.MULTILINE):
        for name in (n.strip() for n in names.split(",")):
            assert name in lean_mcp.__all__, f"docs import lean_mcp.{name}, which is not public"


def test_one_version_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"], "the version lives in lean_mcp.__version__ only"
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lean_mcp.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", lean_mcp.__version__)


def third_party_imports() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "lean_mcp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name != "lean_mcp"}


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    # a dependency, or an extra's (imported only where that extra is needed: ray by --backend ray)
    extras = project["project"]["optional-dependencies"]
    optional = [d for name, deps in extras.items() if name != "test" for d in deps]
    requirements = project["project"]["dependencies"] + optional
    declared = {re.split(r"[<>=!~; \[]", dep, maxsplit=1)[0].lower() for dep in requirements}
    distributions = importlib.metadata.packages_distributions()
    for module in sorted(third_party_imports()):
        owners = {d.lower() for d in distributions.get(module, [module])}
        assert owners & declared, f"lean_mcp imports {module} (from {owners}) but pyproject does not declare it"


#: The only public modules; every other module under lean_mcp/ is internal (underscore-named), httpx's manner.
PUBLIC_MODULES = {"lean_mcp", "lean_mcp.cli"}


def test_every_other_module_is_private() -> None:
    package = ROOT / "lean_mcp"
    modules = set()
    for path in package.rglob("*.py"):
        parts = ("lean_mcp", *path.relative_to(package).with_suffix("").parts)
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    public = {name for name in modules if not any(part.startswith("_") for part in name.split(".")[1:])}
    assert public == PUBLIC_MODULES, f"modules that should be private (underscore-named): {public - PUBLIC_MODULES}"
