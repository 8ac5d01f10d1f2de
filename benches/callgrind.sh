#!/usr/bin/env bash
# benches/callgrind.sh: instructions per request under `valgrind --tool=callgrind`, rginx vs
# nginx, and the top functions of each profile. Instruction counts do not drift with a noisy
# machine: the same binary, config and request sequence give the same count.
#
# Scenarios (the server under test runs under callgrind, one worker, same nginx.conf text):
#   return200  `location / { return 200 "<100 bytes>"; }`
#   proxy      the small keep-alive proxy scenario of ../shared/bench/proxy-bench: `/small`
#              (100 bytes) through `upstream b { server ...; keepalive 64; }` with
#              `proxy_http_version 1.1; proxy_set_header Connection "";` to a backend nginx
#              that runs natively (not under valgrind).
#   return200log, proxylog  the same with `access_log FILE;` (the default combined format,
#              to a file) instead of `access_log off;`: the log's cost per request is the
#              difference; every request must be in the file (checked).
# The client (python3, standard library) sends WARMUP requests, then callgrind's counters
# are zeroed (callgrind_control -z), then N requests, one at a time on a keep-alive
# connection (reopened when the server closes it, e.g. after keepalive_requests 1000),
# then the counters are dumped (callgrind_control -d). Ir/request = dumped total / N.
#
# Usage: benches/callgrind.sh [-n N] [-s return200,proxy] [-p rginx,nginx] [-b RGINX_BIN] [-o OUTDIR]
#   -s takes any of return200,proxy,return200log,proxylog
# OUTDIR (default /tmp/rginx-callgrind) keeps callgrind.out.* and the annotate reports, and
# summary.tsv (scenario, server, Ir total, requests, bad responses, malloc calls/request).
# Exit status 1 if a response was wrong or an access log missed requests.
# Every process the script starts is stopped on exit (trap EXIT, by pid).
set -euo pipefail

N=20000
WARMUP=500
SCENARIOS=return200,proxy
PROXIES=rginx,nginx
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RGINX_BIN=$ROOT/target/release/rginx
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
OUT=/tmp/rginx-callgrind
TOP=${TOP:-25}

while getopts "n:s:p:b:o:h" o; do
    case $o in
        n) N=$OPTARG ;;
        s) SCENARIOS=$OPTARG ;;
        p) PROXIES=$OPTARG ;;
        b) RGINX_BIN=$OPTARG ;;
        o) OUT=$OPTARG ;;
        *) sed -n '2,25p' "$0"; exit 2 ;;
    esac
done
command -v valgrind > /dev/null || { echo "valgrind is needed (apt-get install -y valgrind)" >&2; exit 1; }
[[ -x $RGINX_BIN ]] || { echo "no $RGINX_BIN: run 'cargo build --release' first" >&2; exit 1; }
# Which code the numbers are from: the commit, "+ uncommitted changes" if src/ differs.
source "$HERE/lib.sh"
warn_if_stale
mkdir -p "$OUT"

WORK=$(mktemp -d /tmp/rginx-cg.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


wait_port() { # wait_port PORT PID SECONDS
    local i
    for i in $(seq $(( $3 * 10 ))); do
        curl -s -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# The backend for the proxy scenario: native nginx, like proxy-bench's.
BPORT=$(free_port)
write_backend_conf "$WORK/backend" "$BPORT" 1 1024
"$NGINX_BIN" -p "$WORK/backend/" -e "$WORK/backend/logs/error.log" -c "$WORK/backend/nginx.conf" &
PIDS+=("$!")
wait_port "$BPORT" "$!" 10 || { echo "backend did not start" >&2; exit 1; }

write_conf() { # write_conf DIR PORT SCENARIO
    local d=$1 loc log=off
    [[ $3 == *log ]] && log="$d/logs/access.log"
    if [[ ${3%log} == return200 ]]; then
        loc="location / { return 200 \"$X99\\n\"; }"
    else
        loc="location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
    fi
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
    access_log $log;

    upstream b {
        server 127.0.0.1:$BPORT;
        keepalive 64;
    }

    server {
        listen 127.0.0.1:$2;
        $loc
    }
}
EOF
}

CLIENT=$WORK/client.py
cat > "$CLIENT" <<'PYEOF'
import http.client, sys
port, n, path, expect = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4].encode() + b"\n"
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
bad = 0
for i in range(n):
    for attempt in range(3):
        try:
            conn.request("GET", path, headers={"User-Agent": "callgrind.sh"})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or body != expect:
                bad += 1
            if r.will_close:
                conn.close()
            break
        except (http.client.HTTPException, OSError):
            conn.close()
    else:
        bad += 1
print(bad)
PYEOF

CGSUM=$WORK/cgsum.py
cat > "$CGSUM" <<'PYEOF'
import sys, re, collections
path, nreq, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = {}
def name(kind, rest):
    m = re.match(r"\((\d+)\)(?:\s+(.*))?", rest)
    if not m:
        return rest
    key = (kind, m.group(1))
    if m.group(2) is not None:
        names[key] = m.group(2)
    return names.get(key, "?")
