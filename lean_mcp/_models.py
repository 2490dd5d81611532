"""What a proof, its configuration and its result are: plain pydantic data, no I/O.

`ProofResult` serialises exactly as lean-runner's does (`success`, `status`, `result`,
`error_message`) and adds fields of its own (`verdict`, `lean_time`, `proof_id`, `cached`).
`success` is strict here: true only when Lean accepted the proof with no error and no sorry.
"""

from __future__ import annotations

import enum
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from ._settings import DEFAULT_MEMORY_MB, DEFAULT_PERMITTED_AXIOMS, DEFAULT_TIMEOUT

__all__ = [
    "DEFAULT_PERMITTED_AXIOMS",
    "MAX_TACTICS_PER_TRY",
    "FailureKind",
    "JobStatus",
    "LeanOutput",
    "Message",
    "Pos",
    "Proof",
    "ProofConfig",
    "ProofResult",
    "ProofStatus",
    "RunTacticRequest",
    "Severity",
    "Sorry",
    "TacticCheck",
    "TacticResult",
    "TryTacticsRequest",
    "TryTacticsResult",
    "Verdict",
    "verdict_of",
]


#: The axioms a `proved` theorem may depend on unless the server says otherwise (`--permitted-axioms`).


class JobStatus(enum.StrEnum):
    """Where a proof job is: lean-runner's four statuses."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"


class Verdict(enum.StrEnum):
    """What Lean said of a proof, in one word.

    `proved` is the only success. `sorry` and `rejected` mean Lean ran and did not accept the
    proof; `timeout`, `memory_limit` and `error` mean Lean could not finish checking it.
    """

    PROVED = "proved"
    SORRY = "sorry"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    ERROR = "error"

    @property
    def lean_finished(self) -> bool:
        """True when Lean ran to the end and the verdict is its answer, not an infrastructure failure."""
        return self in LEAN_ANSWERS


#: (Enum members looked up once: in Python 3.11 a lookup on the class costs a Python call, and
#: `verdict_of` runs on every result.)
_PROVED, _SORRY, _REJECTED = Verdict.PROVED, Verdict.SORRY, Verdict.REJECTED
LEAN_ANSWERS = (_PROVED, _SORRY, _REJECTED)
_FINISHED = JobStatus.FINISHED


class FailureKind(enum.StrEnum):
    """lean-runner's `result.status` for a job whose status is `error`."""

    TIMEOUT = "timeout"
    PROCESS_ERROR = "process_error"
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    FAILED = "failed"


_FAILURE_KIND_OF_VERDICT = {
    Verdict.TIMEOUT: FailureKind.TIMEOUT,
    Verdict.MEMORY_LIMIT: FailureKind.MEMORY_LIMIT_EXCEEDED,
    Verdict.ERROR: FailureKind.PROCESS_ERROR,
}


class Severity(enum.StrEnum):
    """A Lean message's severity as the REPL writes it."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


_ERROR, _WARNING = Severity.ERROR, Severity.WARNING


class Pos(BaseModel):
    """A position in the proof text: `line` is 1-based, `column` 0-based in Unicode code points."""

    model_config = ConfigDict(frozen=True)

    line: int = Field(ge=0)
    column: int = Field(ge=0)

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


class Message(BaseModel):
    """One Lean message, shaped as the REPL writes it (`endPos` is null when Lean gives none)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    severity: Severity
    pos: Pos
    end_pos: Pos | None = Field(default=None, alias="endPos")
    data: str

    @classmethod
    def assembled(cls, severity: Severity, pos: Pos, end_pos: Pos | None, data: str) -> Message:
        """What `Message(severity=severity, pos=pos, end_pos=end_pos, data=data)` builds, without validating
        again: each must already be of its field's type (as `lean.messages` makes them, for every message)."""
        values = {"severity": severity, "pos": pos, "end_pos": end_pos, "data": data}
        return _assembled(cls, values, {"severity", "pos", "end_pos", "data"})

    @classmethod
    def error(cls, text: str, line: int = 1, column: int = 0) -> Message:
        """A synthesised error message (for failures Lean itself did not report)."""
        return cls(severity=Severity.ERROR, pos=Pos(line=line, column=column), data=text)


class Sorry(BaseModel):
    """A `sorry` left in the proof, with the goal it stands for."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    pos: Pos | None = None
    end_pos: Pos | None = Field(default=None, alias="endPos")
    goal: str
    proof_state: int | None = Field(default=None, alias="proofState")
    #: (`repl` backend) an opaque handle on this goal for `run_tactic` / `try_tactics`.
    proof_state_id: str | None = None


_SORRY_WARNING = re.compile(r"declaration uses ['`]sorry['`]")


def _absent(value: object) -> bool:
    """True for an optional output key's value that is left out of the JSON."""
    return value is None


