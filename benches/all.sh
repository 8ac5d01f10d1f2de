#!/usr/bin/env bash
# benches/all.sh: the whole benchmark suite in one bounded run, one markdown report.
#
# Steps (each one of the scripts next to this file, in this order; -x skips some):
#   micro      cargo bench --bench parse, --bench timer (parsers, timer wheel)
#   callgrind  callgrind.sh -s return200,proxy,return200log,proxylog -p rginx,nginx
#              (instructions and mallocs per request, access_log's cost, top functions)
#   idle       idle.sh: RSS per idle connection, rginx vs nginx (return 200, no upstream)
#   return200  wrk.sh -m return200 -s rginx,nginx,haproxy (pinned)
#   accesslog  wrk.sh -m return200|proxy -s rginx,nginx,rginx+log,nginx+log (pinned)
#   workers    wrk.sh -m return200|proxy -u -t 2 -s rginx,rginx@2,nginx,nginx@2 (unpinned)
#   proxy      proxy.sh --mode all (proxy-bench: nginx, haproxy, rginx; small-ka, small-close,
#              1k, 1m, c1000 and the ceilings direct, direct-1m; then 10,000 idle connections)
# The report starts with the issue's table (nginx, haproxy, rginx, rginx/nginx) and the
# targets met or not, computed by benches/summary.py from the steps' raw results, then
# every step's own report. Ratios are of medians over interleaved rounds.
#
# Usage: benches/all.sh [-o REPORT.md] [-r ROUNDS] [-d SECONDS] [-n CALLGRIND_N]
#                       [-q QUIET_S] [-x STEP,...] [-b RGINX_BIN] [-Q]
#   defaults: -o perf-report.md -r 3 -d 8 -n 5000: ~30 min on 2 CPUs (printed at start)
#   -q S   before each wrk run wait up to S s for both CPUs < 10% busy (shared machine;
#          adds up to S per run, bounded by proxy-bench's --noise-budget for proxy.sh)
#   -x     skip steps, e.g. -x micro,idle
#   -Q     quick smoke run: -r 1 -d 1 -n 300, 1,000 idle connections (~5 min); its
#          figures mean nothing, it checks that every step starts, checks and stops.
#   -P     print the plan (steps and estimated minutes for these options) and exit.
# Needs target/release/rginx (`cargo build --release`), nginx, haproxy, wrk, valgrind,
# python3, curl, taskset, setsid, timeout. Everything on 127.0.0.1; each step stops its own
# processes (trap EXIT, by pid) and is bounded by `timeout`. Exit status 1 if a step failed
# (a wrong body, a socket error, a non-2xx, a missing log line, a server that died).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUTFILE=perf-report.md
ROUNDS=3
DURATION=8
CG_N=5000
IDLE_N=10000
QUIET=0
SKIP=
RGINX_BIN=$ROOT/target/release/rginx
PLAN=0
while getopts "o:r:d:n:q:x:b:QPh" o; do
    case $o in
        o) OUTFILE=$OPTARG ;;
        r) ROUNDS=$OPTARG ;;
        d) DURATION=$OPTARG ;;
        n) CG_N=$OPTARG ;;
        q) QUIET=$OPTARG ;;
        x) SKIP=$OPTARG ;;
        b) RGINX_BIN=$OPTARG ;;
        Q) ROUNDS=1; DURATION=1; CG_N=300; IDLE_N=1000 ;;
        P) PLAN=1 ;;
        *) sed -n '2,30p' "$0"; exit 2 ;;
    esac
done
[[ -x $RGINX_BIN ]] || { echo "no $RGINX_BIN: run 'cargo build --release' first" >&2; exit 1; }
RGINX_BIN=$(cd "$(dirname "$RGINX_BIN")" && pwd)/$(basename "$RGINX_BIN")
for t in nginx haproxy wrk valgrind python3 curl taskset setsid timeout; do
    command -v "$t" > /dev/null || [[ -x /usr/sbin/$t ]] ||
        { echo "$t is missing (apt-get install -y nginx-light haproxy wrk valgrind python3 curl)" >&2; exit 1; }
