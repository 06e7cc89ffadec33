"""The endpoint judge against a real HTTP server on 127.0.0.1 that injects faults: 429 with Retry-After
(seconds and HTTP-date), 503 then success, empty content, a refusal, malformed JSON, a dropped
connection. Verdicts are cached as they arrive; a rerun asks only for the missing ones."""

import email.utils
import json
import threading
import time
from http.server import ThreadingHTTPServer

import pytest

from conftest import JsonHandler
from safety_landscape.io import read_cache_entry
from safety_landscape.judges import (
    Exchange,
    JudgeError,
    judge_cache_dir,
    judge_records,
    open_judge,
    response_digest,
    retry_after_seconds,
)


class FaultyEndpoint(JsonHandler):
    """/chat/completions answering "yes"; the request's response text picks a fault (once or always)."""

    requests: list[str] = []
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][1]["content"].split("[RESPONSE]\n")[1]
        with self.lock:
            type(self).requests.append(text)
            count = self.seen[text] = self.seen.get(text, 0) + 1
        if text == "rate-limited" and count == 1:
            return self.fail(429, {"Retry-After": "1"})
        if text == "rate-limited-date" and count == 1:
            return self.fail(429, {"Retry-After": email.utils.formatdate(time.time() + 2, usegmt=True)})
        if text == "unavailable" and count == 1:
            return self.fail(503, {})
        if text == "dropped":  # every attempt: the connection closes without a reply
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if text == "malformed":
            return self.reply(b"{not json")
        content = {"empty": "", "refused": "I'm sorry, but I can't help with grading this."}.get(text, "yes")
        self.reply(json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode())

    def fail(self, code, headers):
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def spec():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaultyEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FaultyEndpoint.requests, FaultyEndpoint.seen = [], {}
    yield {
        "name": "endpoint",
        "id": "ep",
        "url": f"http://127.0.0.1:{server.server_port}/v1",
        "model": "judge",
        "concurrency": 8,
        "retries": 2,
        "backoff_s": 0.05,
        "timeout_s": 5,
    }
    server.shutdown()


RESPONSES = ["fine", "rate-limited", "rate-limited-date", "unavailable", "empty", "refused", "malformed", "dropped"]


def records():
    return [{"landscape": "d1", "a": 0.0, "index": i, "prompt": f"request {i}", "response": r} for i, r in enumerate(RESPONSES)]


def test_faults_lose_only_their_own_verdict_and_a_rerun_asks_only_for_the_missing(spec, tmp_path):
    began = time.perf_counter()
    with pytest.raises(
        JudgeError, match=r"1 of 8 requests got no verdict .*failed 3 times.*run again to ask only for the missing"
    ):
        judge_records(open_judge(spec), spec, records(), tmp_path)
    elapsed = time.perf_counter() - began
    assert elapsed >= 1.0  # the HTTP-date Retry-After (about 2 s, whole seconds) was waited for
    per_response = {text: FaultyEndpoint.requests.count(text) for text in RESPONSES}
    assert per_response == {
        "fine": 1,
        "rate-limited": 2,
        "rate-limited-date": 2,
        "unavailable": 2,
        "empty": 1,
        "refused": 1,
        "malformed": 1,
        "dropped": 3,  # 1 + 2 retries
    }
    cache = judge_cache_dir(tmp_path, spec)
    entries = {r["response"]: read_cache_entry(cache / f"{response_digest(r['prompt'], r['response'])}.json") for r in records()}
    assert entries == {
        "fine": {"jailbroken": True, "detail": None},
        "rate-limited": {"jailbroken": True, "detail": None},
        "rate-limited-date": {"jailbroken": True, "detail": None},
        "unavailable": {"jailbroken": True, "detail": None},
        "empty": {"jailbroken": None, "detail": "", "reason": "the reply has no content"},
        "refused": {
            "jailbroken": None,
            "detail": "I'm sorry, but I can't help with grading this.",
            "reason": 'the judge model refused ("I\'m sorry"); the rubric asks for yes or no',
        },
        "malformed": {"jailbroken": None, "detail": "{not json", "reason": "malformed reply: no choices[0] text or message"},
        "dropped": None,  # lost alone; every other verdict is cached
    }
    FaultyEndpoint.requests = []
    with pytest.raises(JudgeError, match="1 of 1 requests got no verdict"):
        judge_records(open_judge(spec), spec, records(), tmp_path)
    assert FaultyEndpoint.requests == ["dropped"] * 3  # the rerun asks only for the missing verdict


def test_retry_after_is_honoured_in_seconds(spec, tmp_path):
    one = [{"landscape": "d1", "a": 0.0, "index": 0, "prompt": "p", "response": "rate-limited"}]
    began = time.perf_counter()
    judgments, asked = judge_records(open_judge(spec), spec, one, tmp_path)
    elapsed = time.perf_counter() - began
    assert asked == 1 and judgments[0]["jailbroken"] is True
    assert 1.0 <= elapsed < 1.8  # Retry-After: 1, not the 0.05 s backoff
    again, asked = judge_records(open_judge(spec), spec, one, tmp_path)
    assert asked == 0 and again == judgments and FaultyEndpoint.requests == ["rate-limited"] * 2


def test_backoff_without_retry_after_is_short_and_jittered(spec, tmp_path):
    one = [{"landscape": "d1", "a": 0.0, "index": 0, "prompt": "p", "response": "unavailable"}]
    began = time.perf_counter()
    judgments, _ = judge_records(open_judge(spec), spec, one, tmp_path)
    assert judgments[0]["jailbroken"] is True and time.perf_counter() - began < 0.9  # 0.025-0.05 s, not a Retry-After


def test_retry_after_header_forms():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert 9 <= retry_after_seconds(email.utils.formatdate(time.time() + 10, usegmt=True)) <= 10
    assert retry_after_seconds(email.utils.formatdate(time.time() - 10, usegmt=True)) == 0.0


def test_max_tokens_temperature_and_format_reach_the_request(spec):
    judge = open_judge(spec | {"max_tokens": 5, "temperature": 0.5, "format": "strongreject"})
    body = json.loads(judge.body(Exchange("p", "r")))
    assert (body["max_tokens"], body["temperature"], body["messages"][0]["role"]) == (5, 0.5, "system")
    raw = open_judge(spec | {"format": "harmbench"})
    assert raw.url.endswith("/v1/completions") and json.loads(raw.body(Exchange("p", "r")))["prompt"].startswith("[INST] <<SYS>>")
    assert json.loads(raw.body(Exchange("p", "r")))["max_tokens"] == 1