class LeanOutput(BaseModel):
    """The `result` of a ProofResult: the REPL's command response, or lean-runner's failure record.

    On success paths it holds `env`, `messages`, `sorries` (and `tactics`/`infotree` when asked
    for). On failures (`status` set) it still carries at least one error message saying what
    happened, so a client that only reads messages never mistakes a failure for a clean run.
    Unknown keys (e.g. a newer REPL's) are kept.
    """

    model_config = ConfigDict(extra="allow")

    # The optional keys are left out of the JSON while None (`exclude_if`: serialised without a
    # call into Python per output, which a wrap serializer that dropped them cost on every answer).
    env: int | None = Field(default=None, exclude_if=_absent)
    messages: list[Message] = Field(default_factory=list)
    sorries: list[Sorry] = Field(default_factory=list)
    tactics: list[dict[str, Any]] | None = Field(default=None, exclude_if=_absent)
    infotree: Any = Field(default=None, exclude_if=_absent)
    status: FailureKind | None = Field(default=None, exclude_if=_absent)
    return_code: int | None = Field(default=None, exclude_if=_absent)
    error_type: str | None = Field(default=None, exclude_if=_absent)

    @property
    def errors(self) -> list[Message]:
        """The error-severity messages."""
        return [m for m in self.messages if m.severity == _ERROR]

    @classmethod
    def assembled(cls, values: dict[str, Any], extra: dict[str, Any]) -> LeanOutput:
        """What `LeanOutput(**values, **extra)` builds, without validating again: each of `values` must
        already be of its field's type (as `lean.messages` makes them, for every proof); `extra`
        holds the unknown keys."""
        fields = {**_OUTPUT_DEFAULTS, **values}
        for name in ("messages", "sorries"):
            if fields[name] is None:
                fields[name] = []
        return _assembled(cls, fields, {*values, *extra}, extra)


def verdict_of(output: LeanOutput) -> Verdict:
    """Lean accepted the proof iff there is no error message and no sorry."""
    sorry = bool(output.sorries)
    for message in output.messages:
        if message.severity == _ERROR:
            return _REJECTED
        if not sorry and message.severity == _WARNING and _SORRY_WARNING.search(message.data):
            sorry = True
    return _SORRY if sorry else _PROVED


_MESSAGES_SET = frozenset({"messages"})
_ANSWER_FIELDS = frozenset({"proof_id", "cached"})
#: The fields `ProofResult.from_output` counts as set when given checks and axioms, no proof id.
_REJUDGED_FIELDS = frozenset({"success", "status", "result", "verdict", "lean_time", "checks", "axioms"})
#: LeanOutput's fields in their order, each None (its default, but for the two lists: `assembled`).
_OUTPUT_DEFAULTS: dict[str, Any] = dict.fromkeys(LeanOutput.model_fields)
_Model = TypeVar("_Model", bound=BaseModel)


def _assembled(
    cls: type[_Model], values: dict[str, Any], fields_set: set[str], extra: dict[str, Any] | None = None
) -> _Model:
    """A `cls` holding `values`: every field, each already of its field's type. It is what validating
    them would build (pydantic's own `model_construct` and `__copy__` set the same four attributes),
    without validation's cost, for the models lean-mcp builds on every proof from parts already valid."""
    model = _new(cls)  # (no model of ours has a __new__ of its own)
    _set_dict(model, values)
    _set_fields_set(model, fields_set)
    _set_extra(model, extra)
    _set_private(model, None)
    return model


_new = object.__new__
#: The setters of BaseModel's four slots, bound once: what `object.__setattr__(model, name, value)` calls
#: in the end, without its lookup of the name on every call (a third of `_assembled`'s cost).
_set_dict, _set_fields_set, _set_extra, _set_private = (
    BaseModel.__dict__[name].__set__
    for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
)


