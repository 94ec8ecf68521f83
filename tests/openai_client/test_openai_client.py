"""`rocmforge serve` driven by the real `openai` Python client (CPU backend, the test model).

Usage: python test_openai_client.py --bin target/debug/rocmforge --model models/X.gguf

Starts the server on a free loopback port, then checks: a chat completion; streaming gives the
same text as the non-streamed answer at temperature 0; 8 concurrent requests; n = 3 streamed
gives three copies of that answer; logit_bias forces and bans tokens; bad inputs get
4xx errors with OpenAI's error body; structured output (5 bounded JSON schemas x 20 seeds, each
answer validated by the `jsonschema` package; json_object; streamed); tool calls (required, named,
none; the round trip request -> tool_calls -> tool message -> answer, streamed and not);
`reasoning_effort` and an assistant turn's `reasoning_content` accepted (SmolLM2's template reads
neither: same answer); the server still serves afterwards; SIGTERM exits 0. With --harmony-model
(the tiny gpt-oss copy `cargo xtask models` writes), a second server checks gpt-oss's harmony
format: a required call comes back as tool_calls (streamed arguments add up to the non-streamed
ones) and an analysis + final answer (written by a grammar over the marker tokens) as
`reasoning_content` + `content`, streamed as `delta.reasoning_content` / `delta.content`.
Exits non-zero on the first failure. Everything is bounded (small max_tokens, timeouts).
"""

import argparse
import concurrent.futures
import signal
import subprocess
import sys
import threading
import time

import json
import urllib.error
import urllib.request

import jsonschema
import openai

MODEL_ID = None


def start_server(binary, model):
    proc = subprocess.Popen(
        [binary, "serve", "--model", model, "--port", "0", "--device", "cpu",
         "--ctx", "1024", "--max-batch", "8", "--max-body", "262144"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"server exited early with {proc.wait()}")
        if "serving http://" in line:
            base = line.split("serving ", 1)[1].strip()
            # Keep draining stderr so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, base
    proc.kill()
    raise SystemExit("server did not start within 120 s")


def chat(client, content, max_tokens=16, **kw):
    return client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": content}],
        max_tokens=max_tokens, temperature=0, **kw)


def check_chat(client):
    r = chat(client, "What is the capital of France?")
    text = r.choices[0].message.content
    assert text, r
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length"), r
    assert r.usage.completion_tokens >= 1 and r.usage.prompt_tokens > 5, r.usage
    print(f"chat: {text!r}")
    return text


def check_stream(client, expected):
    pieces, finish, usage = [], [], None
    stream = chat(client, "What is the capital of France?", stream=True,
                  stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finish.append(c.finish_reason)
    streamed = "".join(pieces)
    assert streamed == expected, (streamed, expected)
    assert len(finish) == 1, finish
    assert usage is not None and usage.completion_tokens >= 1, usage
    print(f"stream: {len(pieces)} chunks, same text")


def check_completion(client):
    r = client.completions.create(model=MODEL_ID, prompt="The sky is", max_tokens=8, temperature=0)
    assert r.choices[0].text, r
    print(f"completion: {r.choices[0].text!r}")


def check_concurrent(client):
    prompts = [f"Name a color number {i}." for i in range(8)]
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda p: chat(client, p, max_tokens=12), prompts))
    elapsed = time.time() - started
    tokens = sum(r.usage.completion_tokens for r in results)
    assert all(r.choices[0].message.content for r in results)
    print(f"concurrent: 8 requests, {tokens} tokens in {elapsed:.2f} s ({tokens / elapsed:.1f} tok/s aggregate)")


def check_n(client, expected):
    r = chat(client, "What is the capital of France?", n=3)
    assert [c.index for c in r.choices] == [0, 1, 2], r
    assert all(c.message.content == expected for c in r.choices), r
    print(f"n=3: three choices, usage {r.usage.completion_tokens} completion tokens")


