#!/usr/bin/env python3
"""Skills benchmark: `skills/list` over MCP through the governed chain with 1,000 published skills,
and `castellan skills sync` of 100 skills into an empty folder, on one release build.

1. `skills/list` (the stateless 2026-07-28 wire, `POST /mcp`, a user-tier API key, RBAC filtering
   every skill, the audit row committed before the answer) at a fixed rate on one connection,
   against `tools/list` on the same endpoint and connection as the baseline of the same run.
2. `castellan skills sync` of 100 skills (two files each) into an empty folder, wall clock of the
   whole command (process start, listing, 100 version reads and 100 tar.gz downloads, each
   verified and installed), five runs; then a second run over the installed folder (nothing to do).

Usage: bench/skills.py [--rate 50] [--seconds 10] [--out docs/benchmarks-skills-latest.md]
Needs: a release build (cargo build --release -p castellan) and oha on PATH (cargo install oha
--version 1.12.1 --locked). SQLite in a temporary directory; loopback only; bounded in time.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from run import BINARY  # noqa: E402

STATELESS = "2026-07-28"


class Daemon:
    """castellan serve on SQLite in `workdir`, with a rule that lets users see every skill."""

    def __init__(self, workdir: str):
        self.port = run.free_port()
        self.workdir = workdir
        profile = os.path.join(workdir, "profile.yaml")
        with open(profile, "w") as handle:
            handle.write(f"""
server:
  listen: 127.0.0.1:{self.port}
database:
  url: "sqlite://{workdir}/castellan.db"
rbac:
  default: deny
  rules:
    - {{ name: skills-for-users, effect: allow, min_tier: user, skills: ["*"] }}
    - {{ name: no-release-skills-for-users, effect: deny, max_tier: user, skills: ["release-*"] }}
rate_limits:
  per_second: {{ mcp_tool_call: 100000, oauth: 100000 }}
""")
        self.env = dict(os.environ, CASTELLAN_PROFILE=profile, CASTELLAN_LOG="warn", CASTELLAN_MASTER_KEY="ab" * 32)
        self.env.pop("CASTELLAN_DATABASE_URL", None)
        self.log_path = os.path.join(workdir, "castellan.log")
        self.log = open(self.log_path, "w+")
        self.process = subprocess.Popen([BINARY, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.base = f"http://127.0.0.1:{self.port}"
        run.wait_http(f"{self.base}/readyz", 60)
        # Bootstrapped once the admin key is printed (run.Daemon reads it from the same log).
        self.key = run.Daemon._bootstrap_key(self)

    def cli(self, *args: str) -> str:
        done = subprocess.run([BINARY, *args], env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"castellan {args[0]} {args[1] if len(args) > 1 else ''}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done.stdout

    def user_key(self, name: str) -> str:
        self.cli("users", "add", name, "--tier", "user")
        return self.cli("keys", "create", "--user", name).strip()

    def publish(self, count: int, prefix: str) -> None:
        root = os.path.join(self.workdir, f"skills-{prefix}")
        dirs = []
        for index in range(count):
            name = f"{prefix}-{index:04d}"
            folder = os.path.join(root, name)
            os.makedirs(os.path.join(folder, "references"))
            with open(os.path.join(folder, "SKILL.md"), "w") as handle:
                handle.write(f"---\nname: {name}\ndescription: Benchmark skill {index}, which does one thing well.\n"
                             f"metadata:\n  version: \"1.0.{index}\"\n---\n\n# {name}\n\nSteps.\n")
            with open(os.path.join(folder, "references", "GUIDE.md"), "w") as handle:
                handle.write("A reference page.\n" * 20)
            dirs.append(folder)
        self.cli("skills", "publish", *dirs)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def stateless_body(method: str) -> str:
    meta = {"io.modelcontextprotocol/protocolVersion": STATELESS, "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": meta}})


def listing(daemon: Daemon, key: str, method: str, seconds: int, rate: int) -> dict:
    headers = {"content-type": "application/json", "accept": "application/json", "authorization": f"Bearer {key}",
               "mcp-protocol-version": STATELESS, "mcp-method": method}
    status, _, body = run.post(f"{daemon.base}/mcp", json.loads(stateless_body(method)), headers)
    assert status == 200, body
    result = json.loads(body)["result"]
    from identity import oha  # noqa: E402  (the variant that takes a body)
    measured = oha(f"{daemon.base}/mcp", "POST", stateless_body(method), headers, seconds, rate, 1)
    measured["answer_bytes"] = len(body)
    measured["entries"] = len(result.get("skills", result.get("tools", [])))
    return measured


def sync_runs(daemon: Daemon, key: str, runs: int) -> dict:
    timings, noop = [], []
    for attempt in range(runs):
        dest = tempfile.mkdtemp(prefix="castellan-bench-sync-")
        command = [BINARY, "skills", "sync", "--url", daemon.base, "--token", key, "--dest", dest]
        started = time.perf_counter()
        printed = subprocess.run(command, env=daemon.env, check=True, capture_output=True, text=True).stdout
        timings.append(time.perf_counter() - started)
        assert printed.count("installed ") == 100, printed
        started = time.perf_counter()
        printed = subprocess.run(command, env=daemon.env, check=True, capture_output=True, text=True).stdout
        noop.append(time.perf_counter() - started)
        assert printed.count("unchanged ") == 100, printed
    return {"runs": runs, "sync_s": timings, "sync_median_s": statistics.median(timings),
            "noop_median_s": statistics.median(noop)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", default=os.path.join(run.ROOT, "docs", "benchmarks-skills-latest.md"))
    args = parser.parse_args()
    run.check_tools()
    results = {}
    workdir = tempfile.mkdtemp(prefix="castellan-bench-skills-")
    daemon = Daemon(workdir)
    try:
        daemon.publish(1000, "skill")
        daemon.publish(20, "release")
        key = daemon.user_key("bench")
        time.sleep(3)  # the catalog follows the database within 2 s
        results["tools_list"] = listing(daemon, key, "tools/list", args.seconds, args.rate)
        results["skills_list"] = listing(daemon, key, "skills/list", args.seconds, args.rate)
        assert results["skills_list"]["entries"] == 1000, results["skills_list"]
    finally:
        daemon.stop()
    workdir = tempfile.mkdtemp(prefix="castellan-bench-sync-")
    daemon = Daemon(workdir)
    try:
        daemon.publish(100, "sync")
        key = daemon.user_key("bench")
        time.sleep(3)
        results["sync"] = sync_runs(daemon, key, 5)
    finally:
        daemon.stop()
    skills, tools, sync = results["skills_list"], results["tools_list"], results["sync"]
    text = f"""| Measurement | p50 | p99 | rate | answer |
|---|---|---|---|---|
| `tools/list` (no servers; the baseline) | {tools['p50_ms']:.2f} ms | {tools['p99_ms']:.2f} ms | {tools['rps']:.0f}/s | {tools['answer_bytes']} B |
| `skills/list`, 1,000 skills visible of 1,020 | {skills['p50_ms']:.2f} ms | {skills['p99_ms']:.2f} ms | {skills['rps']:.0f}/s | {skills['answer_bytes']} B |

| `castellan skills sync`, 100 skills | median of {sync['runs']} | runs |
|---|---|---|
| into an empty folder | {sync['sync_median_s'] * 1000:.0f} ms | {', '.join(f'{value * 1000:.0f}' for value in sync['sync_s'])} ms |
| again (nothing to do) | {sync['noop_median_s'] * 1000:.0f} ms | |
"""
    run.write_report(args.out, text, results)


if __name__ == "__main__":
    main()
