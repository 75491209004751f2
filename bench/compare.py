#!/usr/bin/env python3
"""Side-by-side benchmark: Castellan and peer gateways in front of the same backend, measured by the
same load generator (oha), interleaved and repeated, into one Markdown table.

MCP (one `tools/call get_customer {"id": 1}` per request):
  direct        `castellan demo-server --http` (`POST /mcp`), the backend of every gateway below
  castellan     `castellan serve` on SQLite and on PostgreSQL (bench/run.py's `Daemon`, governance on:
                API key, RBAC, rate limit, two PreToolUse rules, a secret for the redactor, the
                audit row committed before the answer), `POST /mcp/customers`
  contextforge  IBM ContextForge (mcp-contextforge-gateway), authentication on as it ships (a JWT
                it mints), its rate limiter on with the MCP limit raised, SQLite, the backend
                registered as a Streamable HTTP gateway and its tool in a virtual server,
                `POST /servers/{id}/mcp`; twice: stateless as it ships (each call opens a new
                upstream MCP session), and with USE_STATEFUL_SESSIONS=true, where each client session
                reuses one upstream session but its calls wait for each other on it: there every oha
                connection gets its own session, so one oha process per connection (oha sends the
                same headers on all its connections), their stored requests merged
AI (one non-streaming Anthropic `POST /v1/messages` per request, bench/ai.py's `MESSAGES`):
  direct        `fake-provider --no-record`
  castellan     `castellan serve` as bench/ai.py sets it up (SQLite; API key, RBAC on models, rate
                and token limits, the `ai_requests` rows)
  litellm       the LiteLLM proxy (litellm[proxy]), master key, no database, the same fake as its
                Anthropic provider

For each repetition, each load (the fixed rates, then saturation) runs against each target in turn,
so drift of the machine reaches all of them. Every target is started, checked to give the backend's
answer, and warmed up before the first measurement, and stays up until its group is done.

Usage: bench/compare.py [--targets mcp,ai] [--peers contextforge,litellm|none] [--repeat 2]
                        [--seconds 10] [--connections 16] [--mcp-rates 200,1000] [--ai-rates 200,500]
                        [--databases sqlite,postgres] [--contextforge-modes stateless,stateful]
                        [--peer-workers 1] [--smoke]
                        [--out docs/benchmarks-side-by-side.md]
Run through scripts/bench.sh, which installs the pinned peers (scripts/install-bench-peers.sh), oha
1.12.1 and a release build first. Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) for the
PostgreSQL target. Loopback only; every load is bounded in time.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ai  # noqa: E402
import run  # noqa: E402
from run import BINARY, CALL, ROOT, free_port, post  # noqa: E402

TOOLS = os.environ.get("CASTELLAN_TOOLS_DIR") or os.path.join(ROOT, ".tools")
PEERS_DIR = os.path.join(TOOLS, "peers")
PEER_CONFIGS = os.path.join(ROOT, "bench", "peers")
PEER_GROUP = {"contextforge": "mcp", "litellm": "ai"}
MCP_ACCEPT = "application/json, text/event-stream"
# oha counts the requests it cut off when the duration ended as this error; they are not failures.
DEADLINE = "aborted due to deadline"
# The fake provider's answers carry a running message number: up to this many digits more than when checked.
AI_SLACK = 12


# --------------------------------------------------------------------------------------------------
# Load

def oha_duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def percentile(ordered: list, p: float) -> float:
    """oha's rule (the value at index floor(p/100 * n) of the sorted durations), so figures merged
    from several processes are what one oha process would have printed."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def load(target, seconds: float, rate: float | None, connections: int, workdir: str) -> dict:
    """One measurement of `target`: one oha process per entry of `target.header_sets` (each its own
    MCP session where the target needs one), the connections and the rate split evenly between them,
    run at once. Every process stores its requests (`--db-url`); the percentiles are taken from all
    of them together, the rate (answers received per second) is the sum of the processes' rates."""
    count = len(target.header_sets)
    shares = [connections // count + (1 if index < connections % count else 0) for index in range(count)]
    processes = []
    for index, (headers, share) in enumerate(zip(target.header_sets, shares)):
        database = os.path.join(workdir, f"oha-{os.getpid()}-{index}.db")
        if os.path.exists(database):
            os.remove(database)
        command = ["oha", "--no-tui", "--output-format", "json", "-z", oha_duration(seconds), "-c", str(share),
                   "-m", "POST", "-d", json.dumps(target.body), "--db-url", database,
                   # The requests in flight at the end are waited for and counted (not cut off): a slow
                   # target's latency is then that of all its requests, not of the ones that were quick.
                   "--wait-ongoing-requests-after-deadline"]
        if rate:
            command += ["-q", f"{rate / count:g}", "--latency-correction"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        command.append(target.url)
        processes.append((subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
                          database))
    rps, statuses, errors, durations, other_answers = 0.0, {}, {}, [], 0
    for process, database in processes:
        output, error_text = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"oha failed against {target.name}: {error_text.strip()[-500:]}")
        report = json.loads(output)
        elapsed = report["summary"]["total"]
        for code, number in report.get("statusCodeDistribution", {}).items():
            statuses[code] = statuses.get(code, 0) + number
        for message, number in report.get("errorDistribution", {}).items():
            if DEADLINE not in message:
                errors[message] = errors.get(message, 0) + number
        with sqlite3.connect(database) as connection:
            rows = connection.execute("SELECT duration, status, len_bytes FROM oha").fetchall()
        os.remove(database)
        for duration, status, length in rows:
            durations.append(duration)
            if status == 200 and target.answer_bytes and not 0 <= length - target.answer_bytes <= target.slack:
                other_answers += 1
        # Answers received per second (oha's own requestsPerSec also counts the requests it cut off).
        rps += len(rows) / elapsed if elapsed else 0.0
    durations.sort()
    return {
        "rps": rps,
        "p50_ms": percentile(durations, 50) * 1000,
        "p99_ms": percentile(durations, 99) * 1000,
        "ok": statuses.get("200", 0),
        "not_200": sum(number for code, number in statuses.items() if code != "200"),
        "statuses": statuses,
        "errors": sum(errors.values()),
        # Answered 200 with a body of another size than the checked answer (an error inside a 200).
        "other_answers": other_answers,
        "error_kinds": sorted(errors)[:3],
        "processes": count,
    }


# --------------------------------------------------------------------------------------------------
# Targets: each has name, url, body, header_sets (one dict per oha process), check_answer (a text its
# checked answer must contain), pid (for RSS), version, stop().

class Target:
    def __init__(self, name: str, url: str, body: dict, header_sets: list, answer: str, pid: int | None,
                 version: str, stop=None, slack: int = 0):
        """`slack`: how many bytes longer than the checked answer a later one may be (the fake
        provider numbers its message ids, so its answers grow by a digit now and then)."""
        self.name, self.url, self.body, self.header_sets = name, url, body, header_sets
        self.slack = slack
        self.answer, self.pid, self.version = answer, pid, version
        self._stop = stop
        self.answer_bytes = None
        self.description = ""

    def check(self) -> None:
        """Every session (header set) answers with the backend's answer, always of the same size (which
        the measurements then expect of every 200)."""
        for headers in self.header_sets:
            status, _, text = post(self.url, self.body, headers)
            if status != 200 or self.answer not in text or '"isError":true' in text.replace(" ", ""):
                raise SystemExit(f"{self.name} did not answer as the backend does ({status}): {text[:500]}")
            size = len(text.encode())
            if self.answer_bytes is None:
                self.answer_bytes = size
            elif not 0 <= size - self.answer_bytes <= self.slack:
                raise SystemExit(f"{self.name} answered the same call with {self.answer_bytes} and {size} bytes")

    def stop(self) -> None:
        if self._stop:
            self._stop()


def tree_rss_kib(pid: int | None) -> int:
    """Resident memory of `pid` and all its descendants (a Python peer's workers are children)."""
    if not pid:
        return 0
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += run.rss_kib(current)
        except OSError:
            pass
        todo += children.get(current, [])
    return total


def stop_process_group(process: subprocess.Popen, limit: float = 30) -> None:
    """SIGTERM to the group of a process started with `start_new_session` (it and its workers)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def peer_venv(name: str) -> str:
    venv = os.path.join(PEERS_DIR, name)
    if not os.path.exists(os.path.join(venv, ".castellan-bench-peer.stamp")):
        raise SystemExit(f"{name} is not installed in {venv}: run scripts/install-bench-peers.sh {name}")
    return venv


def peer_version(name: str) -> str:
    """The description the installer recorded, e.g. 'mcp-contextforge-gateway 1.1.0 (python 3.12.1)'."""
    with open(os.path.join(PEERS_DIR, name, ".castellan-bench-peer.stamp")) as stamp:
        return stamp.read().splitlines()[1].split(": ", 1)[1]


def read_env_file(path: str) -> dict:
    values = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                name, value = line.split("=", 1)
                values[name.strip()] = value.strip()
    return values


class ContextForge:
    """IBM ContextForge on SQLite in `workdir`, the backend registered as a gateway, its tool in a
    virtual server; requests authenticated with a JWT minted by its own CLI for the platform admin."""

    ADMIN = "admin@example.com"

    def __init__(self, backend_url: str, workdir: str, workers: int, stateful: bool = False):
        """`stateful`: USE_STATEFUL_SESSIONS=true (it ships false): clients open MCP sessions, and each
        reuses one upstream session (calls on one session wait for each other on it)."""
        venv = peer_venv("contextforge")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.jwt_secret = secrets.token_urlsafe(48)
        env = {name: value for name, value in os.environ.items()
               if name not in ("DATABASE_URL", "HOST", "PORT", "REDIS_URL")}
        env.update(read_env_file(os.path.join(PEER_CONFIGS, "contextforge.env")))
        env.update({
            "DATABASE_URL": f"sqlite:///{workdir}/contextforge.db",
            "JWT_SECRET_KEY": self.jwt_secret,
            "AUTH_ENCRYPTION_SECRET": secrets.token_urlsafe(48),
            "PLATFORM_ADMIN_EMAIL": self.ADMIN,
            "PLATFORM_ADMIN_PASSWORD": secrets.token_urlsafe(18),
            "DEFAULT_USER_PASSWORD": secrets.token_urlsafe(18),
            "BASIC_AUTH_PASSWORD": secrets.token_urlsafe(18),
        })
        if stateful:
            env["USE_STATEFUL_SESSIONS"] = "true"
        self.env = env
        self.log_path = os.path.join(workdir, "contextforge.log")
        self.log = open(self.log_path, "w")
        command = [os.path.join(venv, "bin", "mcpgateway"), "--host", "127.0.0.1", "--port", str(self.port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        self.process = subprocess.Popen(command, cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            self._set_up(venv, backend_url, workdir)
        except BaseException:
            self.stop()
            raise

    def _set_up(self, venv: str, backend_url: str, workdir: str) -> None:
        env = self.env
        run.wait_http(f"{self.base}/health", 300, self.process, self.log_path)
        token = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "mcpgateway.utils.create_jwt_token",
                                "--username", self.ADMIN, "--exp", "1440", "--secret", self.jwt_secret],
                               cwd=workdir, env=env, capture_output=True, text=True, check=True).stdout
        self.token = token.strip().splitlines()[-1]
        self.headers = {"authorization": f"Bearer {self.token}", "content-type": "application/json",
                        "accept": MCP_ACCEPT}
        self._api("POST", "/gateways", {"name": "customers", "url": backend_url, "transport": "STREAMABLEHTTP"})
        tools = self._api("GET", "/tools")
        tools = tools if isinstance(tools, list) else tools.get("items", tools.get("data", []))
        tool = next((t for t in tools if t.get("originalName") == "get_customer"), None)
        if tool is None:
            raise SystemExit(f"ContextForge found no get_customer tool on the backend: {tools}")
        self.tool_name = tool["name"]
        server = self._api("POST", "/servers", {"server": {"name": "customers", "associated_tools": [tool["id"]]}})
        self.url = f"{self.base}/servers/{server['id']}/mcp"

    def session_headers(self) -> dict:
        """Opens an MCP session on the virtual server's endpoint; its headers."""
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "bench", "version": "1"}}}
        _, response_headers, _ = post(self.url, init, self.headers)
        session = {k.lower(): v for k, v in response_headers.items()}.get("mcp-session-id")
        if not session:
            raise SystemExit(f"ContextForge opened no MCP session: {response_headers}")
        headers = dict(self.headers, **{"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"})
        post(self.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
        return headers

    def _api(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode())
        for name, value in self.headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise SystemExit(f"ContextForge {method} {path}: {error.code} {error.read()[:500]!r}")

    def stop(self) -> None:
        stop_process_group(self.process)
        self.log.close()


class LiteLLM:
    """The LiteLLM proxy with bench/peers/litellm.yaml: the fake as its Anthropic provider, a master
    key, no database."""

    def __init__(self, fake, workdir: str, workers: int):
        venv = peer_venv("litellm")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.key = "sk-bench-" + secrets.token_hex(16)
        env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "HOST", "PORT")}
        env.update({
            "LITELLM_MASTER_KEY": self.key,
            "CASTELLAN_BENCH_FAKE_BASE": fake.base,
            "CASTELLAN_BENCH_PROVIDER_KEY": ai.PROVIDER_KEY,
            # The model cost map bundled with the package, not a download at start.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        })
        self.log_path = os.path.join(workdir, "litellm.log")
        self.log = open(self.log_path, "w")
        command = [os.path.join(venv, "bin", "litellm"), "--config", os.path.join(PEER_CONFIGS, "litellm.yaml"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--num_workers", str(workers)]
        self.process = subprocess.Popen(command, cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            run.wait_http(f"{self.base}/health/liveliness", 300, self.process, self.log_path)
        except BaseException:
            self.stop()
            raise
        self.url = f"{self.base}/v1/messages"

    def stop(self) -> None:
        stop_process_group(self.process)
        self.log.close()


def castellan_version() -> str:
    done = subprocess.run([BINARY, "--version"], capture_output=True, text=True)
    version = done.stdout.strip() or "castellan (version unknown)"
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    if commit.returncode == 0:
        version += f", tree {commit.stdout.strip()}{' with local changes' if dirty else ''}"
    profile = "debug" if f"{os.sep}debug{os.sep}" in os.path.realpath(BINARY) else "release"
    return f"{version} ({profile} build)"


def postgres_version() -> str:
    done = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SHOW server_version"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def stopping_on_failure(stop, step):
    """`step()`, or `stop()` and the failure."""
    try:
        return step()
    except BaseException:
        stop()
        raise


def start_all(starters: dict) -> dict:
    """Starts the targets at once (each start waits for its own readiness), returns them by name in
    the order given; on a failure stops the ones that started."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(starters)) as pool:
        futures = {name: pool.submit(start) for name, start in starters.items()}
        started, failure = {}, None
        for name, future in futures.items():
            try:
                started[name] = future.result()
            except BaseException as error:  # SystemExit from a helper included
                failure = failure or error
    if failure:
        for target in started.values():
            target.stop()
        raise failure
    return started


def mcp_targets(args, backend_url: str, workdir: str) -> dict:
    version = castellan_version()

    def castellan(database: str):
        directory = tempfile.mkdtemp(prefix=f"castellan-{database}-", dir=workdir)
        if database == "sqlite":
            database_url, drop = f"sqlite://{directory}/castellan.db", None
        else:
            name = f"castellan_compare_{os.getpid()}"
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {name}"],
                           check=True, capture_output=True)
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"],
                           check=True, capture_output=True)
            database_url = f"postgres://postgres@127.0.0.1:5432/{name}"

            def drop():
                subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                                f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)
        daemon = run.Daemon(backend_url, database_url, directory, governance=True)

        def stop():
            daemon.stop()
            if drop:
                drop()
        label, described = (("SQLite", version) if database == "sqlite" else
                            ("PostgreSQL", f"{version}; PostgreSQL {postgres_version()}"))
        # One MCP session for all the connections, as bench/run.py: Castellan does not serialize the
        # calls of a session (its upstream connection multiplexes them).
        headers = stopping_on_failure(stop, daemon.session_headers)
        target = Target(f"Castellan, {label}", f"{daemon.base}/mcp/customers", CALL, [headers],
                        "Ada Lovelace", daemon.process.pid, described, stop)
        target.description = (f"API key, one MCP session, RBAC, rate limit, two PreToolUse rules, the redactor "
                              f"(one secret), the audit row committed to {label} before the answer; "
                              f"`POST /mcp/customers`")
        return target

    def contextforge(mode: str):
        stateful = mode == "stateful"
        peer = ContextForge(backend_url, tempfile.mkdtemp(prefix=f"contextforge-{mode}-", dir=workdir),
                            args.peer_workers, stateful=stateful)
        body = dict(CALL, params={"name": peer.tool_name, "arguments": {"id": 1}})
        workers = f", {args.peer_workers} worker{'s' if args.peer_workers > 1 else ''}"
        common = ("JWT bearer authentication (minted by its CLI for the platform admin) and its RBAC checks, "
                  "its rate limiter (in memory, the MCP limit raised to 10,000,000/min), SQLite, the backend "
                  "registered as a Streamable HTTP gateway and its tool in a virtual server; "
                  "`POST /servers/{id}/mcp`; ")
        if stateful:
            # Calls on one session wait for each other (one upstream session each): one session per
            # connection, so one oha process per connection.
            sessions = stopping_on_failure(peer.stop, lambda: [peer.session_headers() for _ in range(args.connections)])
            target = Target("IBM ContextForge, stateful", peer.url, body, sessions, "Ada Lovelace",
                            peer.process.pid, peer_version("contextforge") + workers, peer.stop)
            target.description = common + (f"`USE_STATEFUL_SESSIONS=true`: {args.connections} MCP sessions, one "
                                           f"per connection (so {args.connections} oha processes of one connection "
                                           f"each, merged), each reusing one upstream session")
        else:
            target = Target("IBM ContextForge", peer.url, body, [peer.headers], "Ada Lovelace", peer.process.pid,
                            peer_version("contextforge") + workers, peer.stop)
            target.description = common + ("stateless as it ships (no MCP session; a new upstream MCP session "
                                           "for every call)")
        return target

    direct_headers = {"content-type": "application/json", "accept": MCP_ACCEPT}

    def direct():
        target = Target("direct (backend)", backend_url, CALL, [direct_headers], "Ada Lovelace", None,
                        "castellan demo-server --http")
        target.description = "none: `POST /mcp` straight to the backend (`castellan demo-server --http`)"
        return target

    starters = {"direct": direct}
    for database in args.databases:
        starters[f"castellan-{database}"] = lambda database=database: castellan(database)
    if "contextforge" in args.peers:
        for mode in args.contextforge_modes:
            starters[f"contextforge-{mode}"] = lambda mode=mode: contextforge(mode)
    return start_all(starters)


def ai_targets(args, fake, workdir: str) -> dict:
    version = castellan_version()

    def direct():
        target = Target("direct (fake-provider)", f"{fake.base}/v1/messages", ai.MESSAGES,
                        [ai.anthropic_headers(ai.PROVIDER_KEY)], ai.ANSWER, None, "fake-provider --no-record",
                        slack=AI_SLACK)
        target.description = "none: straight to `fake-provider --no-record`"
        return target

    def castellan():
        directory = tempfile.mkdtemp(prefix="castellan-ai-", dir=workdir)
        daemon = ai.Daemon(fake, f"sqlite://{directory}/castellan.db", directory)
        target = Target("Castellan, SQLite", f"{daemon.base}/v1/messages", ai.MESSAGES,
                        [ai.anthropic_headers(daemon.key)], ai.ANSWER, daemon.process.pid, version, daemon.stop,
                        AI_SLACK)
        target.description = ("API key, RBAC on models, rate and token limits, the `ai_requests` row committed "
                              "before the request goes upstream and completed after (SQLite)")
        return target

    def litellm():
        peer = LiteLLM(fake, tempfile.mkdtemp(prefix="litellm-", dir=workdir), args.peer_workers)
        workers = f", {args.peer_workers} worker{'s' if args.peer_workers > 1 else ''}"
        target = Target("LiteLLM proxy", peer.url, ai.MESSAGES, [ai.anthropic_headers(peer.key)], ai.ANSWER,
                        peer.process.pid, peer_version("litellm") + workers, peer.stop, AI_SLACK)
        target.description = ("master key authentication, no database (no spend logs, no virtual keys), the fake "
                              "as its Anthropic provider (`anthropic/claude-sonnet-4-5`, `api_base` the fake); "
                              "its access log on as it ships")
        return target

    starters = {"direct": direct, "castellan": castellan}
    if "litellm" in args.peers:
        starters["litellm"] = litellm
    return start_all(starters)


# --------------------------------------------------------------------------------------------------
# The run

def measure_group(targets: dict, rates: list, args, workdir: str) -> dict:
    """Checks and warms up every target, then for each repetition each load against each target in
    turn. Returns {target: {"loads": {label: [measurement per repetition]}, "rss_kib": ...}}."""
    for target in targets.values():
        target.check()
    for target in targets.values():
        load(target, args.warm_up, None, args.connections, workdir)
    loads = [(f"{rate:,}/s", rate) for rate in rates] + [("saturation", None)]
    results = {name: {"loads": {label: [] for label, _ in loads}} for name in targets}
    for repetition in range(args.repeat):
        for label, rate in loads:
            for name, target in targets.items():
                measured = load(target, args.seconds, rate, args.connections, workdir)
                results[name]["loads"][label].append(measured)
                print(f"  [{repetition + 1}/{args.repeat}] {target.name:<28} {label:>10}: {measured['rps']:>9,.0f} req/s, "
                      f"p50 {measured['p50_ms']:8.2f} ms, p99 {measured['p99_ms']:8.2f} ms"
                      + (f", {measured['not_200']} not 200" if measured["not_200"] else "")
                      + (f", {measured['errors']} errors" if measured["errors"] else ""), file=sys.stderr)
    for name, target in targets.items():
        target.check()  # still answering as the backend does after the load
        results[name]["rss_kib"] = tree_rss_kib(target.pid)
        results[name]["label"] = target.name
        results[name]["version"] = target.version
        results[name]["description"] = target.description
        results[name]["processes"] = len(target.header_sets)
    return results


def show(form, value: float, reference: float) -> str:
    """`form`: a format string, or a function of the value and of the `reference` that sets its
    precision (the median, so a cell's figures have one precision). NaN (no answer in the time): a dash."""
    if value != value:
        return "–"
    return form(value, reference) if callable(form) else form.format(value)


def ms(value: float, reference: float, sign: str = "") -> str:
    """Milliseconds: two decimals when `reference` is below 10, one below 100, none above (a
    second-long queue needs no hundredths)."""
    size = abs(reference)
    return (f"{value:{sign}.2f}" if size < 10 else f"{value:{sign}.1f}" if size < 100 else f"{value:{sign},.0f}")


def added_ms(value: float, reference: float) -> str:
    return ms(value, reference, "+")


def median_range(values: list, form) -> str:
    """The median, and the range in brackets when the repetitions differ."""
    values = [value for value in values if value == value] or [float("nan")]
    median = statistics.median(values)
    text = show(form, median, median)
    if len(values) > 1:
        low, high = show(form, min(values), median), show(form, max(values), median)
        if low != high:
            text += f" ({low} – {high})"
    return text


def group_table(results: dict, rates: list) -> str:
    lines = ["| target | load | answered (req/s) | p50 (ms) | p99 (ms) | added p50 (ms) | added p99 (ms) | "
             "req/s ÷ direct | not 200 / 200 of another size / errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    direct = results["direct"]["loads"]
    for name, result in results.items():
        for label, runs in result["loads"].items():
            rate = next((r for r in rates if f"{r:,}/s" == label), None)
            achieved = [m["rps"] for m in runs]
            cell = median_range(achieved, "{:,.0f}")
            if rate and statistics.median(achieved) < 0.95 * rate:
                cell = f"**{cell}**, short of {rate:,}"
            cells = [cell, median_range([m["p50_ms"] for m in runs], ms), median_range([m["p99_ms"] for m in runs], ms)]
            if name == "direct":
                cells += ["", "", ""]
            else:
                pairs = list(zip(runs, direct[label]))
                cells += [median_range([m["p50_ms"] - d["p50_ms"] for m, d in pairs], added_ms),
                          median_range([m["p99_ms"] - d["p99_ms"] for m, d in pairs], added_ms),
                          "" if rate else median_range([m["rps"] / d["rps"] if d["rps"] else float("nan")
                                                        for m, d in pairs], "{:.3g}")]
            cells.append(" / ".join(f"{sum(m[key] for m in runs):,}" for key in ("not_200", "other_answers", "errors")))
            lines.append(f"| {result['label']} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores (`nproc` {os.cpu_count()}), {model}, Linux {platform.release()}"


def fsync_probe(directory: str, count: int = 1000) -> dict:
    """The disk's durable-write floor, as a SQLite WAL commit meets it: a 4 KiB write into a
    preallocated file, then `fdatasync`; p50 and p99 over `count` (the file is on the same file
    system as the gateways' databases)."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.pwrite(fd, b"\0" * 4096 * 64, 0)
        os.fsync(fd)
        times = []
        for index in range(count):
            os.pwrite(fd, b"x" * 4096, (index % 64) * 4096)
            began = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - began) * 1000)
    finally:
        os.close(fd)
        os.remove(path)
    times.sort()
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}


def oha_version() -> str:
    return subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()


def report(args, results: dict, load_before: float, load_after: float, started: float) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    minutes = (time.time() - started) / 60
    text = [
        "# Side by side: Castellan and peer gateways",
        "",
        f"Run {when} by `scripts/bench.sh{' ' + ' '.join(args.argv) if args.argv else ''}` ({minutes:.1f} min) on "
        f"{machine()}; 1-minute load average {load_before:.1f} before, {load_after:.1f} after. Every process "
        f"(load generator, backend, gateways, PostgreSQL) shares this machine.",
        "",
        f"Load: {oha_version()}, {args.connections} connections, {args.seconds:g} s per measurement; the fixed "
        f"rates with `-q RATE --latency-correction` (a request's latency counts from when it was due, so "
        f"queueing counts); saturation without a rate. {args.repeat} repetition{'s' if args.repeat != 1 else ''}: "
        f"in each, every load ran against every target in turn (the order of the rows), so drift of the "
        f"machine reaches all of them. Figures are medians over the repetitions with the range in brackets; "
        f"“added” is the target minus direct of the same repetition. Every target was checked to give the "
        f"backend's answer before the first measurement and after the last, and warmed up for "
        f"{args.warm_up:g} s at saturation first. oha waits for the requests in flight when the time is up "
        f"(`--wait-ongoing-requests-after-deadline`), so they count too. A target **short of** a fixed rate "
        f"could not serve it: its latency there includes the queue of requests that were due and waited (it "
        f"grows with the length of the measurement); its saturation row says what it can serve.",
    ]
    if "fsync" in results:
        before, after = results["fsync"]["before"], results["fsync"]["after"]
        text += ["", f"The disk's floor in the same run (4 KiB write + `fdatasync`, 1,000 times, before and after "
                 f"the loads): p50 {before['p50_ms']:.3f} / {after['p50_ms']:.3f} ms, p99 {before['p99_ms']:.3f} / "
                 f"{after['p99_ms']:.3f} ms. Every durable audit commit pays at least one."]
    text += ["", "A target with several oha processes (one per MCP session) got them at once, the connections and "
             "the rate split between them; its percentiles are over the requests of all of them together (each "
             "stores its requests with `--db-url`), its rate the sum of theirs. Every other target: one oha process, "
             "and the percentiles from the same stored requests."]
    for group, rates, what in (("mcp", args.mcp_rates, "MCP: one `tools/call get_customer {\"id\": 1}` per request"),
                               ("ai", args.ai_rates, "AI: one non-streaming Anthropic `POST /v1/messages` per request")):
        if group not in results:
            continue
        text += ["", f"## {what}", ""]
        text.append("| target | version | what is on the path |")
        text.append("|---|---|---|")
        for name, result in results[group].items():
            text.append(f"| {result['label']} | {result['version']} | {result['description']} |")
        text += ["", group_table(results[group], rates), ""]
        rss = ", ".join(f"{result['label']} {result['rss_kib'] / 1024:.0f} MiB"
                        for name, result in results[group].items() if result["rss_kib"])
        if rss:
            text.append(f"Resident memory after the load (the process and its children, added up, so pages "
                        f"that forked workers share count in each): {rss}.")
    return "\n".join(text) + "\n"


def parse_args(argv: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="mcp,ai", help="groups: mcp, ai (comma-separated)")
    parser.add_argument("--peers", default=None,
                        help="contextforge,litellm (the default), or none; --smoke defaults to none")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (default 2; 1 with --smoke)")
    parser.add_argument("--seconds", type=float, default=None, help="per measurement (default 10; 1 with --smoke)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--mcp-rates", default="200,1000", help="fixed rates of the MCP group (calls/s)")
    parser.add_argument("--ai-rates", default="200,500", help="fixed rates of the AI group (requests/s)")
    parser.add_argument("--databases", default="sqlite,postgres", help="Castellan's databases in the MCP group")
    parser.add_argument("--contextforge-modes", default="stateless,stateful",
                        help="ContextForge as it ships (stateless) and/or with USE_STATEFUL_SESSIONS=true and "
                             "one MCP session per connection (stateful)")
    parser.add_argument("--peer-workers", type=int, default=1,
                        help="worker processes of the Python peers (default 1, as they ship)")
    parser.add_argument("--warm-up", type=float, default=None, help="seconds at saturation before measuring")
    parser.add_argument("--smoke", action="store_true",
                        help="the whole run in about 30 s: 1 s measurements, 1 repetition, no peers unless --peers")
    parser.add_argument("--out", default=None,
                        help="default docs/benchmarks-side-by-side.md; with --smoke a file in the temporary "
                             "directory, so a smoke run leaves the published table alone")
    parser.add_argument("--list-peers", action="store_true",
                        help="print the peers this selection would run, one a line, and exit")
    parser.add_argument("--needs-postgres", action="store_true",
                        help="print yes if this selection has the PostgreSQL target, else no, and exit")
    args = parser.parse_args(argv)
    args.argv = argv
    args.targets = [group for group in args.targets.split(",") if group]
    for group in args.targets:
        if group not in ("mcp", "ai"):
            parser.error(f"unknown target group {group!r} (mcp, ai)")
    peers = args.peers if args.peers is not None else ("none" if args.smoke else "contextforge,litellm")
    args.peers = [] if peers in ("none", "") else peers.split(",")
    for peer in args.peers:
        if peer not in PEER_GROUP:
            parser.error(f"unknown peer {peer!r} (contextforge, litellm, none)")
    args.peers = [peer for peer in args.peers if PEER_GROUP[peer] in args.targets]
    args.out = args.out or (os.path.join(tempfile.gettempdir(), "benchmarks-side-by-side-smoke.md") if args.smoke
                            else os.path.join(ROOT, "docs", "benchmarks-side-by-side.md"))
    args.repeat = args.repeat or (1 if args.smoke else 2)
    args.seconds = args.seconds or (1 if args.smoke else 10)
    args.warm_up = args.warm_up if args.warm_up is not None else (0.5 if args.smoke else 2)
    args.mcp_rates = [int(rate) for rate in args.mcp_rates.split(",") if rate]
    args.ai_rates = [int(rate) for rate in args.ai_rates.split(",") if rate]
    args.databases = [database for database in args.databases.split(",") if database]
    for database in args.databases:
        if database not in ("sqlite", "postgres"):
            parser.error(f"unknown database {database!r} (sqlite, postgres)")
    args.contextforge_modes = [mode for mode in args.contextforge_modes.split(",") if mode]
    for mode in args.contextforge_modes:
        if mode not in ("stateless", "stateful"):
            parser.error(f"unknown ContextForge mode {mode!r} (stateless, stateful)")
    if args.peer_workers > 1 and "stateful" in args.contextforge_modes and "contextforge" in args.peers:
        parser.error("ContextForge's stateful sessions live in the worker that opened them (sharing them needs "
                     "Redis): with --peer-workers > 1 use --contextforge-modes stateless")
    return args


def check_tools(args) -> None:
    missing = [path for path in [BINARY] + ([ai.FAKE_BINARY] if "ai" in args.targets else [])
               if not os.path.exists(path)]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: build with cargo build --release --locked -p castellan "
                         f"-p integration-tests --bins, or set CASTELLAN_BENCH_BINARY / FAKE_PROVIDER_BIN")
    if shutil.which("oha") is None:
        raise SystemExit("oha is not on PATH: cargo install oha --version 1.12.1 --locked (scripts/bench.sh does)")
    for peer in args.peers:
        peer_venv(peer)


def main() -> None:
    args = parse_args(sys.argv[1:])
    if args.list_peers:
        print("\n".join(args.peers))
        return
    if args.needs_postgres:
        print("yes" if "mcp" in args.targets and "postgres" in args.databases else "no")
        return
    check_tools(args)
    # A SIGTERM stops the gateways too (the peers run in sessions of their own, out of reach of a
    # signal to this process group): it unwinds through the `finally` blocks below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    load_before = os.getloadavg()[0]
    workdir = tempfile.mkdtemp(prefix="castellan-compare-")
    results = {}
    finished = False
    fsync_before = fsync_probe(workdir)
    try:
        if "mcp" in args.targets:
            print("MCP: starting the backend and the gateways", file=sys.stderr)

            def mcp(backend_url: str) -> dict:
                targets = mcp_targets(args, backend_url, workdir)
                try:
                    return measure_group(targets, args.mcp_rates, args, workdir)
                finally:
                    for target in targets.values():
                        target.stop()
            results["mcp"] = run.with_backend(mcp)
        if "ai" in args.targets:
            print("AI: starting the fake provider and the gateways", file=sys.stderr)
            fake = ai.FakeProvider()
            try:
                targets = ai_targets(args, fake, workdir)
                try:
                    results["ai"] = measure_group(targets, args.ai_rates, args, workdir)
                finally:
                    for target in targets.values():
                        target.stop()
            finally:
                fake.stop()
        finished = True
        results["fsync"] = {"before": fsync_before, "after": fsync_probe(workdir)}
    finally:
        if finished:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"compare: the gateways' logs are kept in {workdir}", file=sys.stderr)
    text = report(args, results, load_before, os.getloadavg()[0], started)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    run.write_report(args.out, text, results)


if __name__ == "__main__":
    main()
