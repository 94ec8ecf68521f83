"""Bounded load test of `rocmforge serve`: N concurrent streaming clients for a fixed time.

Usage (loopback only; the script starts the server itself, or targets one already running):

    python tests/load/load.py --bin target/release/rocmforge --model models/X.gguf \
        --clients 32 --seconds 120
    python tests/load/load.py --url http://127.0.0.1:8080 --pid 1234 --clients 8 --seconds 10

Each client loops: a streamed chat completion (`stream_options.include_usage`), read to
`data: [DONE]`. One request in `--disconnect-every` closes the connection after
its first few chunks instead (a client that goes away mid-stream; spread so that every round
has some). The run reports HTTP 5xx,
dropped streams (a stream that ends without `[DONE]` or errors while the client still reads),
time to first token p50/p99, aggregate generated tokens/s, and the server's resident memory
(VmRSS of --pid or of the server it started) sampled every second. At the end it waits for
/metrics to show `rocmforge_active_sequences 0` (the disconnected clients' sequences freed).

With --system-words N, every request starts with the same system message of N words (a chat
system prompt; about 1.3 tokens a word for English-like text), and the report adds the prompt
tokens the server prefilled against those it reused from cached prefixes (/metrics deltas), to
show prefix reuse under load.

With --schema-fraction F, the first round(F * clients) clients send every request with a
`response_format` `json_schema` (SCHEMA below: free-length strings, so the constrained answers run
as long as the unconstrained ones), to compare constrained against unconstrained load.

Exits non-zero when any 5xx, dropped stream, other failure, or leftover active sequence is
seen, or when RSS after warm-up grew by more than --rss-growth-mb.
"""

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

PROMPTS = [
    "Write a short poem about the sea.",
    "List five fruits.",
    "Explain what a CPU does in two sentences.",
    "Count from one to ten.",
    "What is the capital of France?",
    "Tell me a fact about cats.",
]


def start_server(binary, model, device, ctx, max_batch, max_queue):
    proc = subprocess.Popen(
        [binary, "serve", "--model", model, "--port", "0", "--device", device, "--ctx", str(ctx),
         "--max-batch", str(max_batch), "--max-queue", str(max_queue)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"server exited early with {proc.wait()}")
        if "serving http://" in line:
            base = line.split("serving ", 1)[1].strip().removesuffix("/v1")
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, base
    proc.kill()
    raise SystemExit("server did not start within 180 s")


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def metrics(base):
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("rocmforge_"):
            name, value = line.split()
            out[name[len("rocmforge_"):]] = float(value)
    return out


def engine_deltas(before, after):
    d = {k: after.get(k, 0) - before.get(k, 0) for k in (
        "batch_steps_total", "step_seconds_total", "step_host_seconds_total",
        "grammar_seconds_total", "grammar_tokens_total", "sampling_rows_on_host_total",
        "decode_graph_captures_total", "decode_graph_replays_total", "decode_steps_eager_total")}
    steps = d["batch_steps_total"]
    if steps:
        d["ms_per_step"] = round(1000 * d["step_seconds_total"] / steps, 3)
        d["host_ms_per_step"] = round(1000 * d["step_host_seconds_total"] / steps, 3)
        d["grammar_ms_per_step"] = round(1000 * d["grammar_seconds_total"] / steps, 3)
    if d["grammar_tokens_total"]:
        d["grammar_us_per_token"] = round(1e6 * d["grammar_seconds_total"] / d["grammar_tokens_total"], 1)
    return d


class Totals:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.disconnected = 0
        self.status = {}
        self.dropped = 0
        self.errors = []
        self.ttft = []
        self.tokens = 0
        self.schema_ok = 0
        self.schema_tokens = 0

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                if k == "status":
                    self.status[v] = self.status.get(v, 0) + 1
                elif k == "ttft":
                    self.ttft.append(v)
                elif k == "error":
                    self.errors.append(v)
                else:
                    setattr(self, k, getattr(self, k) + v)


# The schema of --schema-fraction's requests.
SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"},
                   "items": {"type": "array", "items": {"type": "string"}}},
    "required": ["title", "items"],
}


