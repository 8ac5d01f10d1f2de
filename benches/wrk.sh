#!/usr/bin/env bash
# benches/wrk.sh: side-by-side wrk runs of several server "variants" on the same nginx.conf
# text, in interleaved rounds (the order rotates each round), all variants running for the
# whole session (an idle epoll loop costs nothing) and taking turns under load.
#
# Modes (-m):
#   return200  `location / { return 200 "<100 bytes>"; }`, no upstream
#   proxy      small keep-alive proxy, as ../shared/bench/proxy-bench's small-ka: `/`
#              through `upstream b { server ...; keepalive 64; }`, `proxy_http_version 1.1;
#              proxy_set_header Connection "";` to a backend nginx (100-byte `return 200`)
# Variants (-s, comma list): SERVER[@WORKERS][+log], SERVER one of rginx nginx haproxy.
#   @N    worker_processes N (haproxy: nbthread N); N > 1 also sets `master_process on`
#         (nginx ignores worker_processes without a master); needs -u to mean anything.
#   +log  `access_log FILE;` (nginx's default combined format) at http level instead of
#         `access_log off;`; after every run the lines the server logged are counted and
#         must cover the requests wrk counted (haproxy has no file log: not allowed).
# Pinning: by default every server on CPU $SERVER_CPU (0), wrk and the backend on
#   $LOAD_CPU (1), as proxy-bench pins. -u: nothing pinned (both CPUs for everyone; use
#   with -t 2 for worker scaling), the backend then runs BACKEND_WORKERS (2) workers.
#
# Per run: req/s, p50/p99, socket errors and non-2xx (must be 0), CPU µs/request = CPU time
# of the server's process group (utime+stime of master and workers, /proc) / requests, and
# "foreign CPU" = busy time of the machine - server - wrk - backend (other work).
# Report (markdown on stdout, progress on stderr): medians over rounds; each variant's ratio
# to the nginx variant with the same workers and logging (paired per-round min-max in
# brackets); the 2/1 worker ratio per server; the cost of the access log per request.
#
# Usage: benches/wrk.sh [-m return200|proxy] [-s VARIANTS] [-r ROUNDS] [-d SECONDS]
#          [-c CONNS] [-t WRK_THREADS] [-u] [-q QUIET_S] [-b RGINX_BIN] [-o RUNS.tsv]
#   defaults: -m return200 -s rginx,nginx,haproxy -r 5 -d 8 -c 50 -t 1
#   -q S: before each run wait up to S s until both CPUs are < 10% busy (shared machine).
#   -o FILE: also write one TSV row per run there (benches/all.sh reads it).
# Env: NGINX_BIN HAPROXY_BIN WRK_BIN, SERVER_CPU LOAD_CPU, BACKEND_WORKERS, WARMUP (2 s).
# Everything on 127.0.0.1; every process started here is stopped on exit (trap EXIT, by
# pid and its own process group). Exit status 1 if a run had a socket error, a non-2xx
# response, too few access log lines, or a server died.
set -euo pipefail

MODE=return200
VARIANTS=rginx,nginx,haproxy
ROUNDS=5
DURATION=8
CONNS=50
THREADS=1
PIN=1
QUIET=0
TSV_OUT=
WARMUP=${WARMUP:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RGINX_BIN=$ROOT/target/release/rginx
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
HAPROXY_BIN=${HAPROXY_BIN:-/usr/sbin/haproxy}
WRK_BIN=${WRK_BIN:-wrk}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

while getopts "m:s:r:d:c:t:uq:b:o:h" o; do
    case $o in
        m) MODE=$OPTARG ;;
        s) VARIANTS=$OPTARG ;;
        r) ROUNDS=$OPTARG ;;
        d) DURATION=$OPTARG ;;
        c) CONNS=$OPTARG ;;
        t) THREADS=$OPTARG ;;
        u) PIN=0 ;;
        q) QUIET=$OPTARG ;;
        b) RGINX_BIN=$OPTARG ;;
        o) TSV_OUT=$OPTARG ;;
        *) sed -n '2,36p' "$0"; exit 2 ;;
    esac
