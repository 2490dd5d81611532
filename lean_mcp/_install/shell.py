"""Running the tools setup needs (elan, git, lake) and downloading the elan installer.

A tool's output goes to stderr as it comes. On a terminal, lines that report progress as `n/m`
(`lake build`'s `[12/345]`, git's `Receiving objects: 45% (450/1000)`) become one progress bar;
elsewhere every line is printed, indented. When a tool fails, StepFailed says which command,
where, its exit status and its last lines of output.
"""

from __future__ import annotations

import collections
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TextIO

from .._errors import LeanMCPError

_FRACTION = re.compile(r"(\d+)\s*/\s*(\d+)")
BAR_WIDTH = 30
TAIL_LINES = 15


class StepFailed(LeanMCPError):
    """A setup step could not be done: the message says what failed and which command; `hint` what to do."""


class Progress:
    """Writes a tool's output to `out`: a progress bar on a terminal, indented lines elsewhere."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.bar = out.isatty()
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._drawn = False

    def feed(self, segment: str, *, complete_line: bool) -> None:
        """One piece of output ending at a newline (`complete_line`) or at a carriage return."""
        text = segment.rstrip()
        if not text:
            return
        if complete_line:
            self.tail.append(text)
        fraction = _FRACTION.search(text)
        if self.bar and fraction:
            self._draw(int(fraction.group(1)), int(fraction.group(2)), text)
        elif complete_line:
            self._clear()
            self.out.write(f"    {text}\n")
        self.out.flush()

    def _draw(self, done: int, total: int, text: str) -> None:
        self.out.write("\r" + render_bar(done, total, text))
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.out.write("\r\033[K")
            self._drawn = False

    def finish(self) -> None:
        """Remove the bar (the step's own line follows)."""
        self._clear()
        self.out.flush()


def render_bar(done: int, total: int, text: str, width: int = BAR_WIDTH) -> str:
    """`    [#######-------]  45% 450/1000 text…` (one terminal line, no newline)."""
    share = min(1.0, done / total) if total > 0 else 0.0
    filled = int(share * width)
    return f"    [{'#' * filled}{'-' * (width - filled)}] {share:4.0%} {done}/{total} {text[:40]}\033[K"


def describe(argv: list[str], cwd: Path | None) -> str:
    """`` `lake build` (in /path) `` for messages."""
    where = f" (in {cwd})" if cwd else ""
    return f"`{shlex.join(argv)}`{where}"


def run_tool(argv: list[str], *, cwd: Path | None, out: TextIO, hint: str, env: dict[str, str] | None = None) -> None:
    """Run `argv` in `cwd`, its output shown on `out`; StepFailed (with `hint`) unless it exits 0."""
    progress = Progress(out)
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        raise StepFailed(f"{describe(argv, cwd)} could not start: {exc.strerror or exc}.", hint=hint) from None
    assert process.stdout is not None
    try:
        _pump(process.stdout.fileno(), progress)
        status = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        progress.finish()
    if status != 0:
        said = "\n".join(f"    {line}" for line in progress.tail) or "    (no output)"
        raise StepFailed(f"{describe(argv, cwd)} exited with status {status}. Its last output:\n{said}\n", hint=hint)


def _pump(fd: int, progress: Progress) -> None:
    pending = ""
    while chunk := os.read(fd, 65536):
        pending += chunk.decode("utf-8", errors="replace")
        pieces = re.split(r"(\r\n|\n|\r)", pending)
        pending = pieces.pop()
        for text, end in zip(pieces[::2], pieces[1::2], strict=True):
            progress.feed(text, complete_line=end != "\r")
    progress.feed(pending, complete_line=True)


def download(source: str, target: Path, *, out: TextIO, hint: str) -> None:
    """Fetch `source` (an http(s) URL, or a local file) to `target`, atomically; StepFailed on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        if source.startswith(("http://", "https://")):
            _fetch(source, partial, Progress(out))
        else:
            shutil.copyfile(Path(source).expanduser(), partial)
        os.replace(partial, target)
    except (OSError, LeanMCPError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise StepFailed(f"Downloading {source} failed: {exc}", hint=hint) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _fetch(url: str, target: Path, progress: Progress) -> None:
    import httpx

    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as response:
            if response.status_code != 200:
                raise StepFailed(f"HTTP status {response.status_code}.")
            total = int(response.headers.get("content-length") or 0)
            done = 0
            with target.open("wb") as file:
                for chunk in response.iter_bytes():
                    file.write(chunk)
                    done += len(chunk)
                    if total:
                        progress.feed(f"{done}/{total} bytes", complete_line=False)
    except httpx.HTTPError as exc:
        raise StepFailed(f"{type(exc).__name__}: {exc}.") from None
    finally:
        progress.finish()
