#!/usr/bin/env python3
"""AI gateway benchmark: the same model requests straight to `fake-provider` and through Castellan's
AI gateway (API key, RBAC on models, rate and token limits, the `ai_requests` row committed before the
request goes upstream and completed after), in one run, direct and governed alternated:

1. non-streaming Anthropic `POST /v1/messages` at a fixed rate (`oha -q --latency-correction`);
2. the same at saturation (no rate limit), requests/s and the ratio governed / direct;
3. time to the first body byte of `"stream": true` requests, direct and governed interleaved;
4. 1,000 concurrent open streams (a `stall-mid` model: one event, then the stream stays open) through
   Castellan, and the daemon's resident memory before and while they are open;
5. an OpenAI Chat Completions request for a Claude model (translated both ways) at the fixed rate.

Usage: bench/ai.py [--rate 500] [--seconds 10] [--rounds 3] [--connections 16]
                   [--saturation-connections 32] [--ttft-requests 300] [--streams 1000]
                   [--databases sqlite[,postgres]] [--stages] [--out docs/benchmarks-ai-latest.md]
`--stages` adds requests that stop at successive steps of the chain (where the added time goes).
Needs: release builds of `castellan` and `fake-provider` (cargo build --release -p castellan --bin
castellan -p integration-tests --bin fake-provider), oha on PATH (cargo install oha --version 1.12.1
--locked), PostgreSQL on 127.0.0.1:5432 for `--databases postgres`. Loopback only; every load is
bounded in time or count.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import identity
from run import BINARY, ROOT, free_port, post, rss_kib, wait_http, write_report

FAKE_BINARY = os.environ.get("FAKE_PROVIDER_BIN") or os.path.join(os.path.dirname(BINARY), "fake-provider")
PROVIDER_KEY = "sk-bench-provider-key-0123456789abcdef"
MODEL = "claude-sonnet-4-5"
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
MESSAGES = {"model": MODEL, "max_tokens": 64, "messages": PROMPT}
STREAMED_MESSAGES = dict(MESSAGES, stream=True)
# The fake streams one event of a `stall-mid` model, then holds the stream open for 120 s.
HELD_STREAM = dict(MESSAGES, model="claude-stall-mid", stream=True)
CHAT_FOR_CLAUDE = {"model": MODEL, "max_tokens": 64, "messages": PROMPT}
ANSWER = "fake answer to: What is the capital of France?"


def anthropic_headers(key: str) -> dict:
    return {"content-type": "application/json", "x-api-key": key, "anthropic-version": "2023-06-01"}


def openai_headers(key: str) -> dict:
    return {"content-type": "application/json", "authorization": f"Bearer {key}"}


def oha(url: str, body: dict | None, headers: dict, seconds: int, rate: int | None, connections: int) -> dict:
    """`body` None: a GET. The load itself is bench/identity.py's."""
    method, text = ("GET", None) if body is None else ("POST", json.dumps(body))
    return identity.oha(url, method, text, headers, seconds, rate, connections)


