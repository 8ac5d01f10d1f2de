#!/usr/bin/env bash
# benches/return200.sh: wrk against `location / { return 200 "<100 bytes>"; }`, rginx vs
# nginx, one worker each, the same nginx.conf text, pinned as ../shared/bench/proxy-bench
# pins: the server under test on CPU 0, wrk on CPU 1. Both servers run for the whole
# session (an idle epoll loop costs nothing) and take turns under load, in interleaved
# rounds whose order alternates (rginx nginx, nginx rginx, ...).
#
# Per run: req/s, p50/p99 (wrk --latency), socket errors and non-2xx responses (must be 0),
# and CPU µs/request = (utime+stime delta of the server from /proc/PID/stat) / requests,
# and "foreign CPU" = busy time of the machine - server - wrk (other work disturbing the run).
# Report: medians over rounds and the rginx/nginx ratio, with the min-max of the paired
# per-round ratios in brackets.
#
# Usage: benches/return200.sh [-r ROUNDS] [-d SECONDS] [-c CONNS] [-b RGINX_BIN] [-q QUIET_S]
#   -q S: before each run, wait up to S seconds until both CPUs are < 10% busy (shared machine).
# Env:   NGINX_BIN (/usr/sbin/nginx), WRK_BIN (wrk), SERVER_CPU (0), LOAD_CPU (1).
# Exit status 1 if any run had a socket error or a non-2xx response.
set -euo pipefail

ROUNDS=5
DURATION=8
CONNS=50
WARMUP=2
QUIET=0
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RGINX_BIN=$ROOT/target/release/rginx
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
WRK_BIN=${WRK_BIN:-wrk}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

while getopts "r:d:c:b:q:h" o; do
    case $o in
        r) ROUNDS=$OPTARG ;;
        d) DURATION=$OPTARG ;;
        c) CONNS=$OPTARG ;;
        b) RGINX_BIN=$OPTARG ;;
        q) QUIET=$OPTARG ;;
        *) sed -n '2,17p' "$0"; exit 2 ;;
    esac
done

[[ -x $RGINX_BIN ]] || { echo "no $RGINX_BIN: run 'cargo build --release' first" >&2; exit 1; }
[[ -x $NGINX_BIN ]] || { echo "no $NGINX_BIN: apt-get install -y nginx-light" >&2; exit 1; }
command -v "$WRK_BIN" > /dev/null || { echo "no wrk: apt-get install -y wrk" >&2; exit 1; }