class ProofConfig(BaseModel):
    """How to check one proof: lean-runner's fields and defaults. Unknown keys are ignored.

    `timeout` is wall-clock seconds for Lean's work; `memory_limit_mb` caps the Lean process;
    `all_tactics` asks the REPL for every tactic's proof state (`result.tactics`).
    `use_cache` (ours) lets a request opt out of the result cache; it never changes the answer.
    lean-runner's clients also send `tactics`, `ast` and `premises`: the REPL ignores them there,
    so here they are accepted and ignored like any unknown key.
    """

    model_config = ConfigDict(extra="ignore")

    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, allow_inf_nan=False)
    all_tactics: bool = False
    memory_limit_mb: int = Field(default=DEFAULT_MEMORY_MB, gt=0)
    use_cache: bool = True
    #: The challenge (ours): Lean text whose theorems are proved by `sorry`; the proof must prove them.
    statement: str | None = None
    #: Axioms accepted on top of the server's `--permitted-axioms` (ours).
    permitted_axioms: list[str] = Field(default_factory=list)

    @field_validator("statement")
    @classmethod
    def _statement_has_text(cls, statement: str | None) -> str | None:
        # an empty challenge would pin nothing: refused, never taken as "no statement"
        if statement is not None and not statement.strip():
            raise ValueError("the statement is empty: send the challenge's Lean text, or leave `statement` out")
        return statement

    def answer_key(self) -> dict[str, Any]:
        """The fields that can change the answer (what a cache must key on)."""
        key = self.model_dump(include={"all_tactics", "statement"})
        key["permitted_axioms"] = sorted(set(self.permitted_axioms))
        return key


class Proof(BaseModel):
    """A handle on a submitted proof job."""

    id: str
    status: JobStatus = JobStatus.PENDING


class ProofResult(BaseModel):
    """The answer to a proof: lean-runner's shape plus `verdict`, `lean_time`, `proof_id`, `cached`.

    `success` is null while the job is pending or running, true only for verdict `proved`.
    """

    success: bool | None = None
    status: JobStatus
    result: LeanOutput | None = None
    error_message: str | None = None
    verdict: Verdict | None = None
    lean_time: float | None = Field(default=None, description="Seconds Lean spent on this proof.")
    proof_id: str | None = None
    cached: bool = False
    #: The checks that decided the verdict (ours): "lean", "sorry", "axioms", "statement".
    checks: list[str] = Field(default_factory=list)
    #: Every audited theorem's full name → the axioms it depends on (ours; null when not audited).
    axioms: dict[str, list[str]] | None = None
    #: False when the answer depends on more than the text and the Lean (an import that failed may
    #: work once the project is built): such an answer is never served from the cache. Not serialised.
    reusable: SkipJsonSchema[bool] = Field(default=True, exclude=True, repr=False)

    @classmethod
    def pending(cls, proof_id: str | None = None, status: JobStatus = JobStatus.PENDING) -> ProofResult:
        """The result of a job that has not finished yet."""
        return cls(status=status, proof_id=proof_id)

    @classmethod
    def from_output(
        cls,
        output: LeanOutput,
        lean_time: float | None = None,
        *,
        proof_id: str | None = None,
        checks: list[str] | None = None,
        axioms: dict[str, list[str]] | None = None,
        reusable: bool = True,
    ) -> ProofResult:
        """The result of a proof that Lean checked to the end.

        Built from parts that are valid by their types (`output` is a validated LeanOutput), so without
        validating them again: this runs for every proof. `tests/test_models.py` pins it to validation.
        """
        verdict = verdict_of(output)
        values = {
            "success": verdict is _PROVED,
            "status": _FINISHED,
            "result": output,
            "error_message": None,
            "verdict": verdict,
            "lean_time": None if lean_time is None else float(lean_time),
            "proof_id": proof_id,
            "cached": False,
            "checks": [] if checks is None else list(checks),
            "axioms": None if axioms is None else {name: list(found) for name, found in axioms.items()},
            "reusable": bool(reusable),
        }
        given = {"success", "status", "result", "verdict", "lean_time"}  # what validation would count as set
        if proof_id is not None:
            given.add("proof_id")
        if checks is not None:
            given.add("checks")
        if axioms is not None:
            given.add("axioms")
        if not reusable:
            given.add("reusable")
        return _assembled(cls, values, given)

    def rejudge(self, messages: list[Message], *, checks: list[str], axioms: dict[str, list[str]]) -> ProofResult:
        """This result of a proof Lean checked to the end, changed in place to hold `messages` instead of its
        output's, the verdict they give, `checks` and `axioms` (taken as they are): what
        `from_output(self.result.model_copy(update={"messages": messages}), self.lean_time, checks=..., axioms=...,
        reusable=...)`
        builds, without building two new models. Only for a result nothing else holds: the one a backend's
        `check` just returned (`Backend.check`: the caller owns it). `tests/test_models.py` pins the two."""
        output = self.result
        assert output is not None, "only a result Lean checked to the end holds an output to judge"
        output.__dict__["messages"] = messages
        _set_fields_set(output, output.__pydantic_fields_set__ | _MESSAGES_SET)
        verdict = verdict_of(output)
        values = self.__dict__
        values["success"], values["verdict"], values["status"] = verdict is _PROVED, verdict, _FINISHED
        values["error_message"], values["proof_id"], values["cached"] = None, None, False
        values["checks"], values["axioms"] = list(checks), axioms
        _set_fields_set(self, set(_REJUDGED_FIELDS) if values["reusable"] else {*_REJUDGED_FIELDS, "reusable"})
        return self

    def as_answer(self, proof_id: str | None, *, cached: bool = False) -> ProofResult:
        """This result as the answer to job `proof_id` (`cached`: served from the result cache).

        What `model_copy(update={"proof_id": proof_id, "cached": cached})` makes (the parts shared, not
        copied), without its per-call cost: the job service calls it for every job.
        """
        values = self.__dict__.copy()
        values["proof_id"], values["cached"] = proof_id, cached
        return _assembled(type(self), values, self.__pydantic_fields_set__ | _ANSWER_FIELDS)

    def answer_to(self, proof_id: str) -> ProofResult:
        """This result, changed in place to answer job `proof_id` (not `cached`): what `as_answer(proof_id)`
        makes, without the copy. Only for a result nothing else holds, as `rejudge`: the one a backend's
        `check` just returned, or one the job service just built. `tests/test_models.py` pins the two."""
        values = self.__dict__
        values["proof_id"], values["cached"] = proof_id, False
        _set_fields_set(self, self.__pydantic_fields_set__ | _ANSWER_FIELDS)
        return self

    @classmethod
    def failure(
        cls,
        verdict: Verdict,
        error_message: str,
        *,
        lean_time: float | None = None,
        return_code: int | None = None,
        error_type: str | None = None,
        kind: FailureKind | None = None,
    ) -> ProofResult:
        """The result of a proof Lean could not finish: timeout, memory kill, crash, unreachable runner."""
        if verdict.lean_finished:
            raise ValueError(f"{verdict} is a Lean answer, not a failure")
        output = LeanOutput(
            messages=[Message.error(error_message)],
            status=kind or _FAILURE_KIND_OF_VERDICT[verdict],
            return_code=return_code,
            error_type=error_type,
        )
        return cls(
            success=False,
            status=JobStatus.ERROR,
            result=output,
            error_message=error_message,
            verdict=verdict,
            lean_time=lean_time,
        )

    @property
    def done(self) -> bool:
        """True once the job has its final answer."""
        return self.status in (JobStatus.FINISHED, JobStatus.ERROR)

    @property
    def messages(self) -> list[Message]:
        """Lean's messages (empty while pending)."""
        return self.result.messages if self.result else []

    @property
    def sorries(self) -> list[Sorry]:
        """The sorries left in the proof (empty while pending)."""
        return self.result.sorries if self.result else []


