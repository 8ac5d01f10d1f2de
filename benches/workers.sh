#!/usr/bin/env bash
# benches/workers.sh: `worker_processes 2` against 1, rginx and nginx: `return 200` and the
# small keep-alive proxy, variants rginx, rginx@2, nginx, nginx@2 in interleaved rounds,
# nothing pinned (every process may use both CPUs), wrk with 2 threads, the backend nginx with
# 2 workers. Prints each server's 2/1 req/s ratio (paired per round) and CPU µs/request.
# On a 2-CPU machine wrk and the backend share the CPUs with the server, so 2/1 cannot
# reach 2: compare the ratios of the two servers, and the CPU per request, which must not
# grow with the second worker if nothing shared is written on the request path.
#
# Usage: benches/workers.sh [-r ROUNDS] [-d SECONDS] [-q QUIET_S] [-b RGINX_BIN] [other wrk.sh options]
#   defaults: 3 rounds x 8 s x 4 variants x 2 scenarios: ~5 min
# Exit status 1 if either run failed a check.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
rc=0
for m in return200 proxy; do
    "$HERE/wrk.sh" -m "$m" -u -t 2 -s rginx,rginx@2,nginx,nginx@2 -r 3 "$@" || rc=1
done
exit $rc
