#!/usr/bin/env bash
# benches/idle.sh: user-space memory (VmRSS) per idle client connection, rginx vs nginx.
#
# For each server (started fresh, one worker, same nginx.conf text, `return 200`,
# `worker_connections 20000`), a python3 client (standard library only) pinned to CPU 1
# opens N connections to the server (pinned to CPU 0) and:
#   1. waits until the server holds all N sockets, reads VmRSS: "connected, nothing sent";
#   2. sends one keepalive request on every connection, checks every response, reads
#      VmRSS again: "idle keepalive after one request";
#   3. checks that the server still holds all N connections (none closed by the server),
#      then closes them.
# KiB/conn = (VmRSS after - VmRSS fresh) / N. Kernel socket memory is not in VmRSS and is
# the same for both servers.
#
# Usage: benches/idle.sh [-n CONNS] [-r ROUNDS] [-s rginx,nginx] [-b RGINX_BIN]
# Env:   NGINX_BIN (default /usr/sbin/nginx), PYTHON_BIN (default python3),
#        SERVER_CPU (0), CLIENT_CPU (1).
# Everything runs on 127.0.0.1; every process this script starts is stopped on exit
# (trap EXIT, by pid). Needs `ulimit -Hn` >= N + 100 (the soft limit is raised to it).
set -euo pipefail

CONNS=10000
ROUNDS=1
SERVERS=rginx,nginx
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RGINX_BIN=$ROOT/target/release/rginx
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
PYTHON_BIN=${PYTHON_BIN:-python3}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

while getopts "n:r:s:b:h" o; do
    case $o in
        n) CONNS=$OPTARG ;;
        r) ROUNDS=$OPTARG ;;
        s) SERVERS=$OPTARG ;;
        b) RGINX_BIN=$OPTARG ;;
        *) sed -n '2,20p' "$0"; exit 2 ;;
    esac
done

[[ -x $RGINX_BIN ]] || { echo "no $RGINX_BIN: run 'cargo build --release' first" >&2; exit 1; }
[[ -x $NGINX_BIN ]] || { echo "no $NGINX_BIN: apt-get install -y nginx-light" >&2; exit 1; }

# Which code the numbers are from: the commit, "+ uncommitted changes" if src/ differs.
source "$HERE/lib.sh"
warn_if_stale
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $((CONNS + 100)) ]]; then
    echo "ulimit -Hn is $hard: too low for $CONNS connections (need $((CONNS + 100)))" >&2
    exit 1
fi
ulimit -Sn "$hard"

WORK=$(mktemp -d /tmp/rginx-idle.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


BODY="idle connection test body"

# write_conf NAME PORT: the same nginx.conf text for both servers (paths and port differ).
write_conf() {
    local d=$WORK/$1
    mkdir -p "$d/logs"
    cat > "$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
error_log $d/logs/error.log;
pid $d/logs/server.pid;

events {
    worker_connections 20000;
}

http {
    access_log off;
    keepalive_timeout 300s;
    client_header_timeout 300s;

    server {
        listen 127.0.0.1:$2;
        location / {
            return 200 "$BODY";
        }
    }
}
EOF
}

# start NAME PORT -> sets SERVER_PID
start() {
    local name=$1 port=$2 d=$WORK/$1 bin
    write_conf "$name" "$port"
    case $name in
        rginx) bin=$RGINX_BIN ;;
        nginx) bin=$NGINX_BIN ;;
    esac
    taskset -c "$SERVER_CPU" "$bin" -p "$d/" -e "$d/logs/error.log" -c "$d/nginx.conf" \
        > "$d/logs/stdout.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    local i
    for i in $(seq 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "$name did not start on port $port; log tail:" >&2
    tail -20 "$d/logs/error.log" "$d/logs/stdout.log" >&2 || true
    exit 1
}

stop() {
    kill -TERM "$1" 2>/dev/null || true
    local i
    for i in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}

CLIENT=$WORK/idle_client.py
cat > "$CLIENT" <<'PYEOF'
import json, os, socket, sys, time

pid, port, n, body = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()