self_ir = collections.Counter()
calls = collections.Counter()
fn = None; cfn = None; pending_call = 0
for line in open(path):
    line = line.rstrip("\n")
    if not line: continue
    if line.startswith("fn="):
        fn = name("fn", line[3:]); continue
    if line.startswith("cfn="):
        cfn = name("fn", line[4:]); continue
    if line.startswith("calls="):
        pending_call = 1
        calls[cfn] += int(line[6:].split()[0]); continue
    if line[0].isdigit() or line[0] in "+-*":
        parts = line.split()
        if len(parts) >= 2 and fn is not None:
            if pending_call:
                pending_call = 0
            else:
                self_ir[fn] += int(parts[1])
        continue
    # fl= fi= fe= ob= cob= cfi= etc: just record names
    m = re.match(r"(c?fn|fl|fi|fe|cfi|cfl|ob|cob)=(.*)", line)
    if m:
        k = m.group(1)
        if k in ("fl", "fi", "fe", "cfi", "cfl"): name("fl", m.group(2))
        elif k in ("ob", "cob"): name("ob", m.group(2))
total = sum(self_ir.values())
print(f"total Ir {total:,}  = {total/nreq:,.0f} Ir/request")
alloc_fns = [f for f in self_ir if re.fullmatch(r"(malloc|free|cfree|realloc|calloc|_int_malloc|_int_free|_int_realloc|malloc_consolidate|unlink_chunk.*|tcache.*|__libc_malloc|__libc_free|__libc_realloc|__rust_alloc|__rust_dealloc|__rust_realloc|__rdl_.*|alloc::alloc::.*|free_perturb.*|_int_free_merge_chunk|_int_free_create_chunk|_int_free_maybe_consolidate)", f)]
alloc_ir = sum(self_ir[f] for f in alloc_fns)
mallocs = sum(calls[f] for f in ("malloc", "__libc_malloc"))
reallocs = sum(calls[f] for f in ("realloc", "__libc_realloc"))
frees = sum(calls[f] for f in ("free", "cfree", "__libc_free"))
print(f"allocator self Ir {alloc_ir:,} ({100*alloc_ir/total:.1f}%) = {alloc_ir/nreq:,.0f} Ir/request; malloc calls/request {mallocs/nreq:.1f}, realloc {reallocs/nreq:.1f}, free {frees/nreq:.1f}")
print(f"| self Ir/request | % | function |")
print(f"|---:|---:|---|")
for f, v in self_ir.most_common(top):
    print(f"| {v/nreq:,.0f} | {100*v/total:.1f}% | `{f}` |")

# Who allocates: malloc/realloc calls attributed to the first non-library caller
# (allocation wrappers such as RawVec::finish_grow, Vec::clone, String::from are walked up,
# splitting their counts by how often each caller called them).
edges = collections.defaultdict(collections.Counter)  # callee -> caller -> calls
fn = None; cfn = None
for line in open(path):
    if line.startswith("fn="):
        fn = name("fn", line[3:].rstrip("\n"))
    elif line.startswith("cfn="):
        cfn = name("fn", line[4:].rstrip("\n"))
    elif line.startswith("calls="):
        edges[cfn][fn] += int(line[6:].split()[0])
WRAP = re.compile(r"^(__rustc::.*|malloc|realloc|__libc_malloc|__libc_realloc|__rust_alloc|__rust_realloc|__rdl_.*|alloc::.*|<alloc::.*|core::ptr::.*|<core::.*|core::.*|std::.*|<std::.*|hashbrown::.*|<T as alloc::.*|<\[T\] as .*|<str as .*)$")
owners = collections.Counter()
def attribute(node, count, depth=0):
    callers = edges.get(node)
    if depth > 0 and (not WRAP.match(node) or not callers or depth > 12):
        owners[node] += count; return
    if not callers:
        owners[node] += count; return
    tot = sum(callers.values())
    for c, n in callers.items():
        if c == node: continue
        attribute(c, count * n / tot, depth + 1)
for m in ("malloc", "realloc"):
    if m in edges:
        attribute(m, sum(edges[m].values()))
print()
print("| malloc+realloc calls/request | allocating function (first caller outside alloc/core/std) |")
print("|---:|---|")
for f, v in owners.most_common(20):
    if v / nreq >= 0.05:
        print(f"| {v/nreq:.2f} | `{f}` |")
PYEOF

