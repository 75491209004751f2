#!/usr/bin/env python3
"""Gateway benchmark: the same tools/call straight to an HTTP MCP backend and through Castellan
(API key authentication, RBAC, durable audit on), at a fixed rate and at saturation, on SQLite and
PostgreSQL. Also the daemon's idle resident memory.

Usage: bench/run.py [--rate 500] [--seconds 20] [--connections 16] [--out docs/benchmarks-latest.md]
Needs: a release build (cargo build --release -p castellan), oha on PATH (cargo install oha),
PostgreSQL on 127.0.0.1:5432 for the PostgreSQL run. Load runs on loopback only, bounded in time.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CASTELLAN_BENCH_BINARY names another build (e.g. the previous commit's, to compare in one run).
BINARY = os.environ.get("CASTELLAN_BENCH_BINARY") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "castellan")
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_customer", "arguments": {"id": 1}}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, limit: float = 30.0, process=None, log_path: str | None = None) -> None:
    """Until `url` answers 200; with `process` (and its `log_path`), fails at once, with the log's
    tail, when the process has exited."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            tail = ""
            if log_path:
                with open(log_path, errors="replace") as log:
                    tail = log.read()[-3000:]
            raise SystemExit(f"{url}: the server exited ({process.returncode}); its log ends:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready in {limit:.0f} s" + (f" (log: {log_path})" if log_path else ""))