done

skipped() { [[ ,$SKIP, == *,$1,* ]]; }
# proxy.sh's harness lives outside this repository (see benches/README.md)
PROXY_BENCH=${PROXY_BENCH:-$ROOT/../shared/bench/proxy-bench}
skipped proxy || [[ -x $PROXY_BENCH ]] ||
    { echo "no proxy-bench at $PROXY_BENCH: set PROXY_BENCH=/path/to/proxy-bench, or -x proxy" >&2; exit 1; }
export PROXY_BENCH

# Estimated seconds per step (for the bound and the plan), measured on the 2-CPU machine:
# wrk.sh runs take duration + 2 s warm-up + 1 s gap; proxy-bench runs duration + ~2 s.
per_run=$((DURATION + 3))
declare -A EST=(
    [micro]=120
    [callgrind]=$((40 + 8 * (6 + CG_N / 300)))
    [idle]=$((20 + IDLE_N / 500))
    [return200]=$((3 * ROUNDS * per_run + 15))
    [accesslog]=$((2 * 4 * ROUNDS * per_run + 30))
    [workers]=$((2 * 4 * ROUNDS * per_run + 30))
    [proxy]=$(((5 * 3 + 2) * ROUNDS * (DURATION + 2) + 3 * (15 + IDLE_N / 500) + 40))
)
STEPS=(micro callgrind idle return200 accesslog workers proxy)
total=0
for s in "${STEPS[@]}"; do skipped "$s" || total=$((total + EST[$s])); done
if (( PLAN )); then
    for s in "${STEPS[@]}"; do
        skipped "$s" && echo "$s: skipped" || echo "$s: ~$(( (EST[$s] + 30) / 60 )) min (bound $(( (3 * EST[$s] + 120) / 60 )) min)"
    done
    echo "total: ~$(( (total + 30) / 60 )) min"
    exit 0
fi
RES=$(mktemp -d /tmp/rginx-all.XXXXXX)  # kept: the raw results, named in the report
echo "# benches/all.sh: rounds $ROUNDS x ${DURATION}s, callgrind $CG_N requests; expect ~$(( (total + 30) / 60 )) min; raw results in $RES" >&2

declare -A RC SECS
FAILED=()
STEP_PID=
# A step runs under `timeout`, which makes itself a process group leader and, at the bound,
# signals its whole group (the step's scripts, whose traps stop their servers). On our own
# exit or Ctrl-C, that group is signalled too.
stop_step() {
    [[ -n $STEP_PID ]] || return 0
    kill -TERM -- "-$STEP_PID" 2>/dev/null || true
    wait "$STEP_PID" 2>/dev/null || true
    STEP_PID=
}
trap stop_step EXIT
trap 'exit 130' INT TERM

# step NAME CMD...: runs CMD with a time bound (3 x the estimate + 2 min); its stdout is the
# step's report ($RES/NAME.md), its stderr the progress (shown, and kept in $RES/NAME.log).
step() {
    local name=$1 t0 rc=0; shift
    if skipped "$name"; then RC[$name]=skipped; return 0; fi
    echo "== $name: $* (~$((EST[$name] / 60 + 1)) min)" >&2
    t0=$(date +%s)
    timeout -k 10 $((3 * EST[$name] + 120)) bash -c '"$@"' "$name" "$@" \
        > "$RES/$name.md" 2> >(tee "$RES/$name.log" >&2) &
    STEP_PID=$!
    wait "$STEP_PID" || rc=$?
    STEP_PID=
    SECS[$name]=$(($(date +%s) - t0))
    RC[$name]=$rc
    if (( rc != 0 )); then
        FAILED+=("$name")
        echo "== $name FAILED (exit $rc, ${SECS[$name]} s); see $RES/$name.log" >&2
    else
        echo "== $name done in ${SECS[$name]} s" >&2
    fi
}