def check_n_stream(client, expected):
    """n = 3 streamed at temperature 0: each index streams the non-streamed answer, with one
    finish_reason; usage counts the three."""
    single = chat(client, "What is the capital of France?")
    texts, finish, usage = {}, {}, None
    stream = chat(client, "What is the capital of France?", n=3, stream=True,
                  stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            texts.setdefault(c.index, []).append(c.delta.content or "")
            if c.finish_reason:
                finish.setdefault(c.index, []).append(c.finish_reason)
    assert sorted(texts) == [0, 1, 2], texts
    for i in range(3):
        assert "".join(texts[i]) == expected, (i, "".join(texts[i]), expected)
        assert finish.get(i) == [single.choices[0].finish_reason], (i, finish)
    assert usage.completion_tokens == 3 * single.usage.completion_tokens, usage
    print("n=3 streamed: three copies of the answer, one finish_reason each")


def tokenize(base, text, parse_special=False):
    req = urllib.request.Request(base.rstrip("/").removesuffix("/v1") + "/tokenize",
                                 data=json.dumps({"content": text, "add_special": False,
                                                  "parse_special": parse_special}).encode(),
                                 headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))["tokens"]


def check_logit_bias(client, base):
    """+100 forces a token at every step; -100 on the greedy token makes the model's unbiased
    runner-up (its top_logprobs) the greedy choice; bad keys and values are 400s."""
    prompt = "The capital of France is"
    [banana] = tokenize(base, " banana")
    r = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=4, temperature=0,
                                  logit_bias={str(banana): 100})
    assert r.choices[0].text == " banana" * 4, r
    r = chat(client, "Hi!", max_tokens=3, logit_bias={str(banana): 100})
    assert r.choices[0].message.content.strip() == " banana banana banana".strip(), r
    plain = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=1, temperature=0,
                                      logprobs=2)
    first = plain.choices[0].logprobs.tokens[0]
    second = next(t for t in plain.choices[0].logprobs.top_logprobs[0] if t != first)
    [first_id] = tokenize(base, first)
    banned = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=1, temperature=0,
                                       logprobs=2, logit_bias={str(first_id): -100})
    assert banned.choices[0].logprobs.tokens[0] == second, (first, second, banned)
    for bad in ({"99999999": 5}, {str(banana): 500}, {"abc": 1}):
        err = expect_status(400, lambda: chat(client, "hi", logit_bias=bad))
        assert err["param"] == "logit_bias", err
    print(f"logit_bias: +100 forces {banana}, -100 on {first!r} gives the runner-up {second!r}")


def expect_status(status, fn):
    try:
        fn()
    except openai.APIStatusError as e:
        assert e.status_code == status, (e.status_code, e)
        body = e.response.json()
        err = body["error"]
        assert set(err) >= {"message", "type", "param", "code"}, body
        return err
    raise AssertionError(f"expected HTTP {status}")


def raw_post(url, body):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def check_bad_inputs(client, base):
    expect_status(400, lambda: chat(client, "hi", max_tokens=0))
    expect_status(400, lambda: chat(client, "hi", max_tokens=-5))
    expect_status(400, lambda: chat(client, "hi", max_tokens=2**31))
    expect_status(400, lambda: chat(client, "hi", n=99))
    expect_status(400, lambda: chat(client, "hi", stop=[f"s{i}" for i in range(10000)]))
    err = expect_status(400, lambda: client.chat.completions.create(
        model="no-such-model", messages=[{"role": "user", "content": "hi"}], max_tokens=2))
    assert err["code"] == "model_not_found", err
    err = expect_status(400, lambda: chat(client, "hello " * 5000, max_tokens=2))
    assert err["code"] == "context_length_exceeded", err
    expect_status(400, lambda: client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "tyrant", "content": "hi"}], max_tokens=2))
    # Raw HTTP (standard library) for what the client library will not send.
    for body, status in [(b"{not json", 400), (b"\xff\xfe", 400), (b"[" * 100000, 400),
                         (b'{"prompt": "' + b"a" * 400000 + b'"}', 413)]:
        code, payload = raw_post(base + "/completions", body)
        assert code == status, (code, payload[:200])
        assert "error" in json.loads(payload), payload[:200]
    code, _ = raw_post(base + "/no/such/route", b"{}")
    assert code == 404, code
    print("bad inputs: all 4xx with OpenAI error bodies")


