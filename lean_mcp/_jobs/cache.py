"""The result cache: an identical proof, under an identical configuration and Lean, gets Lean's earlier answer.

The key is the sha256 of the proof text, the configuration fields that can change the answer
(`ProofConfig.answer_key()`: tactic options, the pinned `statement`, `permitted_axioms`), and
the backend's identity (command, project, toolchain, and a hash of
the project files that fix what imports mean: lean-toolchain, lakefile, lake-manifest.json; a remote
backend's identity is new in every process, as the remote's Lean can change unseen). Only Lean's
own answers are cached (proved, sorry, rejected): a timeout, a memory kill or a crash may not happen
again, so those are always re-run; so is a rejection for an import error (`ProofResult.reusable` false:
the project may be built meanwhile). An answer is served only to a request whose timeout its Lean
time fits within (`service._within_limits`): a proof that took 100 s is no `proved` under a 1 s
limit. The store is the cache (finished jobs keep their key); a small
in-memory LRU in front of it answers hot keys without touching SQLite.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence

from .._models import ProofConfig, ProofResult
from .store import JobStore

#: The hashed text's first byte, hashed once: each key continues a copy of it.
_OPEN_LIST = hashlib.sha256(b"[")
#: `json.dumps(text, ensure_ascii=False)` for a str, without building an encoder per call.
_encode_text = json.JSONEncoder(ensure_ascii=False).encode


def cache_key(code: str, config: ProofConfig, backend_identity: str) -> str:
    """The sha256 (hex) that identifies Lean's answer to `code` under `config` on this backend."""
    return cache_keys([code], config, backend_identity)[0]


def cache_keys(codes: Sequence[str], config: ProofConfig, backend_identity: str) -> list[str]:
    """`cache_key` of each of `codes` under one `config` and backend (the shared part is encoded once).

    The hashed text is `json.dumps([code, config.answer_key(), backend_identity], sort_keys=True,
    ensure_ascii=False)`: a list's items are encoded one by one, so the code's JSON followed by the
    tail encoded once is the same text, byte for byte.
    """
    tail = json.dumps([config.answer_key(), backend_identity], sort_keys=True, ensure_ascii=False)[1:]
    keys = []
    for code in codes:
        digest = _OPEN_LIST.copy()  # (copying a started hash skips OpenSSL's lookup of sha256 by name)
        digest.update(f"{_encode_text(code)}, {tail}".encode("utf-8", errors="surrogatepass"))
        keys.append(digest.hexdigest())
    return keys


def cacheable(result: ProofResult) -> bool:
    """True for Lean's own answers (proved, sorry, rejected), never for failures nor unreusable answers."""
    return result.verdict is not None and result.verdict.lean_finished and not result.cached and result.reusable


class ResultCache:
    """Looks results up by key: the in-memory LRU first, then the job store."""

    def __init__(self, store: JobStore, *, enabled: bool = True, memory_entries: int = 4096) -> None:
        self.store = store
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._memory_entries = memory_entries

    async def lookup(self, key: str) -> ProofResult | None:
        """Lean's earlier answer for `key` (marked `cached`), or None."""
        return (await self.lookup_many([key])).get(key)

    async def lookup_many(self, keys: Sequence[str]) -> dict[str, ProofResult]:
        """Lean's earlier answers for those of `keys` that have one (one store query for the rest)."""
        texts = {key: self._memory[key] for key in keys if key in self._memory}
        for key in texts:
            self._memory.move_to_end(key)
        missing = [key for key in keys if key not in texts]
        if missing:
            stored = await self.store.cached_results(missing)
            for key, text in stored.items():
                self._remember_text(key, text)
            texts.update(stored)
        self.hits += sum(1 for key in keys if key in texts)
        self.misses += sum(1 for key in keys if key not in texts)
        return {key: self._as_cached(text) for key, text in texts.items()}

    @staticmethod
    def _as_cached(text: str) -> ProofResult:
        result = ProofResult.model_validate_json(text)
        return result.as_answer(None, cached=True)

    def remember(self, key: str, result: ProofResult, result_json: str | None = None) -> None:
        """Note a fresh Lean answer (`result_json`: its JSON, if at hand); failures are ignored, as is
        everything while the cache is off."""
        if self.enabled and cacheable(result):
            self._remember_text(key, result_json or result.model_dump_json())

    def _remember_text(self, key: str, text: str) -> None:
        self._memory[key] = text
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)

    def forget_all(self) -> None:
        """Drop the in-memory entries (after pruning, so pruned answers are not served)."""
        self._memory.clear()