class FakeProvider:
    """`fake-provider --no-record` on a free loopback port."""

    def __init__(self):
        self.process = subprocess.Popen([FAKE_BINARY, "--listen", "127.0.0.1:0", "--no-record"],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        address = self.process.stdout.readline().strip()
        if not address:
            raise SystemExit("fake-provider printed no address")
        self.port = int(address.rsplit(":", 1)[1])
        self.base = f"http://{address}"
        wait_http(f"{self.base}/_fake/stats", 10)

    def stats(self) -> dict:
        import urllib.request
        with urllib.request.urlopen(f"{self.base}/_fake/stats", timeout=5) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Daemon:
    """castellan serve with the fake as its Anthropic and OpenAI providers, on a fresh database, and
    a user with an API key made with the CLI."""

    def __init__(self, fake: FakeProvider, database_url: str, workdir: str):
        self.port = free_port()
        profile = os.path.join(workdir, "profile.yaml")
        with open(profile, "w") as handle:
            handle.write(f"""
server:
  listen: 127.0.0.1:{self.port}
database:
  url: "{database_url}"
providers:
  anthropic: {{ api_key: "${{CASTELLAN_BENCH_PROVIDER_KEY}}", base_url: "{fake.base}" }}
  openai: {{ api_key: "${{CASTELLAN_BENCH_PROVIDER_KEY}}", base_url: "{fake.base}/v1" }}
models:
  "claude-*": {{ provider: anthropic }}
  "gpt-*": {{ provider: openai }}
rbac:
  default: deny
  rules:
    - {{ name: users-may-use-models, effect: allow, min_tier: user, models: ["*"] }}
# High enough never to refuse, so the limiter is on the path without limiting.
rate_limits:
  per_second: {{ ai_request: 1000000 }}
  tokens_per_minute: 1000000000000
""")
        self.log_path = os.path.join(workdir, "castellan.log")
        env = dict(os.environ, CASTELLAN_PROFILE=profile, CASTELLAN_LOG="warn",
                   CASTELLAN_BENCH_PROVIDER_KEY=PROVIDER_KEY)
        env.setdefault("CASTELLAN_MASTER_KEY", "ab" * 32)
        env.pop("CASTELLAN_DATABASE_URL", None)
        self.env = env
        self.log = open(self.log_path, "w+")
        self.process = subprocess.Popen([BINARY, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_http(f"{self.base}/readyz", 60)
        self.cli("users", "add", "bench", "--tier", "user")
        self.key = self.cli("keys", "create", "--user", "bench").strip()

    def cli(self, *args: str) -> str:
        done = subprocess.run([BINARY, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise SystemExit(f"castellan {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def raw_request(path: str, port: int, body: dict, headers: dict) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
    data = json.dumps(body).encode()
    for name, value in dict(headers, **{"content-length": str(len(data))}).items():
        head += f"{name}: {value}\r\n"
    return head.encode() + b"\r\n" + data


class KeptConnection:
    """One keep-alive HTTP/1.1 connection that times a request to the first byte of its body and
    then reads the rest (chunked or Content-Length), so the connection can carry the next one."""

    def __init__(self, port: int, quick_ack: bool = False):
        """`quick_ack`: acknowledge every segment at once (Linux TCP_QUICKACK) instead of delaying
        the ACK as clients normally do; a diagnostic that takes Nagle's algorithm on the server's
        side out of the measurement."""
        self.port = port
        self.quick_ack = quick_ack
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _fill(self) -> None:
        if self.quick_ack:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed mid-response")
        self.buffer += data

    def first_body_byte_ms(self, request: bytes) -> tuple:
        """Sends `request`; returns (status, ms to the first body byte, whole body)."""
        started = time.perf_counter()
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        while not self.buffer:
            self._fill()
        elapsed = (time.perf_counter() - started) * 1000
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip() for line in lines[1:]}
        body = self._chunked() if headers.get("transfer-encoding", "").lower() == "chunked" \
            else self._exactly(int(headers.get("content-length", "0")))
        return status, elapsed, body

    def _exactly(self, length: int) -> bytes:
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return body

    def _chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            size_line, self.buffer = self.buffer.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            chunk = self._exactly(size + 2)
            if size == 0:
                return body
            body += chunk[:-2]

    def close(self) -> None:
        self.sock.close()


def percentile(values: list, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def time_to_first_byte(fake: FakeProvider, daemon: Daemon, count: int) -> dict:
    """`count` streamed requests each side, direct and governed interleaved, one keep-alive
    connection each side (as an SDK's pool would hold); then the same from a client that
    acknowledges at once (`KeptConnection.quick_ack`)."""
    direct = raw_request("/v1/messages", fake.port, STREAMED_MESSAGES, anthropic_headers(PROVIDER_KEY))
    governed = raw_request("/v1/messages", daemon.port, STREAMED_MESSAGES, anthropic_headers(daemon.key))
    times = {}
    for suffix, quick_ack in (("", False), ("_quick_ack", True)):
        sides = {f"direct{suffix}": (KeptConnection(fake.port, quick_ack), direct),
                 f"governed{suffix}": (KeptConnection(daemon.port, quick_ack), governed)}
        times.update({side: [] for side in sides})
        try:
            for index in range(count + 20):
                for side, (connection, request) in sides.items():
                    status, elapsed, body = connection.first_body_byte_ms(request)
                    if status != 200 or b"message_stop" not in body:
                        raise SystemExit(f"{side} stream answered {status}: {body[:300]!r}")
                    if index >= 20:  # the first 20 warm both paths up
                        times[side].append(elapsed)
        finally:
            for connection, _ in sides.values():
                connection.close()
    return {side: {"p50_ms": percentile(values, 0.5), "p99_ms": percentile(values, 0.99), "count": len(values),
                   "over_30_ms": sum(value > 30 for value in values)}
            for side, values in times.items()}


async def hold_streams(port: int, key: str, count: int, pid: int, limit: float) -> dict:
    """Opens `count` streams to a `stall-mid` model at once, waits until every one has its first body
    byte, reads `pid`'s RSS, closes them all."""
    request = raw_request("/v1/messages", port, HELD_STREAM, anthropic_headers(key))
    connecting = asyncio.Semaphore(100)
    opened, failures = [], []

    async def open_one():
        async with connecting:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        first = await reader.read(1)
        opened.append(writer)
        if status != 200 or not first:
            failures.append(status)

    before = rss_kib(pid)
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(open_one()) for _ in range(count)]
    try:
        done, pending = await asyncio.wait(tasks, timeout=limit)
        all_open_s = time.perf_counter() - started
        errors = [task.exception() for task in done if task.exception()]
        await asyncio.sleep(1)  # let the daemon settle with every stream open
        during = max(rss_kib(pid), 0)
        await asyncio.sleep(1)
        during = max(during, rss_kib(pid))
    finally:
        for task in tasks:
            task.cancel()
        for writer in opened:
            writer.close()
    await asyncio.sleep(3)  # the daemon notices the hang-ups and cancels the upstream streams
    return {
        "streams": count,
        "open_with_first_byte": len(opened) - len(failures),
        "not_open_in_time": len(pending),
        "errors": len(errors) + len(failures),
        "seconds_to_open_all": all_open_s,
        "rss_before_kib": before,
        "rss_during_kib": during,
        "rss_after_close_kib": rss_kib(pid),
    }


def stages(fake: FakeProvider, daemon: Daemon, args) -> list:
    """Where the added time goes: requests through the same daemon that stop at successive steps
    of the chain, each at the fixed rate and at saturation."""
    counting = {"model": MODEL, "max_tokens": 64, "messages": PROMPT}
    governed = anthropic_headers(daemon.key)
    cases = [
        ("direct: `/v1/messages`", f"{fake.base}/v1/messages", MESSAGES, anthropic_headers(PROVIDER_KEY)),
        ("direct: `/v1/messages/count_tokens`", f"{fake.base}/v1/messages/count_tokens", counting,
         anthropic_headers(PROVIDER_KEY)),
        ("`GET /healthz` (the HTTP stack alone)", f"{daemon.base}/healthz", None, {}),
        ("`GET /v1/models` (authentication, the list)", f"{daemon.base}/v1/models", None, governed),
        ("`count_tokens` (authentication, parsing, rate limit, RBAC, upstream; no row)",
         f"{daemon.base}/v1/messages/count_tokens", counting, governed),
        ("unknown model (authentication, parsing, one refused row committed; no upstream)",
         f"{daemon.base}/v1/messages", dict(MESSAGES, model="no-such-model"), governed),
        ("`/v1/messages` (all of it: the started row, upstream, the completed row)",
         f"{daemon.base}/v1/messages", MESSAGES, governed),
    ]
    measured = []
    for label, url, body, headers in cases:
        oha(url, body, headers, 1, None, args.saturation_connections)
        rate = oha(url, body, headers, args.seconds, args.rate, args.connections)
        saturation = oha(url, body, headers, args.seconds, None, args.saturation_connections)
        statuses = ", ".join(sorted(set(rate["statuses"]) | set(saturation["statuses"])))
        measured.append({"stage": label, "rate": rate, "saturation": saturation, "statuses": statuses})
    return measured


def stages_table(results: dict, args) -> str:
    lines = [f"| database | requests that stop at | p50 / p99 at {args.rate}/s (ms) | requests/s at saturation | statuses |",
             "|---|---|---|---|---|"]
    for database, result in results.items():
        for stage in result.get("stages", []):
            lines.append(f"| {database} | {stage['stage']} | {stage['rate']['p50_ms']:.2f} / {stage['rate']['p99_ms']:.2f} | "
                         f"{stage['saturation']['rps']:,.0f} | {stage['statuses']} |")
    return "\n".join(lines)


def ai_rows(database: str, database_url: str, workdir: str) -> dict:
    query = "SELECT status, count(*) FROM ai_requests GROUP BY status"
    if database == "sqlite":
        import sqlite3
        with sqlite3.connect(f"{workdir}/castellan.db") as connection:
            return dict(connection.execute(query).fetchall())
    output = subprocess.run(["psql", database_url, "-tAF", "\t", "-c", query],
                            capture_output=True, text=True, check=True).stdout
    return {status: int(count) for status, count in (line.split("\t") for line in output.strip().splitlines())}


def measure(database: str, args, fake: FakeProvider) -> dict:
    workdir = tempfile.mkdtemp(prefix=f"castellan-bench-ai-{database}-")
    if database == "sqlite":
        database_url = f"sqlite://{workdir}/castellan.db"
    else:
        name = f"castellan_bench_ai_{os.getpid()}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
        database_url = f"postgres://postgres@127.0.0.1:5432/{name}"
    daemon = Daemon(fake, database_url, workdir)
    try:
        direct_url, governed_url = f"{fake.base}/v1/messages", f"{daemon.base}/v1/messages"
        chat_url = f"{daemon.base}/v1/chat/completions"
        direct_headers, governed_headers = anthropic_headers(PROVIDER_KEY), anthropic_headers(daemon.key)
        for url, body, headers in ((governed_url, MESSAGES, governed_headers),
                                   (chat_url, CHAT_FOR_CLAUDE, openai_headers(daemon.key))):
            status, _, text = post(url, body, headers)
            assert status == 200 and ANSWER in text, text
        time.sleep(1)
        idle_rss = rss_kib(daemon.process.pid)
        oha(direct_url, MESSAGES, direct_headers, 2, None, args.saturation_connections)
        warm_up = oha(governed_url, MESSAGES, governed_headers, 2, None, args.saturation_connections)
        rounds = []
        for _ in range(args.rounds):
            rounds.append({
                "direct_rate": oha(direct_url, MESSAGES, direct_headers, args.seconds, args.rate, args.connections),
                "governed_rate": oha(governed_url, MESSAGES, governed_headers, args.seconds, args.rate, args.connections),
                "translated_rate": oha(chat_url, CHAT_FOR_CLAUDE, openai_headers(daemon.key), args.seconds,
                                       args.rate, args.connections),
                "direct_saturation": oha(direct_url, MESSAGES, direct_headers, args.seconds, None,
                                         args.saturation_connections),
                "governed_saturation": oha(governed_url, MESSAGES, governed_headers, args.seconds, None,
                                           args.saturation_connections),
            })
        loaded_rss = rss_kib(daemon.process.pid)
        ttft = time_to_first_byte(fake, daemon, args.ttft_requests)
        cancelled_before = fake.stats()["streams_cancelled"]
        streams = asyncio.run(hold_streams(daemon.port, daemon.key, args.streams, daemon.process.pid, 120))
        # Through Castellan and answered 200: the two checks, the warm-up, the time-to-first-byte
        # streams (both passes, warm-up included) and the rounds; the held streams are still `started`.
        answered = 2 + warm_up["ok"] + 2 * (ttft["governed"]["count"] + 20) + sum(
            r[k]["ok"] for r in rounds for k in ("governed_rate", "translated_rate", "governed_saturation"))
        # A client that closed is noticed at the daemon's next write: its keepalive after 5 quiet
        # seconds (the provider is silent), so allow 20 s for all of them.
        hung_up = time.perf_counter()
        while time.perf_counter() - hung_up < 20:
            streams["upstream_cancelled"] = fake.stats()["streams_cancelled"] - cancelled_before
            if streams["upstream_cancelled"] >= streams["streams"]:
                break
            time.sleep(0.25)
        streams["seconds_to_cancel"] = time.perf_counter() - hung_up
        streams["rss_after_cancel_kib"] = rss_kib(daemon.process.pid)
        rows = ai_rows(database, database_url, workdir)
        measured_stages = stages(fake, daemon, args) if args.stages else []
        return {"idle_rss_kib": idle_rss, "loaded_rss_kib": loaded_rss, "rounds": rounds, "ttft": ttft,
                "streams": streams, "fake_stats": fake.stats(), "answered_200": answered,
                "ai_rows": rows, "stages": measured_stages}
    finally:
        daemon.stop()
        if database == "postgres":
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                            f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
        shutil.rmtree(workdir, ignore_errors=True)


def median_range(values: list, form: str) -> str:
    text = form.format(statistics.median(values))
    if len(values) > 1:
        text += f" ({form.format(min(values))}–{form.format(max(values))})"
    return text


def table(results: dict, args) -> str:
    lines = [f"| database | measurement | direct | through Castellan | added / ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    for database, result in results.items():
        rounds = result["rounds"]

        def each(kind: str, field: str) -> list:
            return [r[kind][field] for r in rounds]

        def added(kind: str, field: str) -> list:
            return [r[kind][field] - r["direct_rate"][field] for r in rounds]

        added_p50, added_p99 = added("governed_rate", "p50_ms"), added("governed_rate", "p99_ms")
        ratio = [r["governed_saturation"]["rps"] / r["direct_saturation"]["rps"] for r in rounds]
        ttft = result["ttft"]
        ttft_added = ttft["governed"]["p50_ms"] - ttft["direct"]["p50_ms"]
        streams = result["streams"]
        stream_mib = (streams["rss_during_kib"] - streams["rss_before_kib"]) / 1024
        rows = [
            (f"`/v1/messages` at {args.rate}/s, p50 (ms)", median_range(each("direct_rate", "p50_ms"), "{:.2f}"),
             median_range(each("governed_rate", "p50_ms"), "{:.2f}"), median_range(added_p50, "{:+.2f}"),
             "≤ 0.3 ms added", statistics.median(added_p50) <= 0.3),
            (f"`/v1/messages` at {args.rate}/s, p99 (ms)", median_range(each("direct_rate", "p99_ms"), "{:.2f}"),
             median_range(each("governed_rate", "p99_ms"), "{:.2f}"), median_range(added_p99, "{:+.2f}"),
             "≤ 1 ms added", statistics.median(added_p99) <= 1.0),
            (f"`/v1/chat/completions` → Claude (translated) at {args.rate}/s, p50 / p99 (ms)", "",
             f"{statistics.median(each('translated_rate', 'p50_ms')):.2f} / {statistics.median(each('translated_rate', 'p99_ms')):.2f}",
             f"{statistics.median(added('translated_rate', 'p50_ms')):+.2f} / {statistics.median(added('translated_rate', 'p99_ms')):+.2f}",
             "", None),
            (f"saturation, {args.saturation_connections} connections (requests/s)",
             median_range(each("direct_saturation", "rps"), "{:,.0f}"),
             median_range(each("governed_saturation", "rps"), "{:,.0f}"), median_range(ratio, "{:.2f}"),
             "≥ 0.35 of direct", statistics.median(ratio) >= 0.35),
            (f"first streamed byte, p50 / p99 (ms; {ttft['direct']['count']} each, interleaved; "
             f"{ttft['governed']['over_30_ms']} governed over 30 ms)",
             f"{ttft['direct']['p50_ms']:.2f} / {ttft['direct']['p99_ms']:.2f}",
             f"{ttft['governed']['p50_ms']:.2f} / {ttft['governed']['p99_ms']:.2f}",
             f"{ttft_added:+.2f} / {ttft['governed']['p99_ms'] - ttft['direct']['p99_ms']:+.2f}",
             "≤ 0.5 ms added (p50)", ttft_added <= 0.5),
            (f"the same, the client acknowledging at once (TCP_QUICKACK; diagnostic; "
             f"{ttft['governed_quick_ack']['over_30_ms']} governed over 30 ms)",
             f"{ttft['direct_quick_ack']['p50_ms']:.2f} / {ttft['direct_quick_ack']['p99_ms']:.2f}",
             f"{ttft['governed_quick_ack']['p50_ms']:.2f} / {ttft['governed_quick_ack']['p99_ms']:.2f}",
             f"{ttft['governed_quick_ack']['p50_ms'] - ttft['direct_quick_ack']['p50_ms']:+.2f} / "
             f"{ttft['governed_quick_ack']['p99_ms'] - ttft['direct_quick_ack']['p99_ms']:+.2f}", "", None),
            (f"{streams['streams']:,} open streams: daemon RSS before → during (MiB)", "",
             f"{streams['rss_before_kib'] / 1024:.1f} → {streams['rss_during_kib'] / 1024:.1f} "
             f"({streams['open_with_first_byte']:,} open in {streams['seconds_to_open_all']:.1f} s)",
             f"{stream_mib:+.1f} MiB", "≤ 100 MB (95.4 MiB)",
             stream_mib <= 95.4 and streams["open_with_first_byte"] == streams["streams"]),
        ]
        for name, direct, governed, difference, target, met in rows:
            verdict = "" if met is None else ("yes" if met else "**no**")
            lines.append(f"| {database} | {name} | {direct} | {governed} | {difference} | {target} | {verdict} |")
    lines += ["", "| database | idle RSS (MiB) | RSS after load (MiB) | RSS 3 s after the streams' clients hung up (MiB) | "
              "upstream streams cancelled after the hang-ups (within 20 s) | RSS then (MiB) | answered 200 through Castellan | non-200 | "
              "`ai_requests` rows by status |", "|---|---|---|---|---|---|---|---|---|"]
    for database, result in results.items():
        non_200 = sum(r[k]["other"] for r in result["rounds"] for k in r)
        rows = ", ".join(f"{status} {count:,}" for status, count in sorted(result["ai_rows"].items()))
        lines.append(f"| {database} | {result['idle_rss_kib'] / 1024:.1f} | {result['loaded_rss_kib'] / 1024:.1f} | "
                     f"{result['streams']['rss_after_close_kib'] / 1024:.1f} | "
                     f"{result['streams']['upstream_cancelled']:,} of {result['streams']['streams']:,} "
                     f"in {result['streams']['seconds_to_cancel']:.1f} s | {result['streams']['rss_after_cancel_kib'] / 1024:.1f} | "
                     f"{result['answered_200']:,} | "
                     f"{non_200} | {rows} |")
    return "\n".join(lines)


def check_tools() -> None:
    for path, build in ((BINARY, "-p castellan --bin castellan"), (FAKE_BINARY, "-p integration-tests --bin fake-provider")):
        if not os.path.exists(path):
            raise SystemExit(f"{path} is missing: cargo build --release {build}")
    if shutil.which("oha") is None:
        raise SystemExit("oha is not on PATH: cargo install oha --version 1.12.1 --locked")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="direct/governed pairs per load; medians are reported")
    parser.add_argument("--connections", type=int, default=16, help="at the fixed rate")
    parser.add_argument("--saturation-connections", type=int, default=32)
    parser.add_argument("--ttft-requests", type=int, default=300)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--databases", default="sqlite")
    parser.add_argument("--stages", action="store_true",
                        help="also requests that stop at successive steps of the chain (where the time goes)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks-ai-latest.md"))
    args = parser.parse_args()
    check_tools()
    load_before = os.getloadavg()[0]
    fake = FakeProvider()
    try:
        results = {database: measure(database, args, fake) for database in args.databases.split(",")}
    finally:
        fake.stop()
    load_after = os.getloadavg()[0]
    text = (f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores (1-minute load "
            f"average {load_before:.1f} before, {load_after:.1f} after), `fake-provider --no-record` as the provider, {args.rounds} rounds of "
            f"{args.seconds} s per load (medians, range in brackets), oha {args.connections} connections at the "
            f"fixed rate, one `{MODEL}` request of one user turn per call.\n\n" + table(results, args) + "\n"
            + (f"\n{stages_table(results, args)}\n" if args.stages else ""))
    write_report(args.out, text, results)


if __name__ == "__main__":
    main()