def check_embeddings(client, base):
    """Issue 15: /v1/embeddings through the client (base64 by default) and as floats; the
    vectors match llama.cpp's `llama-embedding --pooling mean` on the same file."""
    import math
    import os
    ref_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama_embedding_smollm2.json")
    with open(ref_path) as f:
        ref = json.load(f)
    texts = ref["texts"]
    r = client.embeddings.create(model=MODEL_ID, input=texts)
    vecs = [d.embedding for d in sorted(r.data, key=lambda d: d.index)]
    assert [d.index for d in r.data] == list(range(len(texts))), r.data
    assert r.usage.prompt_tokens > len(texts), r.usage
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    for v, want, text in zip(vecs, ref["embeddings"], texts):
        assert len(v) == len(want) == 576, (len(v), len(want))
        assert all(math.isfinite(x) for x in v), text
        assert abs(dot(v, v) - 1.0) < 1e-4, f"not unit length: {dot(v, v)}"
        cos = dot(v, want) / math.sqrt(dot(want, want))
        assert cos > 0.999, f"{text!r}: cosine {cos:.5f} to llama.cpp's embedding"
    assert dot(vecs[0], vecs[1]) < 0.99, "different texts gave the same embedding"
    # The float format carries the same numbers as the base64 one.
    raw = client.embeddings.create(model=MODEL_ID, input=texts[0], encoding_format="float")
    assert max(abs(a - b) for a, b in zip(raw.data[0].embedding, vecs[0])) < 1e-6
    # Token ids give what their text gives.
    req = urllib.request.Request(base.rstrip("/").removesuffix("/v1") + "/tokenize",
                                 data=json.dumps({"content": texts[1], "add_special": True}).encode(),
                                 headers={"content-type": "application/json"})
    ids = json.load(urllib.request.urlopen(req, timeout=60))["tokens"]
    by_ids = client.embeddings.create(model=MODEL_ID, input=[ids]).data[0].embedding
    assert max(abs(a - b) for a, b in zip(by_ids, vecs[1])) < 1e-5
    try:
        client.embeddings.create(model=MODEL_ID, input="x", dimensions=8)
        raise AssertionError("dimensions=8 was accepted")
    except openai.BadRequestError as e:
        assert e.body.get("param") == "dimensions", e.body
    cos = [dot(v, w) for v, w in zip(vecs, ref["embeddings"])]
    print(f"embeddings: {len(vecs)} x {len(vecs[0])}, cosine to llama.cpp {min(cos):.5f}..{max(cos):.5f}")


# Bounded schemas: every string, array and number has a limit, so a generous max_tokens never
# truncates an answer and each one must end with finish_reason "stop".
SCHEMAS = [
    {"type": "object",
     "properties": {"color": {"enum": ["red", "green", "blue"]},
                    "count": {"type": "integer", "minimum": 0, "maximum": 9}},
     "required": ["color", "count"], "additionalProperties": False},
    {"type": "object",
     "properties": {"name": {"type": "string", "maxLength": 12}, "ok": {"type": "boolean"}},
     "required": ["name", "ok"], "additionalProperties": False},
    {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 1, "maxItems": 4},
    {"type": "object",
     "properties": {"city": {"enum": ["Paris", "Rome", "Oslo"]},
                    "tags": {"type": "array", "items": {"type": "string", "maxLength": 8},
                             "maxItems": 3}},
     "required": ["city", "tags"], "additionalProperties": False},
    {"type": "object",
     "properties": {"answer": {"type": "string", "pattern": "^[a-z]{1,10}$"},
                    "score": {"type": "integer", "minimum": 0, "maximum": 100},
                    "sure": {"enum": [True, False, None]}},
     "required": ["answer", "score"], "additionalProperties": False},
]
SEEDS = 20