class ProofStatus(enum.StrEnum):
    """Where a proof stands after a tactic (tactic mode).

    `completed` is as strict as `proved`: the REPL says the proof is complete (the kernel checked
    it, no sorry, no metavariable) and every check in the result's `checks` passed.
    """

    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    ERROR = "error"


class TacticCheck(BaseModel):
    """One check that decided a tactic result's `proof_status`, and whether it passed."""

    name: str
    passed: bool
    detail: str | None = None


class TacticResult(BaseModel):
    """The answer to one tactic run on a proof state.

    `proof_state_id` names the new state (use it for the next tactic; the old one stays usable);
    it is null when the tactic failed. `failure` is set when Lean could not answer at all
    (`timeout`, `memory_limit`, `crash`): the REPL was killed and its proof states are gone.
    """

    tactic: str
    proof_state_id: str | None = None
    goals: list[str] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)
    sorries: list[Sorry] = Field(default_factory=list)
    proof_status: ProofStatus
    repl_status: str | None = Field(default=None, description="The REPL's own proofStatus text.")
    checks: list[TacticCheck] = Field(default_factory=list)
    failure: str | None = None
    lean_time: float | None = None


class TryTacticsResult(BaseModel):
    """Several tactics, each run from the same proof state: one result per tactic, in order."""

    proof_state_id: str
    results: list[TacticResult]


class RunTacticRequest(BaseModel):
    """The body of the runner's `POST /tactic/run`."""

    proof_state_id: str
    tactic: str
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)


#: Most tactics one `try_tactics` call may run.
MAX_TACTICS_PER_TRY = 64


class TryTacticsRequest(BaseModel):
    """The body of the runner's `POST /tactic/try`."""

    proof_state_id: str
    tactics: list[str] = Field(min_length=1, max_length=MAX_TACTICS_PER_TRY)
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