def post(url: str, body: dict, headers: dict) -> tuple:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    for name, value in headers.items():
        request.add_header(name, value)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read().decode()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def oha(url: str, headers: dict, seconds: int, rate: int | None, connections: int) -> dict:
    command = ["oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c", str(connections),
               "-m", "POST", "-d", json.dumps(CALL)]
    if rate:
        command += ["-q", str(rate), "--latency-correction"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    report = json.loads(output)
    percentiles = report["latencyPercentiles"]
    statuses = report.get("statusCodeDistribution", {})
    return {
        "rps": report["summary"]["requestsPerSec"],
        "p50_ms": percentiles["p50"] * 1000,
        "p99_ms": percentiles["p99"] * 1000,
        "ok": statuses.get("200", 0),
        "other": sum(count for code, count in statuses.items() if code != "200"),
        # Requests in flight when the run's time ended: sent, so the daemon completes (and audits) them.
        "aborted": sum(count for error, count in report.get("errorDistribution", {}).items() if "deadline" in error),
        "errors": sum(count for error, count in report.get("errorDistribution", {}).items() if "deadline" not in error),
    }


class Daemon:
    """castellan serve with an HTTP upstream, on a fresh database."""

    def __init__(self, backend_url: str, database_url: str, workdir: str, rate_limit: float = 100000,
                 governance: bool = False):
        """`rate_limit`: the base rate of tool calls (per second, before the tier multiplier): the
        default keeps the limiter on the path without ever refusing. `governance`: also two built-in
        PreToolUse rules (each decision a hook_events row) and a secret set, so the redactor has
        patterns to match on every answer."""
        hooks = ('hooks:\n  PreToolUse:\n    - { builtin: deny_arguments, pattern: "(?i)drop\\\\s+table" }\n'
                 '    - { builtin: block_credentials }\n') if governance else ""
        self.port = free_port()
        # More profile text for a comparison (e.g. a `jobs.forward` sink, to measure its cost).
        extra = os.environ.get("CASTELLAN_BENCH_EXTRA_PROFILE", "")
        profile = os.path.join(workdir, "profile.yaml")
        with open(profile, "w") as handle:
            handle.write(f"""
server:
  listen: 127.0.0.1:{self.port}
database:
  url: "{database_url}"
mcp_servers:
  customers:
    url: {backend_url}
rbac:
  default: deny
  rules:
    - {{ name: users-may-use-tools, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }}
rate_limits:
  per_second: {{ mcp_tool_call: {rate_limit}, oauth: {rate_limit} }}
{hooks}{extra}""")
        self.log_path = os.path.join(workdir, "castellan.log")
        env = dict(os.environ, CASTELLAN_PROFILE=profile, CASTELLAN_LOG="warn")
        env.setdefault("CASTELLAN_MASTER_KEY", "ab" * 32)
        env.pop("CASTELLAN_DATABASE_URL", None)
        self.env = env
        self.log = open(self.log_path, "w+")
        self.process = subprocess.Popen([BINARY, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_http(f"{self.base}/readyz", 60)
        self.key = self._bootstrap_key()
        if governance:
            subprocess.run([BINARY, "secrets", "set", "bench_secret"], input="bench-secret-value-0123456789",
                           text=True, env=self.env, check=True, capture_output=True)
            time.sleep(6)  # the daemon re-reads the store every 5 s

    def _bootstrap_key(self) -> str:
        for _ in range(100):
            self.log.flush()
            with open(self.log_path) as handle:
                text = handle.read()
            match = re.search(r"Bootstrap admin API key[^\n]*\n\s*(cas_\S+)", text)
            if match:
                return match.group(1)
            time.sleep(0.1)
        raise SystemExit("no bootstrap key in the daemon's log")

    def session_headers(self, credential: str | None = None) -> dict:
        """Opens an MCP session on /mcp/customers with `credential` (default: the bootstrap key)."""
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                   "authorization": f"Bearer {credential or self.key}"}
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}
        _, response_headers, _ = post(f"{self.base}/mcp/customers", init, headers)
        session = {k.lower(): v for k, v in response_headers.items()}["mcp-session-id"]
        headers.update({"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"})
        post(f"{self.base}/mcp/customers", {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
        return headers

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def audit_rows(database: str, database_url: str, workdir: str) -> int:
    if database == "sqlite":
        import sqlite3
        with sqlite3.connect(f"{workdir}/castellan.db") as connection:
            return connection.execute("SELECT count(*) FROM mcp_tool_executions").fetchone()[0]
    output = subprocess.run(["psql", database_url, "-tAc", "SELECT count(*) FROM mcp_tool_executions"],
                            capture_output=True, text=True, check=True).stdout
    return int(output.strip())


def run(database: str, args, backend_url: str) -> dict:
    workdir = tempfile.mkdtemp(prefix=f"castellan-bench-{database}-")
    if database == "sqlite":
        database_url = f"sqlite://{workdir}/castellan.db"
    else:
        name = f"castellan_bench_{os.getpid()}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
        database_url = f"postgres://postgres@127.0.0.1:5432/{name}"
    daemon = Daemon(backend_url, database_url, workdir, governance=args.governance)
    try:
        time.sleep(2)
        idle_rss = rss_kib(daemon.process.pid)
        headers = daemon.session_headers()
        url = f"{daemon.base}/mcp/customers"
        status, _, body = post(url, CALL, headers)
        assert status == 200 and '"Ada Lovelace"' in body, body
        warm_up = oha(url, headers, 3, None, args.connections)
        results = {
            "idle_rss_kib": idle_rss,
            "direct_rate": oha(backend_url, {"content-type": "application/json"}, args.seconds, args.rate, args.connections),
            "governed_rate": oha(url, headers, args.seconds, args.rate, args.connections),
            "direct_saturation": oha(backend_url, {"content-type": "application/json"}, args.seconds, None, args.connections),
            "governed_saturation": oha(url, headers, args.seconds, None, args.connections),
            "loaded_rss_kib": rss_kib(daemon.process.pid),
        }
        answered = 1 + warm_up["ok"] + results["governed_rate"]["ok"] + results["governed_saturation"]["ok"]
        results["audit_rows"] = audit_rows(database, database_url, workdir)
        results["answered_calls"] = answered
        return results
    finally:
        daemon.stop()
        if database == "postgres":
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
        shutil.rmtree(workdir, ignore_errors=True)


def table(results: dict, rate: int) -> str:
    lines = ["| database | load | direct p50 / p99 (ms) | governed p50 / p99 (ms) | added p50 / p99 (ms) | direct rps | governed rps | non-200 |",
             "|---|---|---|---|---|---|---|---|"]
    for database, result in results.items():
        for load, label in (("rate", f"{rate} calls/s"), ("saturation", "saturation")):
            direct, governed = result[f"direct_{load}"], result[f"governed_{load}"]
            lines.append(
                f"| {database} | {label} | {direct['p50_ms']:.2f} / {direct['p99_ms']:.2f} | "
                f"{governed['p50_ms']:.2f} / {governed['p99_ms']:.2f} | "
                f"{governed['p50_ms'] - direct['p50_ms']:.2f} / {governed['p99_ms'] - direct['p99_ms']:.2f} | "
                f"{direct['rps']:.0f} | {governed['rps']:.0f} | {governed['other']} |")
    lines.append("")
    lines.append("| database | idle RSS (MiB) | RSS after load (MiB) | calls answered 200 | audit rows |")
    lines.append("|---|---|---|---|---|")
    for database, result in results.items():
        lines.append(f"| {database} | {result['idle_rss_kib'] / 1024:.1f} | {result['loaded_rss_kib'] / 1024:.1f} | "
                     f"{result['answered_calls']} | {result['audit_rows']} |")
    return "\n".join(lines)


def check_tools() -> None:
    if not os.path.exists(BINARY):
        raise SystemExit("build first: cargo build --release -p castellan")
    if shutil.which("oha") is None:
        raise SystemExit("oha is not on PATH: cargo install oha --version 1.12.1 --locked")


def with_backend(measure):
    """Runs `measure(backend_url)` with `castellan demo-server --http` serving, and stops it after."""
    backend_port = free_port()
    backend = subprocess.Popen([BINARY, "demo-server", "--http", f"127.0.0.1:{backend_port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backend_url = f"http://127.0.0.1:{backend_port}/mcp"
    try:
        for _ in range(100):
            try:
                post(backend_url, CALL, {"content-type": "application/json"})
                break
            except Exception:
                time.sleep(0.1)
        return measure(backend_url)
    finally:
        backend.send_signal(signal.SIGTERM)
        backend.wait(timeout=10)


def write_report(path: str, text: str, results: dict) -> None:
    """The Markdown table to `path` and stdout, the raw figures as JSON to stderr."""
    with open(path, "w") as handle:
        handle.write(text)
    print(text)
    print(json.dumps(results), file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--governance", action="store_true",
                        help="PreToolUse rules and a secret (redaction) on the path")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks-latest.md"))
    args = parser.parse_args()
    check_tools()
    results = with_backend(lambda backend_url: {database: run(database, args, backend_url)
                                                for database in args.databases.split(",")})
    text = (f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, "
            f"{args.seconds} s per measurement, {args.connections} connections, one tools/call (get_customer) per request.\n\n"
            + table(results, args.rate) + "\n")
    write_report(args.out, text, results)


if __name__ == "__main__":
    main()