def schema_request(client, schema, seed, **kw):
    return client.chat.completions.create(
        model=MODEL_ID, max_tokens=200, temperature=1.0, seed=seed,
        messages=[{"role": "user", "content": "Describe a fruit as JSON."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "answer", "schema": schema, "strict": True}},
        **kw)


def check_json_schema(client):
    jobs = [(i, seed) for i in range(len(SCHEMAS)) for seed in range(SEEDS)]
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda j: schema_request(client, SCHEMAS[j[0]], j[1]), jobs))
    distinct = set()
    tokens = 0
    for (i, seed), r in zip(jobs, results):
        text = r.choices[0].message.content
        assert r.choices[0].finish_reason == "stop", (i, seed, r)
        doc = json.loads(text)
        jsonschema.validate(doc, SCHEMAS[i])
        distinct.add((i, text))
        tokens += r.usage.completion_tokens
    # Sampled with 20 seeds, the answers are not all one.
    assert len(distinct) > len(SCHEMAS), distinct
    elapsed = time.time() - started
    print(f"json_schema: {len(jobs)} answers valid ({len(distinct)} distinct), "
          f"{tokens} tokens in {elapsed:.1f} s")
    # The same request streamed gives a valid document too.
    pieces, finish = [], []
    for chunk in schema_request(client, SCHEMAS[3], 7, stream=True):
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finish.append(c.finish_reason)
    jsonschema.validate(json.loads("".join(pieces)), SCHEMAS[3])
    assert finish == ["stop"], finish
    # json_object and llama-server's top-level json_schema.
    r = chat(client, "List two fruits.", max_tokens=200, response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict), r
    r = chat(client, "Pick a color.", max_tokens=100, extra_body={"json_schema": SCHEMAS[0]})
    jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMAS[0])
    err = expect_status(400, lambda: chat(client, "hi", response_format={
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "minProperties": "many"}}}))
    assert err["param"] == "response_format", err
    err = expect_status(400, lambda: chat(client, "hi", extra_body={"grammar": "start: ( \"a\""}))
    assert err["param"] == "grammar", err
    r = client.completions.create(model=MODEL_ID, prompt="Answer yes or no:", max_tokens=8,
                                  temperature=0, extra_body={"grammar": 'start: " yes" | " no"'})
    assert r.choices[0].text in (" yes", " no"), r
    print("structured output: streamed, json_object, json_schema field, Lark grammar, 400s")


WEATHER = {"type": "object",
           "properties": {"city": {"type": "string", "maxLength": 16},
                          "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"], "additionalProperties": False}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "Current time",
                                      "parameters": {"type": "object",
                                                     "properties": {"tz": {"enum": ["UTC", "CET"]}},
                                                     "required": ["tz"],
                                                     "additionalProperties": False}}},
]
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def tool_request(client, messages, stream, **kw):
    """Non-streamed: the message. Streamed: the message rebuilt from the deltas as an openai
    client user would, checking that the first delta of each call carries its id and name."""
    r = client.chat.completions.create(model=MODEL_ID, messages=messages, tools=TOOLS,
                                       max_tokens=120, temperature=0, stream=stream, **kw)
    if not stream:
        c = r.choices[0]
        calls = [{"id": t.id, "name": t.function.name, "arguments": t.function.arguments}
                 for t in (c.message.tool_calls or [])]
        return c.message.content, calls, c.finish_reason
    content, calls, finish = [], {}, []
    for chunk in r:
        for c in chunk.choices:
            if c.delta.content:
                content.append(c.delta.content)
            for t in c.delta.tool_calls or []:
                if t.index not in calls:
                    assert t.id and t.function.name, t
                    calls[t.index] = {"id": t.id, "name": t.function.name, "arguments": "",
                                      "pieces": 0}
                if t.function.arguments:
                    calls[t.index]["arguments"] += t.function.arguments
                    calls[t.index]["pieces"] += 1
            if c.finish_reason:
                finish.append(c.finish_reason)
    assert len(finish) == 1, finish
    return "".join(content) or None, [calls[k] for k in sorted(calls)], finish[0]


