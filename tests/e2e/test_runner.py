"""`lean-mcp runner` end to end: a real uvicorn subprocess over the REPL stand-in and a SQLite file.

Driven with raw httpx requests shaped exactly like lean-runner's client sends them (form fields
`proof` and `config`, the config a JSON string), with JSON bodies, Kimina batches, and with our
own LeanClient / AsyncLeanClient.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from lean_mcp import (
    AsyncLeanClient,
    AuthenticationError,
    InvalidProofError,
    JobNotFoundError,
    LeanClient,
    ProofConfig,
    ProofTooLargeError,
    QueueFullError,
    RateLimitedError,
    Verdict,
)
from lean_mcp._http_runner import create_app
from lean_mcp._settings import Settings
from tests.e2e.runner_support import RunnerProcess, runner_env, running_runner
from tests.standin import standin_command

# on one xdist worker, so the module's runner starts once
pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("test_runner")]

PROVED = "theorem two : 2 + 2 = 4 := by norm_num\n"
SORRY = "theorem later : 1 + 1 = 2 := by\n  sorry\n"
REJECTED = "theorem wrong : 1 = 2 := by\n  -- standin: error type mismatch\n  rfl\n"
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MAX_PROOF_BYTES = 100_000


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    tmp_path = tmp_path_factory.mktemp("runner")
    env = runner_env(tmp_path, LEAN_MCP_MAX_PROOF_BYTES=str(MAX_PROOF_BYTES))
    with running_runner(tmp_path, env) as process:
        yield process


def lean_runner_form(proof: str, config: ProofConfig | None = None) -> dict[str, str]:
    """The form fields lean-runner's own client posts."""
    return {"proof": proof, "config": (config or ProofConfig()).model_dump_json()}


# --------------------------------------------------------------------------- lean-runner routes


def test_health_reports_the_real_state(runner: RunnerProcess) -> None:
    answer = httpx.get(f"{runner.url}/health").json()
    assert answer["status"] == "ok"
    assert answer["version"]
    assert answer["backend"] == "repl"
    assert answer["live_repls"] == answer["stats"]["backend"]["live"]
    assert isinstance(answer["queue_length"], int)
    assert answer["stats"]["store"].endswith("jobs.sqlite3")


def test_check_with_lean_runners_form_body(runner: RunnerProcess) -> None:
    response = httpx.post(f"{runner.url}/prove/check", data=lean_runner_form(PROVED, ProofConfig(timeout=30)))
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["status"], body["verdict"], body["error_message"]) == (
        True,
        "finished",
        "proved",
        None,
    )
    assert body["result"]["messages"] == []
    assert UUID7.match(body["proof_id"])


def test_a_sorry_is_never_success_and_its_warning_is_kept(runner: RunnerProcess) -> None:
    body = httpx.post(f"{runner.url}/prove/check", data=lean_runner_form(SORRY)).json()
    assert (body["success"], body["status"], body["verdict"]) == (False, "finished", "sorry")
    assert body["result"]["sorries"][0]["pos"] == {"line": 2, "column": 2}
    assert any("sorry" in m["data"] and m["severity"] == "warning" for m in body["result"]["messages"])


def test_a_rejected_proof_carries_lean_message(runner: RunnerProcess) -> None:
    body = httpx.post(f"{runner.url}/prove/check", json={"proof": REJECTED, "config": {"timeout": 30}}).json()
    assert (body["success"], body["verdict"]) == (False, "rejected")
    [error] = [m for m in body["result"]["messages"] if m["severity"] == "error"]
    assert error["data"] == "type mismatch"
    assert error["pos"]["line"] == 2


def test_submit_then_result(runner: RunnerProcess) -> None:
    submitted = httpx.post(f"{runner.url}/prove/submit", data=lean_runner_form(PROVED)).json()
    assert submitted["id"] == submitted["proof_id"]
    assert UUID7.match(submitted["id"])
    body = httpx.get(f"{runner.url}/prove/result/{submitted['id']}", params={"wait": 30}).json()
    assert (body["status"], body["success"], body["proof_id"]) == ("finished", True, submitted["id"])