# Words of --system-words' shared system message (deterministic, English-like).
SYSTEM_VOCAB = ("you are a careful assistant for a small company that sells garden tools and "
                "answers questions about orders returns delivery times prices and the care of "
                "plants keep every answer short polite and accurate never invent an order number "
                "ask when something is unclear").split()


def system_text(n_words):
    return " ".join(SYSTEM_VOCAB[(i * 7 + i // len(SYSTEM_VOCAB)) % len(SYSTEM_VOCAB)]
                    for i in range(n_words))


def one_stream(host, port, prompt, max_tokens, disconnect_after, totals, schema=False, system=None):
    messages = [{"role": "user", "content": prompt}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    request = {
        "messages": messages, "max_tokens": max_tokens,
        "temperature": 0.7, "stream": True, "stream_options": {"include_usage": True},
    }
    if schema:
        request["response_format"] = {"type": "json_schema",
                                      "json_schema": {"name": "answer", "schema": SCHEMA}}
    body = json.dumps(request).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    sock = socket.create_connection((host, port), timeout=120)
    started = time.monotonic()
    try:
        sock.sendall(head + body)
        f = sock.makefile("rb")
        status_line = f.readline().decode(errors="replace")
        parts = status_line.split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        totals.add(status=status)
        while True:  # headers
            line = f.readline()
            if line in (b"\r\n", b"\n", b""):
                break
        if status != 200:
            totals.add(error=f"HTTP {status}: {f.read(300)!r}")
            return
        chunks, done, first = 0, False, None
        usage_tokens = None
        for raw in f:
            line = raw.strip()
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                done = True
                break
            event = json.loads(data)
            if event.get("usage"):
                usage_tokens = event["usage"]["completion_tokens"]
            for c in event.get("choices", []):
                if c.get("delta", {}).get("content"):
                    if first is None:
                        first = time.monotonic() - started
                        totals.add(ttft=first)
                    chunks += 1
            if disconnect_after and chunks >= disconnect_after:
                totals.add(disconnected=1, tokens=chunks)
                return  # the socket closes below: a client gone mid-stream
        if not done:
            totals.add(dropped=1, error="stream ended without [DONE]")
            return
        n_tokens = usage_tokens if usage_tokens is not None else chunks
        totals.add(ok=1, tokens=n_tokens)
        if schema:
            totals.add(schema_ok=1, schema_tokens=n_tokens)
    except (OSError, ValueError) as e:
        totals.add(dropped=1, error=f"{type(e).__name__}: {e}")
    finally:
        sock.close()


def client_loop(i, host, port, until, args, totals):
    n = 0
    while time.monotonic() < until:
        n += 1
        # Spread the disconnects over clients and rounds: (client + round) % every == 0.
        disconnect = 3 if args.disconnect_every and (i + n) % args.disconnect_every == 0 else 0
        schema = i < round(args.schema_fraction * args.clients)
        one_stream(host, port, PROMPTS[(i + n) % len(PROMPTS)], args.max_tokens, disconnect, totals,
                   schema, args.system)


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100.0 * (len(values) - 1))))
    return values[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin")
    ap.add_argument("--model")
    ap.add_argument("--url")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--device", default="cpu", help="the server's --device (cpu, gpu, gpu:N)")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--disconnect-every", type=int, default=5)
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before the RSS baseline (default: a quarter of the run)")
    ap.add_argument("--rss-growth-mb", type=float, default=64)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--schema-fraction", type=float, default=0.0,
                    help="fraction of the clients whose requests carry a json_schema response_format")
    ap.add_argument("--system-words", type=int, default=0,
                    help="a shared system message of this many words in every request")
    args = ap.parse_args()
    args.system = system_text(args.system_words) if args.system_words > 0 else None
    if not 0.0 <= args.schema_fraction <= 1.0:
        raise SystemExit("--schema-fraction must be between 0 and 1")
    if args.seconds > 600 or args.clients > 256:
        raise SystemExit("bounded: at most 600 s and 256 clients")

    proc = None
    if args.url:
        base, pid = args.url.rstrip("/"), args.pid
    else:
        if not (args.bin and args.model):
            raise SystemExit("give --url, or --bin and --model")
        proc, base = start_server(args.bin, args.model, args.device, args.ctx, args.max_batch,
                                  max(64, 2 * args.clients))
        pid = proc.pid
    u = urllib.parse.urlparse(base)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only")
    host, port = u.hostname, u.port
    try:
        code = run(args, base, host, port, pid)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    sys.exit(code)


