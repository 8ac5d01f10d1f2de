#!/usr/bin/env bash
# benches/upload.sh: a large upload streamed through rginx with `proxy_request_buffering off`:
# memory stays bounded (back-pressure) and the worker's stack does not grow with the body.
#
# Two runs, each one 1 GiB PUT (Content-Length) from a python3 client through rginx (one
# worker, `client_body_buffer_size 16k`) to a python3 backend that hashes what it reads and
# answers with the SHA-256; the client compares it with its own:
#   slow: the backend reads nothing for 3 s, then at most SLOW_MBPS MB/s. VmRSS of rginx is
#         sampled every 50 ms: "grown" = peak - before the upload (the body waits in the
#         socket buffers, not in rginx).
#   fast: the backend reads as fast as it can, and rginx runs with RUST_MIN_STACK=65536 (a
#         64 KiB worker thread stack): a reader that called the sender that called the reader
#         once per read would overflow it; rginx must finish with the right digest.
# Usage: benches/upload.sh [-g GIB] [-m SLOW_MBPS] [-b RGINX_BIN]
# Env:   PYTHON_BIN (default python3).
# Everything runs on 127.0.0.1; every process this script starts is stopped on exit
# (trap EXIT, by pid). Exit status 1 if a digest differs or a check fails.
set -euo pipefail

GIB=1
SLOW_MBPS=100
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RGINX_BIN=$ROOT/target/release/rginx
PYTHON_BIN=${PYTHON_BIN:-python3}

while getopts "g:m:b:h" o; do
    case $o in
        g) GIB=$OPTARG ;;
        m) SLOW_MBPS=$OPTARG ;;
        b) RGINX_BIN=$OPTARG ;;
        *) sed -n '2,18p' "$0"; exit 2 ;;
    esac
done
[[ -x $RGINX_BIN ]] || { echo "no $RGINX_BIN: run 'cargo build --release' first" >&2; exit 1; }

WORK=$(mktemp -d /tmp/rginx-upload.XXXXXX)
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

free_port() {
    "$PYTHON_BIN" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cat > "$WORK/backend.py" <<'PY'
# One connection at a time: read the head, then Content-Length bytes (slow or fast), answer
# with the SHA-256 of the body.
import hashlib, socket, sys, time
port, mode, mbps = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port)); ls.listen(8)
while True:
    c, _ = ls.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        head += c.recv(4096)
    head, body = head.split(b"\r\n\r\n", 1)
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    h, got = hashlib.sha256(body), len(body)
    if mode == "slow":
        time.sleep(3)
    start = time.monotonic()
    while got < length:
        b = c.recv(min(1 << 20, length - got))
        if not b:
            break
        h.update(b); got += len(b)
        if mode == "slow":  # at most mbps MB/s
            ahead = got / (mbps * 1e6) - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    d = h.hexdigest().encode() if got == length else b"short"
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(d), d))
    c.close()
PY

cat > "$WORK/client.py" <<'PY'
# Uploads GIB GiB, samples the server's VmRSS meanwhile, checks the digest; prints
# "before_kib peak_kib seconds ok|BAD".
import hashlib, os, socket, sys, threading, time
port, pid, gib = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
size = int(gib * (1 << 30)); base = os.urandom(1 << 20)
before = rss(); peak = [before]; done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss()); time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"PUT /up HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % size)
h, sent, t = hashlib.sha256(), 0, time.monotonic()
while sent < size:
    block = (sent // len(base)).to_bytes(8, "little") + base[8:]
    block = block[: size - sent]
    h.update(block); s.sendall(block); sent += len(block)
resp = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    resp += b
done.set(); took = time.monotonic() - t
ok = resp.startswith(b"HTTP/1.1 200") and resp.endswith(h.hexdigest().encode())
print(before, peak[0], round(took, 1), "ok" if ok else "BAD")
PY

run() { # run NAME MODE STACK -> prints a table row
    local name=$1 mode=$2 stack=$3 bport port pid line
    bport=$(free_port); port=$(free_port)
    "$PYTHON_BIN" "$WORK/backend.py" "$bport" "$mode" "$SLOW_MBPS" & PIDS+=($!)
    mkdir -p "$WORK/$name/logs"
    cat > "$WORK/$name/rginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/$name/logs/rginx.pid;
error_log $WORK/$name/logs/error.log info;
events { worker_connections 1024; }
http {
    access_log off;
    client_max_body_size 0;
    client_body_buffer_size 16k;
    proxy_read_timeout 300s;
    proxy_send_timeout 300s;
    server {
        listen 127.0.0.1:$port;
        location / { proxy_pass http://127.0.0.1:$bport; proxy_request_buffering off; }
    }
}
CONF
    if [[ -n $stack ]]; then
        RUST_MIN_STACK=$stack "$RGINX_BIN" -p "$WORK/$name/" -c "$WORK/$name/rginx.conf" & PIDS+=($!)
    else
        "$RGINX_BIN" -p "$WORK/$name/" -c "$WORK/$name/rginx.conf" & PIDS+=($!)
    fi
    pid=$!
    for _ in $(seq 100); do [[ -s $WORK/$name/logs/rginx.pid ]] && break; sleep 0.05; done
    sleep 0.2
    if ! line=$("$PYTHON_BIN" "$WORK/client.py" "$port" "$pid" "$GIB"); then line="0 0 0 BAD"; fi
    if ! kill -0 "$pid" 2>/dev/null; then line="$line (rginx died)"; fi
    read -r before peak took verdict rest <<< "$line"
    printf '| %s | %s | %s | %s | %s | %s | %s %s |\n' "$name" "${stack:-default}" "$before" "$peak" \
        "$((peak - before))" "$took" "$verdict" "${rest:-}"
    [[ $verdict == ok ]]
}

echo "upload.sh: ${GIB} GiB, rginx $("$RGINX_BIN" -v 2>&1 | tail -1), commit $(cd "$ROOT" && git rev-parse --short HEAD)"
echo
echo "| run | worker stack | VmRSS before (KiB) | peak (KiB) | grown (KiB) | seconds | digest |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
status=0
run slow slow "" || status=1
run fast fast 65536 || status=1
exit $status
