#!/usr/bin/env python3
"""Start-up, memory and soak measurements of the governed tool call (the figures of the fast-path
issue that bench/run.py does not take).

- startup: `castellan serve` with 10 supervised stdio servers (`castellan demo-server`): the time
  from the process start to the first `/readyz` 200 (polled every 2 ms), and the idle resident set.
- memory: the resident set while the governed call runs at a fixed rate (default 10,000/s).
- soak: the governed call at a fixed rate (default: 70% of the saturation measured first) for
  `--soak-seconds` (default 600), in one-minute windows: each window's p50/p99 and errors, the RSS
  after each; then the audit rows counted against the calls answered, and `castellan audit verify`.

Usage: bench/soak.py [--only startup,memory,soak] [--soak-seconds 600] [--rate R] [--out FILE]
Needs what bench/run.py needs (a release build, oha). Load runs on loopback, bounded in time.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402


def startup(args) -> dict:
    """Readiness time with 10 supervised stdio servers, best and median of `--startup-runs`."""
    times = []
    idle = []
    for _ in range(args.startup_runs):
        workdir = tempfile.mkdtemp(prefix="castellan-startup-")
        port = bench.free_port()
        servers = "".join(f"  s{index}:\n    command: {bench.BINARY}\n    args: [demo-server]\n" for index in range(10))
        profile = os.path.join(workdir, "profile.yaml")
        with open(profile, "w") as handle:
            handle.write(f"server:\n  listen: 127.0.0.1:{port}\ndatabase:\n  url: \"sqlite://{workdir}/castellan.db\"\n"
                         f"mcp_servers:\n{servers}")
        # Migrations run once beforehand, as on every start but the first.
        env = dict(os.environ, CASTELLAN_PROFILE=profile, CASTELLAN_LOG="warn", CASTELLAN_MASTER_KEY="ab" * 32)
        env.pop("CASTELLAN_DATABASE_URL", None)
        subprocess.run([bench.BINARY, "migrate"], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        process = subprocess.Popen([bench.BINARY, "serve"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        ready_after = None
        try:
            while time.perf_counter() - started < 30:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                        if response.status == 200:
                            ready_after = time.perf_counter() - started
                            break
                except Exception:
                    pass
                time.sleep(0.002)
            time.sleep(2)
            idle.append(bench.rss_kib(process.pid))
        finally:
            process.terminate()
            process.wait(timeout=30)
            shutil.rmtree(workdir, ignore_errors=True)
        if ready_after is None:
            raise SystemExit("the daemon did not become ready within 30 s")
        times.append(ready_after * 1000)
    times.sort()
    return {"ready_ms": times, "ready_ms_median": times[len(times) // 2], "idle_rss_kib": sorted(idle)}


def governed(args, backend_url: str, measure) -> dict:
    """Runs `measure(daemon, url, headers, workdir)` against a governed daemon on a fresh SQLite file."""
    workdir = tempfile.mkdtemp(prefix="castellan-soak-")
    daemon = bench.Daemon(backend_url, f"sqlite://{workdir}/castellan.db", workdir, governance=True)
    try:
        headers = daemon.session_headers()
        url = f"{daemon.base}/mcp/customers"
        return measure(daemon, url, headers, workdir)
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def memory(args, backend_url: str) -> dict:
    def measure(daemon, url, headers, _workdir):
        idle = bench.rss_kib(daemon.process.pid)
        load = bench.oha(url, headers, args.memory_seconds, args.memory_rate, args.connections)
        return {"idle_rss_kib": idle, "loaded_rss_kib": bench.rss_kib(daemon.process.pid), "rate": load["rps"],
                "p50_ms": load["p50_ms"], "p99_ms": load["p99_ms"], "non_200": load["other"]}
    return governed(args, backend_url, measure)


def soak(args, backend_url: str) -> dict:
    def measure(daemon, url, headers, workdir):
        warm_up = bench.oha(url, headers, 3, None, args.connections)
        saturation = bench.oha(url, headers, 10, None, args.connections)
        rate = args.rate or int(saturation["rps"] * 0.7)
        # Every call sent: answered, refused, or in flight when a run's time ended (completed anyway).
        made = sum(run["ok"] + run["other"] + run["aborted"] for run in (warm_up, saturation))
        windows = []
        deadline = time.time() + args.soak_seconds
        while time.time() < deadline - 1:
            seconds = int(min(60, deadline - time.time()))
            window = bench.oha(url, headers, seconds, rate, args.connections)
            window["rss_kib"] = bench.rss_kib(daemon.process.pid)
            windows.append(window)
            made += window["ok"] + window["other"] + window["aborted"]
            print(json.dumps(window), file=sys.stderr)
        rows = bench.audit_rows("sqlite", "", workdir)
        verify = subprocess.run([bench.BINARY, "audit", "verify"], env=daemon.env, capture_output=True, text=True)
        return {"saturation_rps": saturation["rps"], "rate": rate, "windows": windows, "calls_made": made,
                "errors": sum(window["errors"] + window["other"] for window in windows),
                "audit_rows": rows, "verify_ok": verify.returncode == 0, "verify": verify.stdout.strip()[-300:]}
    return governed(args, backend_url, measure)


def report(results: dict, args) -> str:
    lines = [f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, {args.connections} connections.", ""]
    if "startup" in results:
        s = results["startup"]
        lines.append(f"- Ready with 10 stdio servers: median {s['ready_ms_median']:.0f} ms "
                     f"(runs: {', '.join(f'{t:.0f}' for t in s['ready_ms'])} ms); idle RSS "
                     f"{', '.join(f'{k / 1024:.1f}' for k in s['idle_rss_kib'])} MiB")
    if "memory" in results:
        m = results["memory"]
        lines.append(f"- RSS idle {m['idle_rss_kib'] / 1024:.1f} MiB, after {args.memory_seconds} s at "
                     f"{m['rate']:.0f} calls/s {m['loaded_rss_kib'] / 1024:.1f} MiB (p50 {m['p50_ms']:.2f} ms, "
                     f"p99 {m['p99_ms']:.2f} ms, non-200 {m['non_200']})")
    if "soak" in results:
        s = results["soak"]
        w = s["windows"]
        lines += ["", f"Soak at {s['rate']} calls/s (saturation {s['saturation_rps']:.0f}/s), {len(w)} windows:", "",
                  "| window | calls/s | p50 (ms) | p99 (ms) | non-200 | RSS (MiB) |", "|---|---|---|---|---|---|"]
        for index, window in enumerate(w):
            lines.append(f"| {index + 1} | {window['rps']:.0f} | {window['p50_ms']:.2f} | {window['p99_ms']:.2f} | "
                         f"{window['other']} | {window['rss_kib'] / 1024:.1f} |")
        growth = (w[-1]["rss_kib"] - w[0]["rss_kib"]) / w[0]["rss_kib"] * 100 if w else 0
        lines += ["", f"RSS growth first to last window: {growth:+.1f}%; audit rows {s['audit_rows']} for "
                  f"{s['calls_made']} calls made (answered, plus those in flight when each run's time ended); "
                  f"errors {s['errors']}; `audit verify`: {'passed' if s['verify_ok'] else 'FAILED'}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="startup,memory,soak")
    parser.add_argument("--soak-seconds", type=int, default=600)
    parser.add_argument("--rate", type=int, default=0, help="soak rate (default: 70%% of saturation)")
    parser.add_argument("--memory-rate", type=int, default=10000)
    parser.add_argument("--memory-seconds", type=int, default=20)
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", default=os.path.join(bench.ROOT, "docs", "benchmarks-soak-latest.md"))
    args = parser.parse_args()
    bench.check_tools()
    parts = args.only.split(",")
    results = {}
    if "startup" in parts:
        results["startup"] = startup(args)
    if "memory" in parts:
        results["memory"] = bench.with_backend(lambda url: memory(args, url))
    if "soak" in parts:
        results["soak"] = bench.with_backend(lambda url: soak(args, url))
    bench.write_report(args.out, report(results, args), results)


if __name__ == "__main__":
    main()