micro() {
    local rc=0
    cd "$ROOT"
    echo '```'
    cargo bench --bench parse && cargo bench --bench timer || rc=1
    echo '```'
    return $rc
}
wrk_step() { # wrk_step OUT.tsv wrk.sh options...
    local tsv=$1; shift
    "$HERE/wrk.sh" -r "$ROUNDS" -d "$DURATION" -q "$QUIET" -b "$RGINX_BIN" -o "$tsv" "$@"
}
accesslog() {
    local rc=0
    wrk_step "$RES/accesslog-return200.tsv" -m return200 -s rginx,nginx,rginx+log,nginx+log || rc=1
    wrk_step "$RES/accesslog-proxy.tsv" -m proxy -s rginx,nginx,rginx+log,nginx+log || rc=1
    return $rc
}
workers() {
    local rc=0
    wrk_step "$RES/workers-return200.tsv" -m return200 -u -t 2 -s rginx,rginx@2,nginx,nginx@2 || rc=1
    wrk_step "$RES/workers-proxy.tsv" -m proxy -u -t 2 -s rginx,rginx@2,nginx,nginx@2 || rc=1
    return $rc
}
proxy() {
    local q=()
    (( QUIET > 0 )) && q=(--quiet-wait "$QUIET" --retry-noisy 1)
    RGINX_BIN=$RGINX_BIN "$HERE/proxy.sh" --mode all --rounds "$ROUNDS" --duration "$DURATION" \
        --conns "$IDLE_N" --scenarios small-ka,small-close,1k,1m,c1000,direct,direct-1m \
        --out "$RES/proxy-bench.md" "${q[@]}" > /dev/null || return 1
    cat "$RES/proxy-bench.md"
}

export -f micro wrk_step accesslog workers proxy
export ROOT HERE ROUNDS DURATION QUIET RGINX_BIN RES IDLE_N
START=$(date '+%Y-%m-%d %H:%M:%S %Z')
T0=$(date +%s)
step micro micro
step callgrind "$HERE/callgrind.sh" -n "$CG_N" -s return200,proxy,return200log,proxylog -p rginx,nginx \
    -b "$RGINX_BIN" -o "$RES/callgrind"
step idle "$HERE/idle.sh" -n "$IDLE_N" -b "$RGINX_BIN"
step return200 wrk_step "$RES/return200.tsv" -m return200 -s rginx,nginx,haproxy
step accesslog accesslog
step workers workers
step proxy proxy
ELAPSED=$(($(date +%s) - T0))

rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')
[[ -z $(cd "$ROOT" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] || rev="$rev with uncommitted changes"
{
    echo "# rginx benchmark report ($START, rginx $rev)"
    echo
    echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
    echo "- versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v | head -1 | awk '{ print "haproxy " $3 }'),"\
         "$(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }'), $(valgrind --version), $(rustc --version 2>/dev/null || echo 'rustc ?')"
    echo "- run: \`benches/all.sh -r $ROUNDS -d $DURATION -n $CG_N -q $QUIET${SKIP:+ -x $SKIP}\`, $((ELAPSED / 60)) min $((ELAPSED % 60)) s; raw results in \`$RES\`"
    echo
    python3 "$HERE/summary.py" "$RES" || FAILED+=("summary: socket errors or non-2xx in a run")
    echo
    echo "## Steps"
    echo
    echo "| step | exit status | seconds |"
    echo "|---|---|---:|"
    for s in "${STEPS[@]}"; do echo "| $s | ${RC[$s]} | ${SECS[$s]:-} |"; done
    for s in "${STEPS[@]}"; do
        [[ -s $RES/$s.md ]] || continue
        echo
        echo "## $s"
        echo
        if [[ $s == proxy ]]; then
            # proxy-bench's report has its own title: its headings one level down
            sed -e 's/^# /### /' -e 's/^## /### /' "$RES/$s.md"
        else
            # idle.sh's "# " lines are comments, not headings
            sed -e 's/^# \(.*\)/\1  /' "$RES/$s.md"
        fi
    done
} > "$OUTFILE"
echo "# report: $OUTFILE ($((ELAPSED / 60)) min $((ELAPSED % 60)) s)" >&2
if (( ${#FAILED[@]} )); then
    echo "# FAILED steps: ${FAILED[*]}" >&2
    exit 1
fi