def test_bad_requests_get_precise_status_codes(runner: RunnerProcess) -> None:
    url = runner.url
    missing = httpx.post(f"{url}/prove/check", data={"config": "{}"})
    assert missing.status_code == 422
    assert "proof" in missing.json()["detail"]
    # `curl -d '{"proof": ...}'` sends JSON labelled as a form: say how to send it.
    mislabelled = httpx.post(
        f"{url}/prove/check",
        content=json.dumps({"proof": PROVED}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert mislabelled.status_code == 422
    assert "Content-Type: application/json" in mislabelled.json()["detail"]
    malformed = httpx.post(f"{url}/prove/check", data={"proof": PROVED, "config": "{timeout: 3"})
    assert malformed.status_code == 400
    assert "config" in malformed.json()["detail"]
    negative = httpx.post(f"{url}/prove/submit", data={"proof": PROVED, "config": '{"timeout": -1}'})
    assert negative.status_code == 400
    assert "config.timeout" in negative.json()["detail"]
    unknown = httpx.get(f"{url}/prove/result/0190a4b2-0000-7000-8000-000000000000")
    assert unknown.status_code == 404
    assert "detail" in unknown.json()
    too_large = httpx.post(f"{url}/prove/check", data={"proof": "-- x\n" * (MAX_PROOF_BYTES // 4)})
    assert too_large.status_code == 413
    assert f"{MAX_PROOF_BYTES:,}" in too_large.json()["detail"]
    huge_body = httpx.post(f"{url}/prove/submit", data={"proof": "x" * (MAX_PROOF_BYTES * 4)})
    assert huge_body.status_code == 413
    unknown_config_keys = httpx.post(f"{url}/prove/check", data={"proof": PROVED, "config": '{"shiny": true}'})
    assert unknown_config_keys.status_code == 200


def test_multipart_bodies_are_accepted(runner: RunnerProcess) -> None:
    fields = {"proof": (None, PROVED), "config": (None, '{"timeout": 30}')}
    body = httpx.post(f"{runner.url}/prove/check", files=fields).json()
    assert (body["status"], body["verdict"]) == ("finished", "proved")
    # `curl -F proof=@Foo.lean`: the proof as an uploaded file.
    uploaded = httpx.post(f"{runner.url}/prove/check", files={"proof": ("Foo.lean", PROVED.encode())}).json()
    assert (uploaded["status"], uploaded["verdict"]) == ("finished", "proved")


def test_a_chunked_multipart_upload_is_cut_off_at_the_limit(runner: RunnerProcess) -> None:
    # No Content-Length: the runner must stop reading at its body limit, not spool it all to disk.
    boundary = "xyz"

    def body() -> Iterator[bytes]:
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="proof"; filename="big.lean"\r\n\r\n'.encode()
        for _ in range(MAX_PROOF_BYTES // 1000):  # 20 × the proof limit
            yield b"-- x\n" * 4000
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    answer = httpx.post(f"{runner.url}/prove/check", content=body(), headers=headers)
    assert answer.status_code == 413, answer.text
    assert "limit" in answer.json()["detail"]


def test_cancel_stops_a_running_job(runner: RunnerProcess) -> None:
    hang = "theorem stuck : True := by\n-- standin: hang\n  trivial\n"
    with LeanClient(runner.url) as client:
        proof = client.submit(hang, {"timeout": 60})
        assert client.wait(proof, timeout=0.5).status in ("pending", "running")
        cancelled = client.cancel(proof)
        assert (cancelled.status, cancelled.success) == ("error", False)
        assert "cancelled" in (cancelled.error_message or "")
        assert client.get_result(proof).status == "error"
        assert client.verify(PROVED).verdict == Verdict.PROVED  # the pool is healthy afterwards


# --------------------------------------------------------------------------- our clients


def test_sync_client_verify_submit_and_get_result(runner: RunnerProcess, tmp_path: Path) -> None:
    proof_file = tmp_path / "proof.lean"
    proof_file.write_text(PROVED, encoding="utf-8")
    with LeanClient(runner.url) as client:
        assert client.verify(str(proof_file)).verdict == Verdict.PROVED
        assert client.verify(SORRY, {"timeout": 30}).verdict == Verdict.SORRY
        submitted = client.submit(REJECTED)
        assert client.get_result(submitted).proof_id == submitted.id
        final = client.wait(submitted, timeout=60)
        assert (final.status, final.verdict) == ("finished", Verdict.REJECTED)
        with pytest.raises(JobNotFoundError):
            client.get_result("not-a-job")
        with pytest.raises(ProofTooLargeError):
            client.verify("-- x\n" * MAX_PROOF_BYTES)


def test_verify_all_over_http_keeps_every_input(runner: RunnerProcess) -> None:
    proofs = [PROVED.replace("two", f"two{n}") for n in range(30)] + [SORRY, REJECTED, "/no/such/file.lean"]
    with LeanClient(runner.url) as client:
        results = list(client.verify_all(proofs, max_workers=16, progress_bar=False))
    by_index = {r.index: r.verdict for r in results}
    assert len(results) == len(proofs) == len(by_index)
    assert all(by_index[n] == Verdict.PROVED for n in range(30))
    assert [by_index[30], by_index[31], by_index[32]] == [Verdict.SORRY, Verdict.REJECTED, Verdict.ERROR]


def test_200_concurrent_submits_all_finish(runner: RunnerProcess) -> None:
    async def run() -> list[str]:
        async with AsyncLeanClient(runner.url) as client:
            proofs = await asyncio.gather(
                *(client.submit(f"theorem t{n} : {n} + 0 = {n} := rfl\n") for n in range(200))
            )
            results = await asyncio.gather(*(client.wait(p, timeout=100) for p in proofs))
            assert [r.proof_id for r in results] == [p.id for p in proofs]
            return [r.status for r in results]

    statuses = asyncio.run(run())
    assert statuses == ["finished"] * 200


def test_the_client_waits_as_long_as_lean_may_take(runner: RunnerProcess) -> None:
    slow = "theorem slow : True := by\n-- standin: work 1.5\n  trivial\n"
    # lean-runner's client would give up after its own 0.5 s; ours waits for Lean's 30 s budget.
    with LeanClient(runner.url, timeout=0.5, headroom=5) as client:
        assert client.verify(slow, {"timeout": 30}).verdict == Verdict.PROVED


def test_create_app_opens_its_own_service_in_the_lifespan(tmp_path: Path) -> None:
    settings = Settings(backend="repl", repl=standin_command(), db=str(tmp_path / "jobs.sqlite3"), workers=1)
    with TestClient(create_app(None, settings)) as http:
        assert http.get("/health").json()["backend"] == "repl"
        body = http.post("/prove/check", data={"proof": PROVED, "config": "{}"}).json()
        assert body["verdict"] == "proved"


# --------------------------------------------------------------------------- Kimina routes


def test_kimina_check_with_a_100_snippet_batch(runner: RunnerProcess) -> None:
    codes = {"proved": PROVED, "sorry": SORRY, "rejected": REJECTED}
    snippets = [{"id": f"{kind}-{n}", "code": codes[kind]} for n in range(32) for kind in codes]
    snippets += [{"id": f"timeout-{n}", "code": "-- standin: hang\ntheorem h : True"} for n in range(4)]
    response = httpx.post(
        f"{runner.url}/api/check",
        json={"snippets": snippets, "timeout": 1, "debug": False, "reuse": True, "infotree": None},
        timeout=120,
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 100
    assert [r["id"] for r in results] == [s["id"] for s in snippets]
    for item in results:
        assert (item["response"] is None) != (item["error"] is None), item
        kind = item["id"].split("-")[0]
        assert item["verdict"] == kind
        if kind == "timeout":
            assert item["error"]
        else:
            assert isinstance(item["response"]["messages"], list)
            assert item["time"] >= 0


def test_kimina_ids_must_be_unique_and_the_body_well_formed(runner: RunnerProcess) -> None:
    twice = [{"id": "a", "code": PROVED}, {"id": "a", "code": PROVED}]
    duplicate = httpx.post(f"{runner.url}/api/check", json={"snippets": twice})
    assert duplicate.status_code == 400
    assert "unique" in duplicate.json()["detail"]
    empty = httpx.post(f"{runner.url}/api/check", json={"snippets": []})
    assert empty.status_code == 422


def test_kimina_verify_older_shape(runner: RunnerProcess) -> None:
    body = {"codes": [{"custom_id": 7, "proof": PROVED}, {"custom_id": "s", "code": SORRY}], "timeout": 30}
    results = httpx.post(f"{runner.url}/verify", json=body).json()["results"]
    assert [r["custom_id"] for r in results] == ["7", "s"]
    assert results[0]["error"] is None
    assert results[0]["response"]["messages"] == []
    assert any(s["goal"] for s in results[1]["response"]["sorries"])


# --------------------------------------------------------------------------- auth and back-pressure


def test_bearer_token_guards_everything_but_health(tmp_path: Path) -> None:
    env = runner_env(tmp_path, LEAN_MCP_API_KEY="s3cret")
    with running_runner(tmp_path, env) as runner:
        public = httpx.get(f"{runner.url}/health")
        assert public.status_code == 200
        assert set(public.json()) == {"status", "message", "version"}  # nothing about the machine
        private = httpx.get(f"{runner.url}/health", headers={"Authorization": "Bearer s3cret"}).json()
        assert private["backend"] == "repl"
        for method, path in (
            ("POST", "/prove/check"),
            ("POST", "/prove/submit"),
            ("GET", "/prove/result/x"),
            ("POST", "/api/check"),
            ("POST", "/verify"),
        ):
            answer = httpx.request(method, f"{runner.url}{path}", data={"proof": PROVED})
            assert answer.status_code == 401, path
            assert "detail" in answer.json()
        wrong = httpx.post(
            f"{runner.url}/prove/check", data={"proof": PROVED}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        # No OAuth here: discovery finds nothing, so a client shows the 401's own words instead.
        discovery = httpx.get(f"{runner.url}/.well-known/oauth-authorization-server")
        assert discovery.status_code == 404
        with LeanClient(runner.url, api_key="s3cret") as client:
            assert client.verify(PROVED).verdict == Verdict.PROVED
        with LeanClient(runner.url, api_key="wrong") as client, pytest.raises(AuthenticationError):
            client.verify(PROVED)


def test_a_full_queue_answers_429(tmp_path: Path) -> None:
    env = runner_env(tmp_path, LEAN_MCP_WORKERS="1", LEAN_MCP_MAX_QUEUE="2")
    with running_runner(tmp_path, env) as runner:
        busy = "-- standin: work 30\ntheorem slow{n} : True := trivial\n"
        codes = [httpx.post(f"{runner.url}/prove/submit", data={"proof": busy.format(n=n)}) for n in range(6)]
        statuses = [c.status_code for c in codes]
        assert statuses.count(200) >= 2
        assert 429 in statuses
        refused = codes[statuses.index(429)]
        assert "queue" in refused.json()["detail"]
        assert refused.headers["retry-after"]
        kimina = httpx.post(f"{runner.url}/api/check", json={"snippets": [{"id": "a", "code": PROVED}] * 1})
        assert kimina.status_code == 429
        assert json.loads(kimina.text)["detail"]
        # The same error on both sides: the client's is a QueueFullError with the server's hint, once.
        with LeanClient(runner.url, retries=0) as client, pytest.raises(QueueFullError) as refused_here:
            client.submit(busy.format(n=99))
        assert isinstance(refused_here.value, RateLimitedError)
        assert refused_here.value.hint == refused.json()["hint"] == QueueFullError.hint
        assert str(refused_here.value).count(QueueFullError.hint) == 1


def test_client_errors_keep_message_and_hint_apart_and_say_each_once(runner: RunnerProcess) -> None:
    with LeanClient(runner.url) as client, pytest.raises(InvalidProofError) as empty:
        client.verify("   \n")
    assert empty.value.message == "The proof is empty."
    assert empty.value.hint == InvalidProofError.hint
    assert str(empty.value) == f"The proof is empty. {InvalidProofError.hint}"


def test_an_infinite_timeout_is_refused_so_the_job_store_stays_loadable(runner: RunnerProcess) -> None:
    # 1e400 and Infinity parse as float('inf'), which the job store cannot write back: refuse them up front.
    for config in ('{"timeout": 1e400}', '{"timeout": Infinity}'):
        answer = httpx.post(f"{runner.url}/prove/submit", data={"proof": PROVED, "config": config})
        assert answer.status_code == 400, answer.text
        assert "config.timeout" in answer.json()["detail"] and "finite" in answer.json()["detail"]
    kimina = httpx.post(
        f"{runner.url}/api/check",
        content=b'{"snippets": [{"id": "a", "code": "theorem t : True := trivial"}], "timeout": 1e400}',
        headers={"content-type": "application/json"},
    )
    assert kimina.status_code == 422 and "timeout" in kimina.json()["detail"]
    assert httpx.post(f"{runner.url}/prove/check", data=lean_runner_form(PROVED)).json()["verdict"] == "proved"


def test_text_that_is_not_unicode_is_a_400_naming_the_field(runner: RunnerProcess) -> None:
    # A lone UTF-16 surrogate is legal JSON escaping but not text: no 500, nothing half-stored.
    surrogate = httpx.post(
        f"{runner.url}/prove/check",
        content=b'{"proof": "theorem t : True := trivial -- \\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert surrogate.status_code == 400, surrogate.text
    assert "surrogate" in surrogate.json()["detail"]
    batch = b'{"snippets": [{"id": "ok", "code": "theorem t : True := trivial"}, {"id": "bad", "code": "\\udc80"}]}'
    kimina = httpx.post(f"{runner.url}/api/check", content=batch, headers={"content-type": "application/json"})
    assert kimina.status_code == 400 and "surrogate" in kimina.json()["detail"]
    # Bytes that are not UTF-8 in a form field are refused, not silently replaced.
    form = b"proof=theorem%20t%20%3A%20True%20%3A%3D%20trivial%FF&config=%7B%7D"
    invalid = httpx.post(
        f"{runner.url}/prove/check", content=form, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert invalid.status_code == 400, invalid.text
    assert "UTF-8" in invalid.json()["detail"]
    assert httpx.post(f"{runner.url}/prove/check", data=lean_runner_form(PROVED)).json()["verdict"] == "proved"
