# benches/lib.sh: what the bench scripts share (sourced, not run). Needs ROOT and RGINX_BIN set.

# The commit the numbers are from, and " with uncommitted changes" when src/ differs from it.
code_rev() {
    (cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null | tr -d '\n' || printf '?'
     if [[ -n $(cd "$ROOT" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
         printf ' with uncommitted changes'
     fi)
}

# Warns when the binary under test is older than the source it should have been built from.
warn_if_stale() {
    if [[ -n $(find "$ROOT/src" -name '*.rs' -newer "$RGINX_BIN" 2>/dev/null | head -1) ]]; then
        echo "warning: $RGINX_BIN is older than src/: run 'cargo build --release' first" >&2
    fi
}

# A free TCP port on 127.0.0.1.
free_port() {
    "${PYTHON_BIN:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# 99 x's: the 100-byte body (with its newline) every scenario answers.
X99=$(printf 'x%.0s' $(seq 99))

# write_backend_conf DIR PORT WORKERS CONNS: the backend every proxy scenario uses, as
# proxy-bench's: native nginx answering `return 200 "<100 bytes>"` with long keep-alive.
write_backend_conf() {
    local d=$1
    mkdir -p "$d/logs"
    cat > "$d/nginx.conf" <<CONF
worker_processes $3;
daemon off;
master_process $( (($3 > 1)) && echo on || echo off);
error_log $d/logs/error.log;
pid $d/logs/nginx.pid;
events { worker_connections $4; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$2;
        location / { return 200 "$X99\n"; }
    }
}
CONF
}