SUMMARY=$WORK/summary.tsv
: > "$SUMMARY"
IFS=, read -r -a SCN <<< "$SCENARIOS"
IFS=, read -r -a PRX <<< "$PROXIES"
for scn in "${SCN[@]}"; do
    for name in "${PRX[@]}"; do
        d=$WORK/$scn-$name
        mkdir -p "$d/logs"
        port=$(free_port)
        write_conf "$d" "$port" "$scn"
        case $name in rginx) bin=$RGINX_BIN ;; nginx) bin=$NGINX_BIN ;; esac
        cgout=$OUT/callgrind.out.$scn-$name
        rm -f "$cgout"*
        valgrind --tool=callgrind --callgrind-out-file="$cgout" --dump-instr=no \
            "$bin" -p "$d/" -e "$d/logs/error.log" -c "$d/nginx.conf" > "$d/logs/valgrind.log" 2>&1 &
        vpid=$!
        PIDS+=("$vpid")
        wait_port "$port" "$vpid" 60 || { echo "$name did not start under valgrind" >&2; tail "$d/logs/valgrind.log" "$d/logs/error.log" >&2; exit 1; }
        python3 "$CLIENT" "$port" "$WARMUP" / "$X99" > /dev/null
        callgrind_control -z "$vpid" > /dev/null
        bad=$(python3 "$CLIENT" "$port" "$N" / "$X99")
        callgrind_control -d "$vpid" > /dev/null
        # the dump is written asynchronously: wait for it
        dump=""
        for i in $(seq 100); do
            dump=$(ls -t "$cgout".* 2>/dev/null | head -1 || true)
            [[ -n $dump && -s $dump ]] && grep -q '^totals:\|^summary:' "$dump" && break
            sleep 0.2
        done
        kill -TERM "$vpid" 2>/dev/null || true
        sleep 1
        kill -KILL "$vpid" 2>/dev/null || true
        wait "$vpid" 2>/dev/null || true
        total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
        if [[ $scn == *log ]]; then
            # every request (warm-up and measured) must be in the access log
            logged=$(wc -l < "$d/logs/access.log" 2>/dev/null || echo 0)
            if (( logged < WARMUP + N )); then
                echo "$scn $name: $logged access log lines for $((WARMUP + N)) requests" >&2
                bad=$((bad + WARMUP + N - logged))
            fi
        fi
        callgrind_annotate --inclusive=no "$dump" > "$OUT/annotate.$scn-$name.txt" 2>/dev/null || true
        callgrind_annotate --inclusive=yes "$dump" > "$OUT/annotate-incl.$scn-$name.txt" 2>/dev/null || true
        python3 "$CGSUM" "$dump" "$N" "$TOP" > "$OUT/top.$scn-$name.md"
        mallocs=$(sed -n 's/.*malloc calls\/request \([0-9.]*\).*/\1/p' "$OUT/top.$scn-$name.md")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scn" "$name" "$total" "$N" "$bad" "${mallocs:-?}" >> "$SUMMARY"
        echo "$scn $name: $total Ir for $N requests = $(( total / N )) Ir/request, bad responses: $bad" >&2
    done
done

cp "$SUMMARY" "$OUT/summary.tsv"
echo
echo "### callgrind: instructions per request ($N requests after $WARMUP warm-up, c=1 keep-alive; rginx $(code_rev))"
echo
python3 - "$SUMMARY" <<'PYEOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
ir = {(r[0], r[1]): int(r[2]) / int(r[3]) for r in rows}
print("| scenario | server | Ir total | Ir / request | rginx/nginx | malloc calls / request | bad responses |")
print("|---|---|---:|---:|---:|---:|---:|")
for scn, name, total, n, bad, mallocs in rows:
    ratio = f"{ir[(scn, 'rginx')] / ir[(scn, 'nginx')]:.2f}" if name == "rginx" and (scn, "nginx") in ir else ""
    print(f"| {scn} | {name} | {int(total):,} | {int(total) / int(n):,.0f} | {ratio} | {mallocs} | {bad} |")
# the access log's own cost: the same scenario with and without it
cost = [(scn, name, ir[(scn, name)] - ir[(scn[:-3], name)]) for (scn, name) in ir
        if scn.endswith("log") and (scn[:-3], name) in ir]
if cost:
    print("\n| access_log cost (combined, to a file) | server | Ir / request | rginx/nginx |")
    print("|---|---|---:|---:|")
    d = {(s, n): c for s, n, c in cost}
    for s, n, c in cost:
        r = f"{c / d[(s, 'nginx')]:.2f}" if n == "rginx" and (s, "nginx") in d and d[(s, "nginx")] else ""
        print(f"| {s[:-3]} + log − {s[:-3]} | {n} | {c:,.0f} | {r} |")
bad = sum(int(r[4]) for r in rows)
print("\ncheck: " + ("PASS (every response right, every request logged)" if bad == 0 else f"FAIL ({bad} bad responses or missing log lines)"))
PYEOF
echo
for scn in "${SCN[@]}"; do
    for name in "${PRX[@]}"; do
        echo "#### $scn, $name: top functions by self instructions, and who calls malloc"
        echo "(callgrind_annotate reports: $OUT/annotate.$scn-$name.txt, $OUT/annotate-incl.$scn-$name.txt)"
        echo
        cat "$OUT/top.$scn-$name.md"
        echo
    done
done
awk -F'\t' '{ bad += $5 } END { exit bad > 0 }' "$SUMMARY"
