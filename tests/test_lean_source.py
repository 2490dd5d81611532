"""The one proof-file reader: regular UTF-8 files within the size limit, never blocking on a FIFO."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lean_mcp._errors import InvalidProofError, ProofTooLargeError
from lean_mcp._lean.source import read_proof_file

pytestmark = pytest.mark.timeout(10)


def test_a_file_within_the_limit_is_read_exactly(tmp_path: Path) -> None:
    path = tmp_path / "p.lean"
    path.write_bytes("theorem t : True := trivial -- ∀\n".encode())
    assert read_proof_file(path, max_bytes=path.stat().st_size) == "theorem t : True := trivial -- ∀\n"
    assert read_proof_file(str(path)) == "theorem t : True := trivial -- ∀\n"


def test_a_file_over_the_limit_is_refused_with_both_sizes(tmp_path: Path) -> None:
    path = tmp_path / "big.lean"
    path.write_text("-- x\n" * 300)
    with pytest.raises(ProofTooLargeError, match=r"big\.lean is 1,500 bytes; the limit is 1,000 bytes"):
        read_proof_file(path, max_bytes=1000)


def test_missing_fifo_device_directory_and_bad_utf8_are_named(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.lean"
    os.mkfifo(fifo)  # reading it would block forever
    bad = tmp_path / "bad.lean"
    bad.write_bytes(b"theorem t : True := trivial -- \xff\n")
    cases = {
        tmp_path / "missing.lean": "it does not exist",
        fifo: "it is not a regular file",
        Path("/dev/zero"): "it is not a regular file",
        tmp_path: "it is not a regular file",
        bad: "it is not UTF-8 text (byte 0xff at offset 31)",
    }
    for path, reason in cases.items():
        with pytest.raises(InvalidProofError) as caught:
            read_proof_file(path, max_bytes=1000)
        assert str(caught.value).startswith(f"Cannot read the proof file {path}: {reason}."), str(caught.value)
        assert "readable UTF-8 .lean file" in caught.value.hint
