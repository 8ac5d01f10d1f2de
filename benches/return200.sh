#!/usr/bin/env bash
# benches/return200.sh: wrk against `location / { return 200 "<100 bytes>"; }`, rginx vs nginx
# vs haproxy (`http-request return status 200 ... string "<the same 100 bytes>"`), one worker
# each, the same nginx.conf text for rginx and nginx, pinned as ../shared/bench/proxy-bench
# pins: the server under test on CPU 0, wrk on CPU 1. All servers run for the whole session
# and take turns under load, in interleaved rounds whose order rotates.
#
# Per run: req/s, p50/p99, socket errors and non-2xx (must be 0), CPU µs/request (server
# utime+stime from /proc / requests) and "foreign CPU" (other work on the machine).
# Report: medians over rounds, each server's ratio to nginx with the min-max of the paired
# per-round ratios in brackets.
#
# Usage: benches/return200.sh [-r ROUNDS] [-d SECONDS] [-c CONNS] [-b RGINX_BIN] [-q QUIET_S]
#                             [-s rginx,nginx,haproxy] [any other benches/wrk.sh option]
# This is `benches/wrk.sh -m return200`; see wrk.sh for the options and the environment.
# Exit status 1 if any run had a socket error or a non-2xx response.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
exec "$HERE/wrk.sh" -m return200 -s rginx,nginx,haproxy "$@"