def check_tools(client):
    unstreamed = {}
    for stream in (False, True):
        for choice, name in [("required", None),
                             ({"type": "function", "function": {"name": "get_weather"}},
                              "get_weather")]:
            content, calls, finish = tool_request(client, QUESTION, stream, tool_choice=choice)
            assert finish == "tool_calls", (stream, choice, finish, content)
            assert len(calls) == 1 and calls[0]["id"], calls
            # Streamed (the arguments sent as they are generated), the deltas add up to the
            # non-streamed answer's arguments exactly.
            key = json.dumps(choice)
            if stream:
                assert calls[0]["arguments"] == unstreamed[key], (calls, unstreamed[key])
                assert calls[0]["pieces"] > 1, calls
            else:
                unstreamed[key] = calls[0]["arguments"]
            call = calls[0]
            if name:
                assert call["name"] == name, call
            schema = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
            jsonschema.validate(json.loads(call["arguments"]), schema[call["name"]])
            # The round trip: the call and its result go back; the model answers in text.
            history = QUESTION + [
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call["id"], "type": "function",
                     "function": {"name": call["name"], "arguments": call["arguments"]}}]},
                {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 degrees."},
            ]
            content, calls, finish = tool_request(client, history, stream, tool_choice="none")
            assert content and not calls and finish in ("stop", "length"), (content, calls)
            print(f"tools ({'streamed' if stream else 'not streamed'}, {choice}): "
                  f"{call['name']}({call['arguments']}) -> {content!r}")
    # auto: a call that parses, or a text answer.
    content, calls, finish = tool_request(client, QUESTION, False, tool_choice="auto")
    assert (calls and finish == "tool_calls") or (content and not calls), (content, calls)
    for call in calls:
        json.loads(call["arguments"])
    err = expect_status(400, lambda: tool_request(
        client, QUESTION, False, tool_choice={"type": "function", "function": {"name": "nope"}}))
    assert err["param"] == "tool_choice", err


def check_reasoning_fields(client, expected):
    """reasoning_effort reaches the template as a variable and an assistant turn's
    reasoning_content goes back through it; SmolLM2's template reads neither."""
    r = chat(client, "What is the capital of France?", reasoning_effort="low")
    assert r.choices[0].message.content == expected, (r, expected)
    history = [{"role": "user", "content": "Hi"},
               {"role": "assistant", "content": "Hello!", "reasoning_content": "Greet back."},
               {"role": "user", "content": "What is the capital of France?"}]
    r = client.chat.completions.create(model=MODEL_ID, messages=history, max_tokens=8,
                                       temperature=0)
    assert r.choices[0].message.content, r
    err = expect_status(400, lambda: chat(client, "hi", extra_body={"chat_template_kwargs": "x"}))
    assert err["param"] == "chat_template_kwargs", err
    print("reasoning_effort / reasoning_content / chat_template_kwargs: accepted, checked")


def harmony_stream(r):
    """The reasoning, content and calls a client rebuilds from a streamed harmony answer."""
    reasoning, content, calls, finish = [], [], {}, []
    for chunk in r:
        for c in chunk.choices:
            extra = c.delta.model_extra or {}
            if extra.get("reasoning_content"):
                reasoning.append(extra["reasoning_content"])
            if c.delta.content:
                content.append(c.delta.content)
            for t in c.delta.tool_calls or []:
                if t.index not in calls:
                    assert t.id and t.function.name, t
                    calls[t.index] = {"name": t.function.name, "arguments": "", "pieces": 0}
                if t.function.arguments:
                    calls[t.index]["arguments"] += t.function.arguments
                    calls[t.index]["pieces"] += 1
            if c.finish_reason:
                finish.append(c.finish_reason)
    return reasoning, "".join(content), [calls[k] for k in sorted(calls)], finish