def status(key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    raise SystemExit(f"{key} not found")

def nfds():
    return len(os.listdir(f"/proc/{pid}/fd"))

def wait_fds(target, deadline_s=30):
    end = time.time() + deadline_s
    while nfds() < target and time.time() < end:
        time.sleep(0.05)
    return nfds()

res = {}
time.sleep(0.5)
res["rss_fresh"] = status("VmRSS")
base_fds = nfds()
socks = []
t0 = time.time()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    socks.append(s)
got = wait_fds(base_fds + n)
time.sleep(1.0)
res["connect_s"] = round(time.time() - t0, 2)
res["server_fds_connected"] = got - base_fds
res["rss_connected"] = status("VmRSS")

req = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: idle.sh\r\n\r\n"
bad = 0
first_bad = None
t1 = time.time()
for lo in range(0, n, 50):
    batch = socks[lo:lo + 50]
    for s in batch:
        s.sendall(req)
    for s in batch:
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
                head, sep, rest = data.partition(b"\r\n\r\n")
                if sep and len(rest) >= len(body):
                    break
        except OSError as e:
            data += repr(e).encode()
        head, _, rest = data.partition(b"\r\n\r\n")
        ok = head.startswith(b"HTTP/1.1 200") and rest == body and b"keep-alive" in head.lower()
        if not ok:
            bad += 1
            first_bad = first_bad or data[:200].decode("latin1")
time.sleep(1.0)
res["request_s"] = round(time.time() - t1, 2)
res["rss_idle_ka"] = status("VmRSS")
res["hwm"] = status("VmHWM")
res["bad_responses"] = bad
res["first_bad"] = first_bad
# Did the server close any of them on its own? (a readable socket with EOF)
import select
closed = 0
poller = select.poll()
byfd = {}
for s in socks:
    poller.register(s, select.POLLIN)
    byfd[s.fileno()] = s
for fd, ev in poller.poll(0):
    try:
        s = byfd[fd]
        s.setblocking(False)
        if s.recv(1, socket.MSG_PEEK) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
res["closed_by_server"] = closed
res["server_fds_idle"] = nfds() - base_fds
for s in socks:
    s.close()
res["n"] = n
print(json.dumps(res))
PYEOF

RESULTS=$WORK/results.jsonl
IFS=, read -r -a LIST <<< "$SERVERS"
echo "# idle connections: $CONNS per server, server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU"
echo "# rginx: $RGINX_BIN ($(code_rev)); nginx: $("$NGINX_BIN" -v 2>&1 | sed 's/.*: //')"
for round in $(seq "$ROUNDS"); do
    for name in "${LIST[@]}"; do
        port=$(free_port)
        start "$name" "$port"
        json=$(taskset -c "$CLIENT_CPU" "$PYTHON_BIN" "$CLIENT" "$SERVER_PID" "$port" "$CONNS" "$BODY")
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "$name died during the test" >&2; tail -20 "$WORK/$name/logs/error.log" >&2; exit 1; }
        stop "$SERVER_PID"
        echo "{\"server\": \"$name\", \"round\": $round, \"r\": $json}" >> "$RESULTS"
        echo "round $round $name: $json" >&2
    done
done

"$PYTHON_BIN" - "$RESULTS" <<'PYEOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
servers = []
for r in rows:
    if r["server"] not in servers:
        servers.append(r["server"])
def med(name, f):
    return statistics.median(f(r["r"]) for r in rows if r["server"] == name)
print()
print("| server | RSS fresh | RSS connected | RSS idle keepalive | KiB/conn connected, nothing sent | KiB/conn idle keepalive after 1 request | peak RSS | bad responses | closed by server |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
kib = {}
for s in servers:
    n = med(s, lambda r: r["n"])
    fresh = med(s, lambda r: r["rss_fresh"])
    conn = med(s, lambda r: r["rss_connected"])
    ka = med(s, lambda r: r["rss_idle_ka"])
    c1 = med(s, lambda r: (r["rss_connected"] - r["rss_fresh"]) / r["n"])
    c2 = med(s, lambda r: (r["rss_idle_ka"] - r["rss_fresh"]) / r["n"])
    hwm = med(s, lambda r: r["hwm"])
    bad = sum(r["r"]["bad_responses"] for r in rows if r["server"] == s)
    closed = sum(r["r"]["closed_by_server"] for r in rows if r["server"] == s)
    kib[s] = (c1, c2)
    print(f"| {s} | {fresh:,} KiB | {conn:,} KiB | {ka:,} KiB | {c1:.2f} | {c2:.2f} | {hwm:,} KiB | {bad} | {closed} |")
if "rginx" in kib and "nginx" in kib:
    a, b = kib["rginx"], kib["nginx"]
    r1 = f"{a[0]/b[0]:.2f}" if b[0] > 0 else "n/a"
    r2 = f"{a[1]/b[1]:.2f}" if b[1] > 0 else "n/a"
    print(f"\nrginx/nginx KiB/conn: connected {r1}, idle keepalive {r2}")
bad = sum(r["r"]["bad_responses"] + r["r"]["closed_by_server"] for r in rows)
for r in rows:
    if r["r"].get("first_bad"):
        print(f"first bad response from {r['server']}: {r['r']['first_bad']!r}")
sys.exit(1 if bad else 0)
PYEOF