# Which code the numbers are from: the commit, "+ uncommitted changes" if src/ differs.
code_rev() {
    (cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null | tr -d '\n' || printf '?'
     if [[ -n $(cd "$ROOT" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
         printf ' with uncommitted changes'
     fi)
}
if [[ -n $(find "$ROOT/src" -name '*.rs' -newer "$RGINX_BIN" 2>/dev/null | head -1) ]]; then
    echo "warning: $RGINX_BIN is older than src/: run 'cargo build --release' first" >&2
fi
WORK=$(mktemp -d /tmp/rginx-r200.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    # whatever did not stop on TERM (rginx before 941a91c ignored signals) is killed.
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The body: exactly 100 bytes (99 x's and a newline), like proxy-bench's /small.
X99=$(printf 'x%.0s' $(seq 99))

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
    worker_connections 16384;
}

http {
    access_log off;

    server {
        listen 127.0.0.1:$2;
        location / {
            return 200 "$X99\n";
        }
    }
}
EOF
}

declare -A PID PORT
start() {
    local name=$1 port d=$WORK/$1 bin
    port=$(free_port)
    write_conf "$name" "$port"
    case $name in
        rginx) bin=$RGINX_BIN ;;
        nginx) bin=$NGINX_BIN ;;
    esac
    taskset -c "$SERVER_CPU" "$bin" -p "$d/" -e "$d/logs/error.log" -c "$d/nginx.conf" \
        > "$d/logs/stdout.log" 2>&1 &
    PID[$name]=$!
    PORT[$name]=$port
    PIDS+=("$!")
    local i
    for i in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
        kill -0 "${PID[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    if ! curl -s "http://127.0.0.1:$port/" | cmp -s - <(printf '%s\n' "$X99"); then
        echo "$name: not started on $port, or the body is not the 100 expected bytes" >&2
        tail -20 "$d/logs/error.log" >&2 || true
        exit 1
    fi
}

busy_ticks() { # busy clock ticks of all CPUs in process context (user+nice+system; softirq and steal
    # are left out: they are not charged to any process, so they would look foreign)
    awk '/^cpu / { print $2 + $3 + $4; exit }' /proc/stat
}

cpu_ticks() { # utime + stime of the whole process (all threads), in clock ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

TSV=$WORK/runs.tsv
: > "$TSV"
quiet_wait() { # wait up to $QUIET s for both CPUs < 10% busy over 1 s; prints the busy% seen
    (( QUIET > 0 )) || return 0
    python3 - "$QUIET" <<'PYEOF' >&2
import sys, time
def snap():
    with open("/proc/stat") as f:
        rows = [l.split() for l in f if l.startswith("cpu") and l[3] != " "]
    return [(sum(map(int, r[1:])), int(r[4]) + int(r[5])) for r in rows]
end = time.time() + float(sys.argv[1])
while True:
    a = snap(); time.sleep(1); b = snap()
    busy = [100 * (1 - (bi[1] - ai[1]) / max(1, bi[0] - ai[0])) for ai, bi in zip(a, b)]
    if max(busy) < 10 or time.time() > end:
        print(f"quiet-wait: CPU busy {', '.join(f'{x:.0f}%' for x in busy)}")
        break
PYEOF
}

run() { # run ROUND NAME
    local round=$1 name=$2 pid=${PID[$2]} port=${PORT[$2]} out t0 t1
    quiet_wait
    taskset -c "$LOAD_CPU" "$WRK_BIN" -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/" > /dev/null
    local busy0 busy1 wrk_cpu
    t0=$(cpu_ticks "$pid")
    busy0=$(busy_ticks)
    # wrk runs as a child of python, which reports wrk's own CPU time (RUSAGE_CHILDREN):
    # busy time of the machine - server - wrk = foreign CPU (other work on the machine).
    out=$(python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write(r.stdout + "\nWRKCPU %.3f\n" % (u.ru_utime + u.ru_stime))
' taskset -c "$LOAD_CPU" "$WRK_BIN" -t1 -c"$CONNS" -d"${DURATION}s" --latency --timeout 5s "http://127.0.0.1:$port/")
    busy1=$(busy_ticks)
    t1=$(cpu_ticks "$pid")
    kill -0 "$pid" 2>/dev/null || { echo "$name died during the run" >&2; tail -20 "$WORK/$name/logs/error.log" >&2; exit 1; }
    printf '%s' "$out" > "$WORK/wrk-$round-$name.txt"
    python3 - "$round" "$name" "$((t1 - t0))" "$(getconf CLK_TCK)" "$WORK/wrk-$round-$name.txt" "$((busy1 - busy0))" "$DURATION" >> "$TSV" <<'PYEOF'
import re, sys
rnd, name, ticks, hz, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
busy, dur = int(sys.argv[6]), float(sys.argv[7])
t = open(path).read()
wrk_cpu = float(re.search(r"WRKCPU ([\d.]+)", t).group(1))
foreign = max(0.0, (busy - ticks) / hz - wrk_cpu) / dur * 100
def unit(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]
reqs = int(re.search(r"(\d+) requests in", t).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", t)
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
errs = sum(int(x) for x in se.groups()) if se else 0
n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
non2xx = int(n2.group(1)) if n2 else 0
us_per_req = ticks / hz * 1e6 / reqs if reqs else float("nan")
print(f"{rnd}\t{name}\t{rps:.0f}\t{unit(*p50.groups()):.3f}\t{unit(*p99.groups()):.3f}\t{errs}\t{non2xx}\t{us_per_req:.2f}\t{reqs}\t{foreign:.0f}\t{ticks / hz / dur * 100:.0f}")
PYEOF
    tail -1 "$TSV" | awk -F'\t' '{ printf "round %s %-5s %8s req/s  p50 %s ms  p99 %s ms  errors %s  non-2xx %s  %s us/req  server CPU %s%%  foreign CPU %s%%\n", $1, $2, $3, $4, $5, $6, $7, $8, $11, $10 }' >&2
    sleep 1
}

start rginx
start nginx
echo "# return 200 (100-byte body): wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds; server on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU" >&2
for round in $(seq "$ROUNDS"); do
    if (( round % 2 )); then order="rginx nginx"; else order="nginx rginx"; fi
    for name in $order; do run "$round" "$name"; done
done

python3 - "$TSV" "$(code_rev)" "$CONNS" "$DURATION" "$ROUNDS" <<'PYEOF'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
commit, conns, dur, rounds = sys.argv[2:6]
by = {}
for r in rows:
    by.setdefault(r[1], {})[int(r[0])] = dict(rps=float(r[2]), p50=float(r[3]), p99=float(r[4]), errs=int(r[5]), non2xx=int(r[6]), us=float(r[7]), reqs=int(r[8]), foreign=float(r[9]), cpu=float(r[10]))
def med(n, k):
    return st.median(v[k] for v in by[n].values())
print(f"\n### return 200, wrk -t1 -c{conns} -d{dur}s, {rounds} interleaved rounds (rginx {commit})\n")
print("| server | req/s per round | median req/s | p50 (med) | p99 (med) | CPU µs/req (med) | server CPU% (med) | foreign CPU% per round | socket errors | non-2xx |")
print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|")
for n in ("nginx", "rginx"):
    per = ", ".join(f"{by[n][k]['rps']:,.0f}" for k in sorted(by[n]))
    errs = sum(v["errs"] for v in by[n].values())
    non = sum(v["non2xx"] for v in by[n].values())
    fr = ", ".join(f"{by[n][k]['foreign']:.0f}" for k in sorted(by[n]))
    print(f"| {n} | {per} | {med(n,'rps'):,.0f} | {med(n,'p50'):.2f} ms | {med(n,'p99'):.2f} ms | {med(n,'us'):.2f} | {med(n,'cpu'):.0f} | {fr} | {errs} | {non} |")
pr = [by["rginx"][k]["rps"] / by["nginx"][k]["rps"] for k in sorted(by["rginx"])]
pu = [by["rginx"][k]["us"] / by["nginx"][k]["us"] for k in sorted(by["rginx"])]
print(f"\nrginx/nginx req/s: {med('rginx','rps')/med('nginx','rps'):.2f} (paired {min(pr):.2f}–{max(pr):.2f}); "
      f"CPU µs/req: {med('rginx','us')/med('nginx','us'):.2f} (paired {min(pu):.2f}–{max(pu):.2f})")
noisy = sum(1 for n in by for v in by[n].values() if v["foreign"] > 5)
if noisy:
    print(f"⚠ {noisy} runs saw > 5% foreign CPU (other work on the machine): their req/s is suspect; CPU µs/req is less affected.")
bad = sum(v["errs"] + v["non2xx"] for n in by for v in by[n].values())
print("zero-error check: " + ("PASS (no socket errors, no non-2xx)" if bad == 0 else f"FAIL ({bad} errors/non-2xx)"))
sys.exit(1 if bad else 0)
PYEOF
