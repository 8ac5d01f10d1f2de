#!/usr/bin/env bash
# benches/proxy.sh: the side-by-side proxy benchmark (rginx vs nginx [vs haproxy]) through
# the shared harness ../shared/bench/proxy-bench (outside this repository; see its README).
# This wrapper only fixes the defaults used in docs/performance.md and records which code
# the numbers are from.
#
# Usage: benches/proxy.sh [extra proxy-bench options...]
#   default: --proxies nginx,haproxy,rginx --rounds 3 --duration 8: the issue's scenarios
#            (small-ka, small-close, 1k, 1m, c1000) and the no-proxy ceiling (direct), ~9 min
#   e.g.     benches/proxy.sh --mode idle-mem          # 10,000 idle connections per proxy
#            benches/proxy.sh --duration 2 --rounds 1 --scenarios small-ka,direct  # smoke test
# Env: PROXY_BENCH (path of proxy-bench), RGINX_BIN (default target/release/rginx).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PROXY_BENCH=${PROXY_BENCH:-$ROOT/../shared/bench/proxy-bench}
RGINX_BIN=${RGINX_BIN:-$ROOT/target/release/rginx}
[[ -x $PROXY_BENCH ]] || { echo "no proxy-bench at $PROXY_BENCH (set PROXY_BENCH)" >&2; exit 1; }
[[ -x $RGINX_BIN ]] || { echo "no $RGINX_BIN: run 'cargo build --release' first" >&2; exit 1; }
if [[ -n $(find "$ROOT/src" -name '*.rs' -newer "$RGINX_BIN" 2>/dev/null | head -1) ]]; then
    echo "warning: $RGINX_BIN is older than src/: run 'cargo build --release' first" >&2
fi
rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')
if [[ -n $(cd "$ROOT" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    rev="$rev with uncommitted changes"
fi
echo "# rginx code: $rev" >&2
# proxy-bench stops every process it starts (by pid and process group) on exit or Ctrl-C.
exec "$PROXY_BENCH" --rginx "$RGINX_BIN" --proxies nginx,haproxy,rginx --rounds 3 --duration 8 "$@"
