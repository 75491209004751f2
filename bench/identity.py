#!/usr/bin/env python3
"""Identity benchmark: the token endpoint (client credentials) and token verification on the MCP path.

1. Grants per second at saturation: POST /oauth/token with grant_type=client_credentials and HTTP
   Basic, against /healthz in the same run as the floor (an endpoint that does no work).
2. A governed tool call authenticated by JWT (one of our access tokens) against the same call
   authenticated by API key, at a fixed rate (default 500 calls/s), plus the call straight to the
   backend as the baseline of both.

Usage: bench/identity.py [--rate 500] [--seconds 20] [--connections 16] [--out docs/benchmarks-identity-latest.md]
Needs: a release build (cargo build --release -p castellan) and oha on PATH (cargo install oha
--version 1.12.1 --locked). SQLite database in a temporary directory; loopback only; bounded in time.
"""

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from run import BINARY, CALL, ROOT, post  # noqa: E402


def oha(url: str, method: str, body: str | None, headers: dict, seconds: int, rate: int | None, connections: int) -> dict:
    command = ["oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c", str(connections), "-m", method]
    if body is not None:
        command += ["-d", body]
    if rate:
        command += ["-q", str(rate), "--latency-correction"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    percentiles = report["latencyPercentiles"]
    statuses = report.get("statusCodeDistribution", {})
    return {
        "rps": report["summary"]["requestsPerSec"],
        "p50_ms": percentiles["p50"] * 1000,
        "p99_ms": percentiles["p99"] * 1000,
        "ok": statuses.get("200", 0),
        "other": sum(count for code, count in statuses.items() if code != "200"),
        "statuses": sorted(statuses),
    }


class Daemon(run.Daemon):
    """`run.Daemon` (SQLite in `workdir`) plus OAuth clients and tokens."""

    def __init__(self, backend_url: str, workdir: str):
        super().__init__(backend_url, f"sqlite://{workdir}/castellan.db", workdir)

    def client(self, name: str, tier: str) -> tuple:
        output = subprocess.run([BINARY, "clients", "add", name, "--tier", tier], env=self.env,
                                capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(": ", 1) for line in output.strip().splitlines() if ": " in line)
        return fields["client_id"], fields["client_secret"]

    def token(self, client_id: str, secret: str) -> str:
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "mcp:tools"}).encode()
        request = urllib.request.Request(f"{self.base}/oauth/token", data=body, method="POST")
        request.add_header("Authorization", basic(client_id, secret))
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["access_token"]


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def measure(args, backend_url: str) -> dict:
    workdir = tempfile.mkdtemp(prefix="castellan-bench-identity-")
    daemon = Daemon(backend_url, workdir)
    try:
        service_id, service_secret = daemon.client("bench-service", "service")
        user_client_id, user_client_secret = daemon.client("bench-user-client", "user")
        grant_headers = {"authorization": basic(service_id, service_secret),
                         "content-type": "application/x-www-form-urlencoded"}
        grant_body = "grant_type=client_credentials&scope=mcp%3Atools"
        token_url = f"{daemon.base}/oauth/token"
        oha(token_url, "POST", grant_body, grant_headers, 3, None, args.connections)  # warm-up
        results = {
            "healthz_saturation": oha(f"{daemon.base}/healthz", "GET", None, {}, args.seconds, None, args.connections),
            "grants_saturation": oha(token_url, "POST", grant_body, grant_headers, args.seconds, None, args.connections),
        }
        jwt = daemon.token(user_client_id, user_client_secret)
        url = f"{daemon.base}/mcp/customers"
        key_headers = daemon.session_headers(daemon.key)
        jwt_headers = daemon.session_headers(jwt)
        for headers in (key_headers, jwt_headers):
            status, _, body = post(url, CALL, headers)
            assert status == 200 and '"Ada Lovelace"' in body, body
        call = json.dumps(CALL)
        direct = {"content-type": "application/json"}
        oha(url, "POST", call, jwt_headers, 3, None, args.connections)  # warm-up
        results["direct_rate"] = oha(backend_url, "POST", call, direct, args.seconds, args.rate, args.connections)
        results["api_key_rate"] = oha(url, "POST", call, key_headers, args.seconds, args.rate, args.connections)
        results["jwt_rate"] = oha(url, "POST", call, jwt_headers, args.seconds, args.rate, args.connections)
        results["api_key_rate_again"] = oha(url, "POST", call, key_headers, args.seconds, args.rate, args.connections)
        return results
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(results: dict, args) -> str:
    grants, floor = results["grants_saturation"], results["healthz_saturation"]
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, {args.seconds} s per "
        f"measurement, {args.connections} connections, SQLite.",
        "",
        "| measurement | rps | p50 (ms) | p99 (ms) | non-200 |",
        "|---|---|---|---|---|",
    ]
    for label, key in (("GET /healthz (floor)", "healthz_saturation"), ("client-credentials grant", "grants_saturation")):
        r = results[key]
        lines.append(f"| {label}, saturation | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['other']} |")
    lines.append(f"\nGrants per second: {grants['rps']:.0f} ({grants['rps'] / floor['rps'] * 100:.0f}% of the /healthz floor).\n")
    lines += ["| tools/call at " + str(args.rate) + " calls/s | p50 (ms) | p99 (ms) | added p50 over direct (ms) | non-200 |",
              "|---|---|---|---|---|"]
    direct = results["direct_rate"]
    for label, key in (("direct to the backend", "direct_rate"), ("via Castellan, API key", "api_key_rate"),
                       ("via Castellan, JWT", "jwt_rate"), ("via Castellan, API key (again)", "api_key_rate_again")):
        r = results[key]
        lines.append(f"| {label} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p50_ms'] - direct['p50_ms']:.2f} | {r['other']} |")
    key_p50 = (results["api_key_rate"]["p50_ms"] + results["api_key_rate_again"]["p50_ms"]) / 2
    key_p99 = (results["api_key_rate"]["p99_ms"] + results["api_key_rate_again"]["p99_ms"]) / 2
    lines.append(f"\nJWT / API key: p50 {results['jwt_rate']['p50_ms'] / key_p50:.3f}, p99 {results['jwt_rate']['p99_ms'] / key_p99:.3f} "
                 "(API key = mean of the runs before and after the JWT run).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks-identity-latest.md"))
    args = parser.parse_args()
    run.check_tools()
    results = run.with_backend(lambda backend_url: measure(args, backend_url))
    text = report(results, args)
    run.write_report(args.out, text, results)


if __name__ == "__main__":
    main()
