#!/usr/bin/env bash
# Starts the local PostgreSQL cluster if it is not accepting connections (CI machines start it, but
# a stopped one must not fail the run). A busy machine can be slow to answer, so readiness is polled.
set -euo pipefail
ready() { pg_isready -q -t 10 -h 127.0.0.1 -p 5432; }
if ready; then
  exit 0
fi
echo "PostgreSQL is not answering; starting it if it is stopped"
pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
for _ in $(seq 1 60); do
  ready && exit 0
  sleep 1
done
echo "PostgreSQL did not become ready" >&2
exit 1
