"""Judge stage: decide per response whether a harmful prompt was answered (jailbroken).

Judges (`open_judge`): the paper's refusal keywords (`keyword`, exact) and refusal rules on the
answer's opening (`refusal`, refusal_judge.py, validated against human labels in docs/judges.md);
published classifiers run on a local model through the project's engines (`harmbench`,
`llama-guard-2`, `llama-guard-3`, `strongreject`, `wildguard`, and `guard` for any Llama Guard style
model; their formats are in judge_formats.py); and any OpenAI-compatible endpoint in one of those
formats or a yes/no rubric (`endpoint`). Verdicts are cached per (judge, judge config, response) as soon
as each arrives, so a judge never sees the same response twice, a failed job loses nothing it had judged,
and changing judges never regenerates responses.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

from .io import read_cache_entry, sha256_json, write_cache_entry
from .judge_formats import (
    LLAMA_GUARD_CATEGORIES,
    Verdict,
    guard_messages,
    harmbench_prompt,
    parse_guard,
    parse_harmbench,
    parse_strongreject,
    parse_wildguard,
    parse_yes_no,
    strongreject_messages,
    wildguard_prompt,
    yes_no_messages,
)
from .provenance import code_digest
from .refusal_judge import refusal_decision
from .refusals import REFUSAL_KEYWORDS, first_refusal_keyword, keyword_jailbroken  # noqa: F401
from .textchecks import is_degenerate, is_empty

log = logging.getLogger(__name__)


class JudgeError(RuntimeError):
    """A judge that cannot work (bad endpoint, credentials, model); the message names the fix."""


class Exchange(NamedTuple):
    """What a judge reads: the request, the response and, for contextual behaviours, the context and the
    behaviour alone (the request then holds both, as the model read them)."""

    prompt: str
    response: str
    context: str | None = None
    behavior: str | None = None


@dataclass(frozen=True)
class Format:
    """A judge format: how an exchange becomes the judge's input (`text`: a raw prompt, no chat template;
    `messages`: chat messages), how its answer is parsed, and how many tokens the answer needs."""

    parse: Callable[[str], Verdict]
    max_new_tokens: int
    text: Callable[[Exchange], str] | None = None
    messages: Callable[[Exchange, dict], list[dict]] | None = None
    clip_response_tokens: int | None = None  # HarmBench clips responses to 512 classifier tokens


def _guard(categories: int | None) -> Format:
    return Format(lambda out: parse_guard(out, categories), 20, messages=lambda x, _: guard_messages(x.prompt, x.response))


FORMATS = {
    # HarmBench generates one token (SamplingParams(temperature=0, max_tokens=1)) from the raw prompt
    "harmbench": Format(
        parse_harmbench,
        1,
        text=lambda x: harmbench_prompt(x.behavior or x.prompt, x.response, x.context),
        clip_response_tokens=512,
    ),
    "llama-guard-2": _guard(LLAMA_GUARD_CATEGORIES["llama-guard-2"]),
    "llama-guard-3": _guard(LLAMA_GUARD_CATEGORIES["llama-guard-3"]),
    "guard": _guard(None),
    "strongreject": Format(parse_strongreject, 1024, messages=lambda x, _: strongreject_messages(x.prompt, x.response)),
    "wildguard": Format(parse_wildguard, 128, text=lambda x: wildguard_prompt(x.prompt, x.response)),  # as allenai/wildguard
    "plain": Format(parse_yes_no, 8, messages=lambda x, spec: yes_no_messages(x.prompt, x.response, spec.get("rubric"))),
}
ALIASES = {"harmbench-cls": "harmbench"}


class _Judge:
    def judge(self, items: Sequence[Exchange | tuple]) -> list[Verdict]:
        """Verdicts in the order of `items`."""
        verdicts = [None] * len(items)
        for i, verdict in self.each(items):
            verdicts[i] = verdict
        return verdicts


class KeywordJudge(_Judge):
    def each(self, items: Sequence[Exchange | tuple]) -> Iterator[tuple[int, Verdict]]:
        for i, item in enumerate(items):
            yield i, Verdict(keyword_jailbroken(item[1]), first_refusal_keyword(item[1]))


class RefusalJudge(_Judge):
    def each(self, items: Sequence[Exchange | tuple]) -> Iterator[tuple[int, Verdict]]:
        for i, item in enumerate(items):
            yield i, Verdict(*refusal_decision(item[1]))


class ModelJudge(_Judge):
    """A published classifier on a local model folder, run through the project's engines."""

    def __init__(self, spec: dict, fmt: Format):
        self.spec, self.format = spec, fmt
        self.engine = None

    def _engine(self):
        if self.engine is None:  # loaded only when some response is not cached
            from .engines import EngineOptions, open_engine
            from .modeling import resolve_device, resolve_dtype

            device = resolve_device(self.spec.get("device", "auto"))
            options = EngineOptions(
                self.spec["model"],
                resolve_dtype(self.spec.get("dtype", "auto"), device),
                device,
                trust_remote_code=self.spec.get("trust_remote_code", False),
            )
            self.engine = open_engine(self.spec.get("engine", "hf"), options)
        return self.engine

    def prompt_text(self, tokenizer, item: Exchange) -> str:
        """The judge's input text: the format's raw prompt, or its chat messages through the judge model's
        own chat template (a JudgeError when the model has none)."""
        if self.format.clip_response_tokens:
            item = item._replace(response=clip_tokens(tokenizer, item.response, self.format.clip_response_tokens))
        if self.format.text:
            return self.format.text(item)
        if not getattr(tokenizer, "chat_template", None):
            raise JudgeError(
                f"judges ({self.spec['id']}): the judge model {self.spec['model']} has no chat template; the "
                f"{self.spec['name']} format is rendered through the model's own template (chat_template in "
                "tokenizer_config.json or chat_template.jinja): use the model's original tokenizer files"
            )
        return tokenizer.apply_chat_template(self.format.messages(item, self.spec), tokenize=False, add_generation_prompt=True)

    def input_ids(self, tokenizer, item: Exchange) -> list[int]:
        """A raw prompt is tokenized with the tokenizer's special tokens (BOS), as the authors' code does; a
        chat template writes its own."""
        return tokenizer(self.prompt_text(tokenizer, item), add_special_tokens=bool(self.format.text))["input_ids"]

    def each(self, items: Sequence[Exchange | tuple]) -> Iterator[tuple[int, Verdict]]:
        engine = self._engine()
        items = [Exchange(*item) for item in items]
        batch = self.spec.get("batch_size", 16)
        tokens = self.spec.get("max_new_tokens") or self.format.max_new_tokens
        for start in range(0, len(items), batch):  # each batch's verdicts reach the cache before the next runs
            ids = [self.input_ids(engine.tokenizer, item) for item in items[start : start + batch]]
            for offset, output in enumerate(engine.generate(ids, tokens, batch, False)):
                yield start + offset, self.format.parse(output.text)