def run(args, base, host, port, pid):
    before = metrics(base)
    totals = Totals()
    samples = []
    start = time.monotonic()
    until = start + args.seconds
    threads = [threading.Thread(target=client_loop, args=(i, host, port, until, args, totals))
               for i in range(args.clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if pid:
            samples.append((time.monotonic() - start, rss_mb(pid)))
        time.sleep(1.0)
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 60
    m = metrics(base)
    while m.get("active_sequences", 0) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        m = metrics(base)
    with urllib.request.urlopen(base + "/health", timeout=10) as r:
        healthy = r.status == 200

    warmup = args.warmup if args.warmup is not None else args.seconds / 4
    rss = [r for t, r in samples if r is not None]
    after = [r for t, r in samples if r is not None and t >= warmup]
    five_xx = sum(n for s, n in totals.status.items() if s >= 500)
    result = {
        "clients": args.clients, "seconds": round(elapsed, 1), "max_tokens": args.max_tokens,
        "streams_completed": totals.ok, "streams_disconnected_on_purpose": totals.disconnected,
        "http_status": totals.status, "http_5xx": five_xx, "dropped_streams": totals.dropped,
        "ttft_p50_ms": round(1000 * percentile(totals.ttft, 50), 1),
        "ttft_p99_ms": round(1000 * percentile(totals.ttft, 99), 1),
        "ttft_mean_ms": round(1000 * statistics.fmean(totals.ttft), 1) if totals.ttft else None,
        "generated_tokens": totals.tokens,
        "aggregate_tokens_per_s": round(totals.tokens / elapsed, 1),
        "schema_clients": round(args.schema_fraction * args.clients),
        "schema_streams_completed": totals.schema_ok,
        "schema_generated_tokens": totals.schema_tokens,
        "rss_mb_first": round(rss[0], 1) if rss else None,
        "rss_mb_after_warmup_min": round(min(after), 1) if after else None,
        "rss_mb_after_warmup_max": round(max(after), 1) if after else None,
        "rss_mb_last": round(rss[-1], 1) if rss else None,
        "rss_samples_mb": [round(r, 1) for r in rss[:: max(1, len(rss) // 12)]],
        "system_words": args.system_words,
        "prompt_tokens_prefilled": m.get("prompt_tokens_total", 0) - before.get("prompt_tokens_total", 0),
        "prompt_tokens_reused": (m.get("prefix_reused_tokens_total", 0)
                                 - before.get("prefix_reused_tokens_total", 0)),
        "prefix_hits": m.get("prefix_cache_hits_total", 0) - before.get("prefix_cache_hits_total", 0),
        # Where the engine's time went (deltas over the run): steps, their host share outside
        # the model's forward and sampling, the grammars' time (run during the forward),
        # host-finished sampling rows.
        "engine": engine_deltas(before, m),
        "metrics_after": {k: m.get(k) for k in (
            "active_sequences", "queue_depth", "requests_total", "requests_completed_total",
            "requests_cancelled_total", "requests_failed_total", "http_responses_5xx_total")},
        "healthy_after": healthy,
        "errors": totals.errors[:10],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    problems = []
    if five_xx or m.get("http_responses_5xx_total", 0):
        problems.append(f"{five_xx} HTTP 5xx")
    if totals.dropped:
        problems.append(f"{totals.dropped} dropped streams")
    if totals.errors:
        problems.append(f"{len(totals.errors)} failed requests")
    if m.get("active_sequences", 1) != 0:
        problems.append(f"{m.get('active_sequences')} sequences still active")
    if totals.disconnected and m.get("requests_cancelled_total", 0) < 1:
        problems.append("no cancelled request in /metrics after mid-stream disconnects")
    if not healthy:
        problems.append("/health not 200 afterwards")
    if after and max(after) - min(after) > args.rss_growth_mb:
        problems.append(f"RSS grew {max(after) - min(after):.1f} MB after warm-up")
    if args.disconnect_every and totals.disconnected == 0:
        problems.append("no client disconnected mid-stream")
    if totals.ok == 0:
        problems.append("no stream completed")
    if problems:
        print("LOAD TEST FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    print("load test passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    main()