done
BACKEND_WORKERS=${BACKEND_WORKERS:-$((PIN ? 1 : 2))}
case $MODE in return200|proxy) ;; *) echo "-m: return200 or proxy, not '$MODE'" >&2; exit 2 ;; esac

IFS=, read -r -a VLIST <<< "$VARIANTS"
declare -A SRV WORKERS LOG
need_haproxy=0
for v in "${VLIST[@]}"; do
    [[ $v =~ ^(rginx|nginx|haproxy)(@([0-9]+))?(\+log)?$ ]] || { echo "bad variant '$v' (SERVER[@N][+log])" >&2; exit 2; }
    SRV[$v]=${BASH_REMATCH[1]}
    WORKERS[$v]=${BASH_REMATCH[3]:-1}
    LOG[$v]=$([[ -n ${BASH_REMATCH[4]} ]] && echo 1 || echo 0)
    [[ ${SRV[$v]} == haproxy && ${LOG[$v]} == 1 ]] && { echo "$v: haproxy has no file access log" >&2; exit 2; }
    [[ ${SRV[$v]} == haproxy ]] && need_haproxy=1
    if (( PIN && WORKERS[$v] > 1 )); then
        echo "warning: $v has ${WORKERS[$v]} workers pinned to one CPU (add -u)" >&2
    fi
done

[[ -x $RGINX_BIN ]] || { echo "no $RGINX_BIN: run 'cargo build --release' first" >&2; exit 1; }
[[ -x $NGINX_BIN ]] || { echo "no $NGINX_BIN: apt-get install -y nginx-light" >&2; exit 1; }
(( need_haproxy == 0 )) || [[ -x $HAPROXY_BIN ]] || { echo "no $HAPROXY_BIN: apt-get install -y haproxy" >&2; exit 1; }
command -v "$WRK_BIN" > /dev/null || { echo "no wrk: apt-get install -y wrk" >&2; exit 1; }

# Which code the numbers are from: the commit, "+ uncommitted changes" if src/ differs.
source "$HERE/lib.sh"
warn_if_stale

WORK=$(mktemp -d /tmp/rginx-wrk.XXXXXX)
PIDS=()
cleanup() {
    local p i
    # each server is its own process group (setsid): TERM the group, so an nginx master's
    # workers go too; KILL what is left after 3 s.
    for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
    for i in $(seq 30); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 -- "-$p" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HELPER=$WORK/helper.py
cat > "$HELPER" <<'PYEOF'
import os, re, sys, socket

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])

def ticks(pgids):
    """utime+stime (clock ticks) of every process in these process groups (all threads)."""
    want = set(int(x) for x in pgids)
    t = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fl = s[s.rindex(")") + 2:].split()
        if int(fl[2]) in want:
            t += int(fl[11]) + int(fl[12])
    print(t)