def clip_tokens(tokenizer, text: str, limit: int) -> str:
    """`text` cut to its first `limit` tokens of the judge's tokenizer, as HarmBench's evaluation does."""
    ids = tokenizer.encode(text, max_length=limit, truncation=True)
    return tokenizer.decode(ids, skip_special_tokens=True)


class RequestFailed(Exception):
    """A request that failed after its retries; only its own verdict is missing."""


class EndpointJudge(_Judge):
    """An OpenAI-compatible endpoint in one of the judge formats: chat formats go to /chat/completions,
    raw-prompt formats (harmbench, wildguard) to /completions. Each verdict is yielded as it arrives."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.format = FORMATS[spec.get("format", "plain")]
        path = "/completions" if self.format.text else "/chat/completions"
        self.url = spec["url"].rstrip("/") + path
        key_env = spec.get("api_key_env")
        self.api_key = os.environ.get(key_env) if key_env else None
        if key_env and not self.api_key:
            raise JudgeError(f"judges: endpoint judge needs the API key in the environment variable {key_env}; export it")

    def body(self, item: Exchange) -> bytes:
        request = {
            "model": self.spec["model"],
            "temperature": self.spec.get("temperature", 0.0),
            "max_tokens": self.spec.get("max_tokens") or self.format.max_new_tokens,
        }
        if self.format.text:
            request["prompt"] = self.format.text(item)
        else:
            request["messages"] = self.format.messages(item, self.spec)
        return json.dumps(request).encode()

    def _request(self, item: Exchange) -> Verdict:
        headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})
        body, retries = self.body(item), self.spec.get("retries", 4)
        for attempt in range(retries + 1):
            wait = None
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.spec.get("timeout_s", 60)) as reply:
                    raw = reply.read()
                return self.verdict(raw)
            except urllib.error.HTTPError as err:
                if err.code in (401, 403):
                    raise JudgeError(
                        f"judges: endpoint {self.url} refused the credentials (HTTP {err.code}); check api_key_env"
                    ) from None
                if err.code not in (408, 409, 429) and err.code < 500:
                    raise JudgeError(
                        f"judges: endpoint {self.url} rejected the request (HTTP {err.code}: {err.read()[:200]!r}); "
                        "check url, model and format"
                    ) from None
                failure, wait = f"HTTP {err.code}", retry_after_seconds(err.headers.get("Retry-After"))
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                failure = str(getattr(err, "reason", err))
            if attempt < retries:
                delay = wait if wait is not None else backoff_seconds(self.spec.get("backoff_s", 0.5), attempt)
                log.warning("endpoint %s: %s; retry %d of %d in %.2f s", self.url, failure, attempt + 1, retries, delay)
                time.sleep(delay)
        raise RequestFailed(f"failed {retries + 1} times (last: {failure})")

    def verdict(self, raw: bytes) -> Verdict:
        """The verdict in a reply; no content, a refusal by the judge model or a malformed reply is
        recorded as no verdict with its reason."""
        try:
            choice = json.loads(raw)["choices"][0]
            text = choice["text"] if self.format.text else choice["message"].get("content")
            refusal = None if self.format.text else choice["message"].get("refusal")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return Verdict(None, raw[:500].decode(errors="replace"), "malformed reply: no choices[0] text or message")
        if refusal:
            return Verdict(None, str(refusal)[:500], "the judge model refused")
        if not isinstance(text, str) or not text.strip():
            return Verdict(None, text if isinstance(text, str) else None, "the reply has no content")
        return self.format.parse(text)

    def each(self, items: Sequence[Exchange | tuple]) -> Iterator[tuple[int, Verdict]]:
        """(index, verdict) as each arrives, asked concurrently; logs progress about every tenth. Requests that
        fail after their retries are counted; once every other verdict is in, a JudgeError names how many."""
        items = [Exchange(*item) for item in items]
        log_every, began, done, failed = max(1, len(items) // 10), time.perf_counter(), 0, []
        with ThreadPoolExecutor(max_workers=self.spec.get("concurrency", 8)) as pool:
            futures = {pool.submit(self._request, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                try:
                    verdict = future.result()
                except RequestFailed as err:
                    failed.append(str(err))
                    continue
                done += 1
                yield futures[future], verdict
                if done % log_every == 0 or done == len(items):
                    rate = done / (time.perf_counter() - began)
                    log.info("endpoint %s: %d of %d responses judged (%.1f/s)", self.url, done, len(items), rate)
        if failed:
            raise JudgeError(
                f"judges: endpoint {self.url}: {len(failed)} of {len(items)} requests got no verdict (last: {failed[-1]}); "
                f"the {done} verdicts received are cached: run again to ask only for the missing ones"
            )


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's wait: delay-seconds or an HTTP-date (None when absent or unreadable)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_seconds(base: float, attempt: int) -> float:
    """Exponential backoff with jitter: between half and all of base * 2**attempt."""
    return base * 2**attempt * random.uniform(0.5, 1.0)


def open_judge(spec: dict):
    """The judge described by one entry of the `judges` config list."""
    kind = ALIASES.get(spec["name"], spec["name"])
    if kind == "keyword":
        return KeywordJudge()
    if kind == "refusal":
        return RefusalJudge()
    if kind in FORMATS:
        return ModelJudge(spec, FORMATS[kind])
    if kind == "endpoint":
        return EndpointJudge(spec)
    raise ValueError(f"judges: unknown judge {kind!r}")


# ---- cached judging ---------------------------------------------------------------------------


def response_digest(prompt: str, response: str, context: str | None = None, behavior: str | None = None) -> str:
    extra = "".join(f"\0{name}={value}" for name, value in (("context", context), ("behavior", behavior)) if value)
    return hashlib.sha256(f"{prompt}\0{response}{extra}".encode()).hexdigest()


def judge_cache_dir(root: str | os.PathLike, spec: dict) -> Path:
    """Cache folder of one judge configuration: <judge id>-<digest of its settings and of the judging code>."""
    return Path(root) / f"{spec['id']}-{sha256_json({'spec': spec, 'code': code_digest('judges')})[:16]}"


LABEL_KEYS = ("landscape", "a", "b", "checkpoint", "eval_set")


def judge_records(judge, spec: dict, records: Sequence[dict], cache_root: str | os.PathLike) -> tuple[list[dict], int]:
    """A judgment per response record, labelled as the record is (landscape and coordinates, or
    checkpoint and evaluation set) with its prompt index; only responses missing from the cache reach
    the judge, and each verdict is cached as soon as the judge gives it. A contextual behaviour's `context`
    and `behavior` reach the judge with its `prompt` (HarmBench's classifier reads them apart). Returns the
    judgments and how many responses the judge was asked about."""
    cache, code = judge_cache_dir(cache_root, spec), code_digest("judges")
    keys = [response_digest(r["prompt"], r["response"], r.get("context"), r.get("behavior")) for r in records]
    cached = {k: v for k in set(keys) if (v := read_cache_entry(cache / f"{k}.json")) is not None}
    todo = {
        k: Exchange(r["prompt"], r["response"], r.get("context"), r.get("behavior"))
        for r, k in zip(records, keys)
        if k not in cached
    }
    if todo:
        log.info("%s: %d of %d responses to judge (the others are cached or repeats)", spec["id"], len(todo), len(records))
        began, todo_keys = time.perf_counter(), list(todo)
        for i, verdict in judge.each(list(todo.values())):
            cached[todo_keys[i]] = verdict.record()
            write_cache_entry(cache / f"{todo_keys[i]}.json", cached[todo_keys[i]])
        seconds = max(time.perf_counter() - began, 1e-6)
        log.info("%s: %d responses judged in %.1f s (%.1f/s)", spec["id"], len(todo), seconds, len(todo) / seconds)
    judgments = [
        {
            **{key: r[key] for key in LABEL_KEYS if key in r},
            "index": r["index"],
            "judge": spec["id"],
            "judge_code_digest": code,
            **cached[k],
            "empty": is_empty(r["response"]),
            "degenerate": is_degenerate(r["response"]),
        }
        for r, k in zip(records, keys)
    ]
    return judgments, len(todo)