def check_harmony(binary, model):
    proc, base = start_server(binary, model)
    try:
        client = openai.OpenAI(base_url=base, api_key="unused", timeout=300, max_retries=0)
        model_id = client.models.list().data[0].id
        question = [{"role": "user", "content": "What is the weather in Paris?"}]
        # The required call's grammar lets reasoning come first; these random weights would
        # reason until max_tokens, so a bias against every token that can start "analysis"
        # (its single-token prefixes; the grammar's other choice starts with "c") takes the call.
        prefixes = [tokenize(base, "analysis"[:n], parse_special=True) for n in range(1, 9)]
        no_analysis = {str(t[0]): -100 for t in prefixes if len(t) == 1}
        assert no_analysis, prefixes
        kw = dict(model=model_id, messages=question, tools=TOOLS[:1], tool_choice="required",
                  max_tokens=120, temperature=0, reasoning_effort="low", logit_bias=no_analysis)
        r = client.chat.completions.create(**kw)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls" and c.message.content is None, r
        call = c.message.tool_calls[0]
        assert call.function.name == "get_weather", call
        jsonschema.validate(json.loads(call.function.arguments), WEATHER)
        _, content, calls, finish = harmony_stream(client.chat.completions.create(stream=True, **kw))
        assert finish == ["tool_calls"] and not content, (finish, content)
        assert calls[0]["arguments"] == call.function.arguments, (calls, call)
        assert calls[0]["pieces"] > 1, calls
        ids = {m: tokenize(base, m, parse_special=True) for m in
               ("<|channel|>", "<|message|>", "<|end|>", "<|start|>")}
        assert all(len(v) == 1 for v in ids.values()), ids
        t = {m.strip("<|>"): f"<[{v[0]}]>" for m, v in ids.items()}
        grammar = (f'start: {t["channel"]} "analysis" {t["message"]} THINK {t["end"]} {t["start"]} '
                   f'"assistant" {t["channel"]} "final" {t["message"]} ANSWER\n'
                   'THINK: /[a-z]{6,12}( [a-z]{2,8}){2,4}/\nANSWER: /[A-Z][a-z]{3,10}!/\n')
        kw = dict(model=model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=120,
                  temperature=0, extra_body={"grammar": grammar})
        r = client.chat.completions.create(**kw)
        m = r.choices[0].message
        reasoning = (m.model_extra or {}).get("reasoning_content")
        assert reasoning and m.content and m.content.endswith("!"), r
        assert r.choices[0].finish_reason == "stop", r
        pieces, content, calls, finish = harmony_stream(
            client.chat.completions.create(stream=True, **kw))
        assert "".join(pieces) == reasoning and len(pieces) > 1, (pieces, reasoning)
        assert content == m.content and not calls and finish == ["stop"], (content, finish)
        print(f"harmony: {call.function.name}({call.function.arguments}); "
              f"reasoning {reasoning!r}, content {m.content!r}; streamed alike")
    finally:
        proc.kill()
        proc.wait()


def main():
    global MODEL_ID
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--harmony-model", help="the harmony copy of the tiny gpt-oss model")
    args = ap.parse_args()
    proc, base = start_server(args.bin, args.model)
    try:
        client = openai.OpenAI(base_url=base, api_key="unused", timeout=300, max_retries=0)
        MODEL_ID = client.models.list().data[0].id
        text = check_chat(client)
        check_stream(client, text)
        check_completion(client)
        check_concurrent(client)
        check_n(client, text)
        check_n_stream(client, text)
        check_logit_bias(client, base)
        check_embeddings(client, base)
        check_bad_inputs(client, base)
        check_json_schema(client)
        check_tools(client)
        check_reasoning_fields(client, text)
        assert check_chat(client) == text, "answers changed after the bad inputs"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        assert code == 0, f"exit code {code} after SIGTERM"
        if args.harmony_model:
            check_harmony(args.bin, args.harmony_model)
        print("openai client test: OK")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