def busy():
    """busy clock ticks of all CPUs in process context (user+nice+system)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    print(int(v[1]) + int(v[2]) + int(v[3]))

def row(rnd, var, ticks_, hz, path, busy_, other, dur, logged):
    t = open(path).read()
    ticks_, hz, busy_, other, dur = int(ticks_), int(hz), int(busy_), int(other), float(dur)
    wrk_cpu = float(re.search(r"WRKCPU ([\d.]+)", t).group(1))
    foreign = max(0.0, (busy_ - ticks_ - other) / hz - wrk_cpu) / dur * 100
    def unit(v, u):
        return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]
    m = re.search(r"(\d+) requests in", t)
    reqs = int(m.group(1)) if m else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)) if reqs else 0.0
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", t)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    errs = sum(int(x) for x in se.groups()) if se else 0
    n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    non2xx = int(n2.group(1)) if n2 else 0
    us = ticks_ / hz * 1e6 / reqs if reqs else float("nan")
    p50v = unit(*p50.groups()) if p50 else float("nan")
    p99v = unit(*p99.groups()) if p99 else float("nan")
    print(f"{rnd}\t{var}\t{rps:.0f}\t{p50v:.3f}\t{p99v:.3f}\t{errs}\t{non2xx}\t{us:.2f}\t{reqs}"
          f"\t{foreign:.0f}\t{ticks_ / hz / dur * 100:.0f}\t{logged}")

def med(xs):
    xs = sorted(xs); n = len(xs)
    return (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2) if n else float("nan")

def parse_variant(v):
    m = re.fullmatch(r"(\w+)(?:@(\d+))?(\+log)?", v)
    return m.group(1), int(m.group(2) or 1), bool(m.group(3))

def variant(srv, w, log):
    return srv + (f"@{w}" if w != 1 else "") + ("+log" if log else "")

def report(path, mode, commit, conns, threads, dur, rounds, pin, logcmp):
    rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
    by = {}
    order = []
    for r in rows:
        if r[1] not in by:
            order.append(r[1])
        by.setdefault(r[1], {})[int(r[0])] = dict(
            rps=float(r[2]), p50=float(r[3]), p99=float(r[4]), errs=int(r[5]), non2xx=int(r[6]),
            us=float(r[7]), reqs=int(r[8]), foreign=float(r[9]), cpu=float(r[10]),
            logged=int(r[11]) if r[11] != "-" else None)
    def m(v, k):
        return med([x[k] for x in by[v].values()])
    def paired(a, b, k):
        ks = sorted(set(by[a]) & set(by[b]))
        pr = [by[a][i][k] / by[b][i][k] for i in ks if by[b][i][k]]
        rng = f" ({min(pr):.2f}–{max(pr):.2f})" if len(pr) >= 2 else ""
        return f"{m(a, k) / m(b, k):.2f}{rng}"
    what = {"return200": "`return 200` (100-byte body, no upstream)",
            "proxy": "small keep-alive proxy (100-byte body, `keepalive 64`)"}[mode]
    pinning = "server on CPU 0, wrk (and backend) on CPU 1" if pin == "1" else "nothing pinned (both CPUs for all)"
    print(f"\n### {what}: wrk -t{threads} -c{conns} -d{dur}s, {rounds} interleaved rounds, {pinning} (rginx {commit})\n")
    print("| variant | req/s per round | median req/s | p50 (med) | p99 (med) | CPU µs/req (med) | server CPU% (med) | foreign CPU% per round | socket errors | non-2xx |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for v in order:
        per = ", ".join(f"{by[v][k]['rps']:,.0f}" for k in sorted(by[v]))
        fr = ", ".join(f"{by[v][k]['foreign']:.0f}" for k in sorted(by[v]))
        errs = sum(x["errs"] for x in by[v].values()); non = sum(x["non2xx"] for x in by[v].values())
        print(f"| {v} | {per} | {m(v,'rps'):,.0f} | {m(v,'p50'):.2f} ms | {m(v,'p99'):.2f} ms | "
              f"{m(v,'us'):.2f} | {m(v,'cpu'):.0f} | {fr} | {errs} | {non} |")
    print()
    # ratios to nginx with the same workers and logging
    lines = []
    for v in order:
        s, w, lg = parse_variant(v)
        ref = variant("nginx", w, lg)
        if s != "nginx" and ref in by:
            lines.append(f"| {v} / {ref} | {paired(v, ref, 'rps')} | {paired(v, ref, 'us')} |")
    if lines:
        print("| ratio | req/s (paired min–max) | CPU µs/req (paired min–max) |")
        print("|---|---:|---:|")
        print("\n".join(lines))
        print()
    # worker scaling: N workers against 1, per server
    lines = []
    for v in order:
        s, w, lg = parse_variant(v)
        one = variant(s, 1, lg)
        if w > 1 and one in by:
            lines.append(f"| {s}{' +log' if lg else ''} | {w}/1 | {m(one,'rps'):,.0f} | {m(v,'rps'):,.0f} | "
                         f"**{paired(v, one, 'rps')}** | {m(one,'us'):.2f} → {m(v,'us'):.2f} | {m(one,'cpu'):.0f} → {m(v,'cpu'):.0f} |")
    if lines:
        print("| server | workers | req/s, 1 worker | req/s, N workers | N/1 req/s (paired) | CPU µs/req 1 → N | server CPU% 1 → N |")
        print("|---|---|---:|---:|---:|---:|---:|")
        print("\n".join(lines))
        print()
    # access log cost: +log against the same variant without it
    lines = []
    cost = {}
    for v in order:
        s, w, lg = parse_variant(v)
        plain = variant(s, w, False)
        if lg and plain in by:
            d = m(v, "us") - m(plain, "us")
            cost[(s, w)] = (d, m(v, "us"))
            lg_lines = sum(x["logged"] or 0 for x in by[v].values())
            lg_reqs = sum(x["reqs"] for x in by[v].values())
            lines.append(f"| {s}{'@%d' % w if w != 1 else ''} | {m(plain,'us'):.2f} | {m(v,'us'):.2f} | {d:+.2f} | "
                         f"{paired(v, plain, 'rps')} | {lg_lines:,} / {lg_reqs:,} |")
    if lines:
        print("| server | CPU µs/req, access_log off | CPU µs/req, access_log on | log cost µs/req | req/s log/no-log (paired) | lines logged / requests counted by wrk |")
        print("|---|---:|---:|---:|---:|---:|")
        print("\n".join(lines))
        for w in sorted({w for (_, w) in cost}):
            if ("rginx", w) in cost and ("nginx", w) in cost:
                (dr, tr), (dn, tn) = cost[("rginx", w)], cost[("nginx", w)]
                print(f"\nWith access_log on, rginx/nginx CPU µs/req: {tr / tn:.2f}; the log's own cost per request: "
                      f"rginx {dr:+.2f} µs, nginx {dn:+.2f} µs (noisy: a difference of two medians).")
        if logcmp:
            print(f"\n{logcmp}")
        print()
    noisy = sum(1 for v in by for x in by[v].values() if x["foreign"] > 5)
    if noisy:
        print(f"⚠ {noisy} runs saw > 5% foreign CPU (other work on the machine): their req/s is suspect; CPU µs/req is less affected.\n")
    bad = sum(x["errs"] + x["non2xx"] for v in by for x in by[v].values())
    short = [f"{v} r{k}" for v in by for k, x in by[v].items() if x["logged"] is not None and x["logged"] < x["reqs"]]
    ok = bad == 0 and not short
    msg = "PASS (no socket errors, no non-2xx" + (", every request logged)" if any(parse_variant(v)[2] for v in by) else ")")
    if not ok:
        msg = f"FAIL ({bad} errors/non-2xx" + (f"; fewer log lines than requests: {', '.join(short)}" if short else "") + ")"
    print("zero-error check: " + msg)
    sys.exit(0 if ok else 1)

def logcmp(a_name, a_path, b_name, b_path):
    """The last line of two access logs, with the [time] field masked."""
    def last(p):
        with open(p, "rb") as f:
            ls = f.read().splitlines()
        return re.sub(rb"\[[^]]*\]", b"[TIME]", ls[-1]).decode("latin1") if ls else "(empty)"
    a, b = last(a_path), last(b_path)
    if a == b:
        print(f"access log lines: {a_name} and {b_name} wrote the same line (time masked): `{a}`")
    else:
        print(f"⚠ access log lines differ (time masked): {a_name} `{a}`; {b_name} `{b}`")

if __name__ == "__main__":
    c, a = sys.argv[1], sys.argv[2:]
    {"port": lambda: free_port(), "ticks": lambda: ticks(a), "busy": lambda: busy(),
     "row": lambda: row(*a), "report": lambda: report(*a), "logcmp": lambda: logcmp(*a)}[c]()
PYEOF
py() { python3 "$HELPER" "$@"; }

# The body is $X99 and a newline (lib.sh): exactly 100 bytes, like proxy-bench's /small.
if (( PIN )); then PIN_SERVER=(taskset -c "$SERVER_CPU"); PIN_LOAD=(taskset -c "$LOAD_CPU"); else PIN_SERVER=(); PIN_LOAD=(); fi

# wait_body PORT PID NAME: until the server answers the 100-byte body (15 s at most).
wait_body() {
    local i
    for i in $(seq 150); do
        curl -s -A wrk.sh "http://127.0.0.1:$1/" 2>/dev/null | cmp -s - <(printf '%s\n' "$X99") && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    echo "$3: not started on port $1, or the body is not the 100 expected bytes" >&2
    tail -20 "$WORK/$3/logs/error.log" "$WORK/$3/logs/stdout.log" >&2 2>/dev/null || true
    exit 1
}

# start_bg DIR CMD...: CMD in its own session (pid = process group), output to DIR/logs.
start_bg() {
    local d=$1; shift
    setsid "$@" > "$d/logs/stdout.log" 2>&1 &
    BG_PID=$!
    PIDS+=("$BG_PID")
}

BPORT=
BACKEND_PGID=
if [[ $MODE == proxy ]]; then
    BPORT=$(py port)
    d=$WORK/backend
    write_backend_conf "$d" "$BPORT" "$BACKEND_WORKERS" 16384
    start_bg "$d" "${PIN_LOAD[@]}" "$NGINX_BIN" -p "$d/" -e "$d/logs/error.log" -c "$d/nginx.conf"
    BACKEND_PGID=$BG_PID
    wait_body "$BPORT" "$BG_PID" backend
fi

write_nginx_conf() { # write_nginx_conf VARIANT PORT
    local v=$1 d=$WORK/$1 w=${WORKERS[$1]} loc log=off upstream=
    [[ ${LOG[$v]} == 1 ]] && log="$d/logs/access.log"
    if [[ $MODE == return200 ]]; then
        loc="return 200 \"$X99\\n\";"
    else
        upstream="upstream b { server 127.0.0.1:$BPORT; keepalive 64; }"
        loc="proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\";"
    fi
    cat > "$d/nginx.conf" <<EOF
worker_processes $w;
daemon off;
master_process $( ((w > 1)) && echo on || echo off);
error_log $d/logs/error.log;
pid $d/logs/server.pid;

events {
    worker_connections 16384;
}

http {
    access_log $log;
    $upstream

    server {
        listen 127.0.0.1:$2;
        location / {
            $loc
        }
    }
}
EOF
}

write_haproxy_conf() { # write_haproxy_conf VARIANT PORT
    local d=$WORK/$1 action
    if [[ $MODE == return200 ]]; then
        action="http-request return status 200 content-type text/plain string \"$X99\\n\""
    else
        action="default_backend be_ka"
    fi
    cat > "$d/haproxy.cfg" <<EOF
global
    nbthread ${WORKERS[$1]}
    maxconn 16384
    # the fd hard limit may be below 2*maxconn: run with what we get
    no strict-limits

defaults
    mode http
    maxconn 16384
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    timeout http-request 60s
    timeout http-keep-alive 75s

frontend fe
    bind 127.0.0.1:$2
    $action

# server-side keep-alive (haproxy's default http-keep-alive + http-reuse safe)
backend be_ka
    server b 127.0.0.1:${BPORT:-1}
EOF
}

declare -A PID PORT
start() {
    local v=$1 port d=$WORK/$1
    port=$(py port)
    mkdir -p "$d/logs"
    case ${SRV[$v]} in
        haproxy)
            write_haproxy_conf "$v" "$port"
            "$HAPROXY_BIN" -c -q -f "$d/haproxy.cfg" > "$d/logs/check.log" 2>&1 ||
                { echo "haproxy rejected its config:" >&2; cat "$d/logs/check.log" >&2; exit 1; }
            start_bg "$d" "${PIN_SERVER[@]}" "$HAPROXY_BIN" -db -f "$d/haproxy.cfg" ;;
        nginx)
            write_nginx_conf "$v" "$port"
            start_bg "$d" "${PIN_SERVER[@]}" "$NGINX_BIN" -p "$d/" -e "$d/logs/error.log" -c "$d/nginx.conf" ;;
        rginx)
            write_nginx_conf "$v" "$port"
            start_bg "$d" "${PIN_SERVER[@]}" "$RGINX_BIN" -p "$d/" -e "$d/logs/error.log" -c "$d/nginx.conf" ;;
    esac
    PID[$v]=$BG_PID
    PORT[$v]=$port
    wait_body "$port" "$BG_PID" "$v"
    local comm; comm=$(cat "/proc/$BG_PID/comm" 2>/dev/null || echo '?')
    case $comm in setsid|taskset) echo "$v: pid $BG_PID is '$comm', not the server" >&2; exit 1 ;; esac
    echo "started $v pid $BG_PID on 127.0.0.1:$port ($comm, ${WORKERS[$v]} worker(s), access_log $([[ ${LOG[$v]} == 1 ]] && echo on || echo off))" >&2
}

log_lines() { # log_lines VARIANT: lines in its access log ("-" without one)
    if [[ ${LOG[$1]} == 1 ]]; then
        if [[ -f $WORK/$1/logs/access.log ]]; then wc -l < "$WORK/$1/logs/access.log"; else echo 0; fi
    else
        echo -
    fi
}

quiet_wait() { # wait up to $QUIET s for both CPUs < 10% busy over 1 s
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

TSV=$WORK/runs.tsv
: > "$TSV"
HZ=$(getconf CLK_TCK)
run() { # run ROUND VARIANT
    local round=$1 v=$2 pid=${PID[$2]} port=${PORT[$2]} out t0 t1 b0 b1 o0=0 o1=0 l0 l1 logged=-
    quiet_wait
    timeout $((WARMUP + 30)) "${PIN_LOAD[@]}" "$WRK_BIN" -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/" > /dev/null
    l0=$(log_lines "$v")
    t0=$(py ticks "$pid")
    [[ -n $BACKEND_PGID ]] && o0=$(py ticks "$BACKEND_PGID")
    b0=$(py busy)
    # wrk runs as a child of python, which reports wrk's own CPU time (RUSAGE_CHILDREN).
    out=$(timeout $((DURATION + 30)) python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write(r.stdout + "\nWRKCPU %.3f\n" % (u.ru_utime + u.ru_stime))
' "${PIN_LOAD[@]}" "$WRK_BIN" -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency --timeout 5s "http://127.0.0.1:$port/")
    b1=$(py busy)
    t1=$(py ticks "$pid")
    [[ -n $BACKEND_PGID ]] && o1=$(py ticks "$BACKEND_PGID")
    kill -0 "$pid" 2>/dev/null || { echo "$v died during the run" >&2; tail -20 "$WORK/$v/logs/error.log" >&2; exit 1; }
    if [[ ${LOG[$v]} == 1 ]]; then
        sleep 0.2  # the requests in flight when wrk stopped are logged when they finish
        l1=$(log_lines "$v")
        logged=$((l1 - l0))
        : > "$WORK/$v/logs/access.log"  # O_APPEND writers: truncating keeps /tmp small
    fi
    printf '%s' "$out" > "$WORK/wrk-$round-$v.txt"
    py row "$round" "$v" "$((t1 - t0))" "$HZ" "$WORK/wrk-$round-$v.txt" "$((b1 - b0))" "$((o1 - o0))" "$DURATION" "$logged" >> "$TSV"
    tail -1 "$TSV" | awk -F'\t' '{ printf "round %s %-12s %8s req/s  p50 %s ms  p99 %s ms  errors %s  non-2xx %s  %s us/req  server CPU %s%%  foreign CPU %s%%  logged %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $11, $10, $12 }' >&2
    sleep 1
}

for v in "${VLIST[@]}"; do start "$v"; done

# The access log lines of rginx and nginx for the same request (curl's check), time masked.
LOGCMP=
for v in "${VLIST[@]}"; do
    if [[ ${SRV[$v]} == rginx && ${LOG[$v]} == 1 ]]; then
        ref=nginx${v#rginx}
        if [[ -n ${SRV[$ref]:-} ]]; then
            LOGCMP=$(py logcmp "$v" "$WORK/$v/logs/access.log" "$ref" "$WORK/$ref/logs/access.log")
            echo "$LOGCMP" >&2
        fi
        break
    fi
done

echo "# $MODE: wrk -t$THREADS -c$CONNS -d${DURATION}s, $ROUNDS rounds, variants ${VLIST[*]}, $( ((PIN)) && echo "server on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU" || echo unpinned)" >&2
n=${#VLIST[@]}
for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do run "$round" "${VLIST[$(( (i + round - 1) % n ))]}"; done
done

if [[ -n $TSV_OUT ]]; then
    awk -v m="$MODE" -v pin="$PIN" -v t="$THREADS" -v c="$CONNS" 'BEGIN { OFS = "\t" } { print m, pin, t, c, $0 }' "$TSV" > "$TSV_OUT"
fi
py report "$TSV" "$MODE" "$(code_rev)" "$CONNS" "$THREADS" "$DURATION" "$ROUNDS" "$PIN" "$LOGCMP"
