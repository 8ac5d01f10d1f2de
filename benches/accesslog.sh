#!/usr/bin/env bash
# benches/accesslog.sh: the cost per request of `access_log FILE;` (nginx's default combined
# format, written to a file), rginx against nginx: `return 200` and the small keep-alive
# proxy, each with the variants rginx, nginx, rginx+log, nginx+log in interleaved rounds
# (pinned: server on CPU 0, wrk and backend on CPU 1). Reports CPU µs/request with and
# without the log, the difference (the log's own cost), rginx/nginx with the log on, and
# checks that every request wrk counted is in the file. The instruction counts of the same
# thing: `benches/callgrind.sh -s return200,return200log,proxy,proxylog`.
#
# Usage: benches/accesslog.sh [-r ROUNDS] [-d SECONDS] [-q QUIET_S] [-b RGINX_BIN] [other wrk.sh options]
#   defaults: 3 rounds x 8 s x 4 variants x 2 scenarios: ~5 min
# Exit status 1 if either run failed a check.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
rc=0
for m in return200 proxy; do
    "$HERE/wrk.sh" -m "$m" -s rginx,nginx,rginx+log,nginx+log -r 3 "$@" || rc=1
done
exit $rc
