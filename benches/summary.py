#!/usr/bin/env python3
"""benches/summary.py RESULTS_DIR: the issue's table and its targets, from the raw results
benches/all.sh leaves in RESULTS_DIR (python3 standard library only):

  proxy-bench.runs.tsv, proxy-bench.md   proxy.sh (proxy-bench): one row per wrk run; idle-mem
  return200.tsv, accesslog-*.tsv, workers-*.tsv   wrk.sh -o: one row per wrk run
  callgrind/summary.tsv                  callgrind.sh: Ir and mallocs per scenario and server
  idle.md                                idle.sh's table

Every figure is a median over rounds; a ratio is median(A) / median(B), with the min-max of
the paired per-round ratios in brackets where there are two rounds or more. A missing input
(a skipped step) leaves "—" in its cells."""
import os
import re
import statistics
import sys

RES = sys.argv[1]
HZ = os.sysconf("SC_CLK_TCK")
DASH = "—"


def path(name):
    p = os.path.join(RES, name)
    return p if os.path.exists(p) and os.path.getsize(p) > 0 else None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------- proxy-bench runs
PB = []
if path("proxy-bench.runs.tsv"):
    with open(path("proxy-bench.runs.tsv")) as f:
        hdr = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(hdr, line.rstrip("\n").split("\t")))
            secs = float(r["duration_us"]) / 1e6
            reqs = float(r["requests"])
            PB.append(dict(
                round=int(r["round"]), scenario=r["scenario"], proxy=r["proxy"],
                rps=reqs / secs, mibps=float(r["bytes"]) / secs / 1048576.0,
                p99=float(r["p99_us"]) / 1000.0,
                us=(float(r["proxy_ticks"]) / HZ / reqs * 1e6) if reqs and float(r["proxy_ticks"]) >= 0 else None,
                accepts=(float(r["backend_accepts"]) / reqs * 1000) if reqs and float(r["backend_accepts"]) >= 0 else None,
                errs=sum(int(float(r[k])) for k in ("err_connect", "err_read", "err_write", "err_timeout", "err_status")),
                foreign=float(r["foreign"])))


def pb(scn, proxy, key):
    return med([r[key] for r in PB if r["scenario"] == scn and r["proxy"] == proxy])


def pb_paired(scn, a, b, key):
    ra = {r["round"]: r[key] for r in PB if r["scenario"] == scn and r["proxy"] == a}
    rb = {r["round"]: r[key] for r in PB if r["scenario"] == scn and r["proxy"] == b}
    return [ra[k] / rb[k] for k in ra if k in rb and ra[k] and rb[k]]


# ---------------------------------------------------------------- wrk.sh runs
def wrk_rows(name):
    rows = []
    if path(name):
        for line in open(path(name)):
            c = line.rstrip("\n").split("\t")
            if len(c) < 16:
                continue
            rows.append(dict(round=int(c[4]), variant=c[5], rps=float(c[6]), p99=float(c[8]),
                             errs=int(c[9]) + int(c[10]), us=float(c[11]), foreign=float(c[13])))
    return rows


WRK = {n: wrk_rows(n + ".tsv") for n in
       ("return200", "accesslog-return200", "accesslog-proxy", "workers-return200", "workers-proxy")}


def wk(name, variant, key):
    return med([r[key] for r in WRK[name] if r["variant"] == variant])


def wk_paired(name, a, b, key):
    ra = {r["round"]: r[key] for r in WRK[name] if r["variant"] == a}
    rb = {r["round"]: r[key] for r in WRK[name] if r["variant"] == b}
    return [ra[k] / rb[k] for k in ra if k in rb and ra[k] and rb[k]]


# ---------------------------------------------------------------- callgrind
CG = {}
if path("callgrind/summary.tsv"):
    for line in open(path("callgrind/summary.tsv")):
        c = line.rstrip("\n").split("\t")
        if len(c) >= 6:
            CG[(c[0], c[1])] = dict(ir=int(c[2]) / int(c[3]), mallocs=float(c[5]) if c[5] != "?" else None,
                                    bad=int(c[4]))


def cg(scn, server, key="ir"):
    return CG.get((scn, server), {}).get(key)


# ---------------------------------------------------------------- idle memory
def idle_table(name, section, col_proxy, col_conn, col_ka):
    """{server: (KiB/conn connected, KiB/conn keep-alive)} from a markdown table, and the
    number of connections from the line that names it ("10,000 per proxy", "10000 per server")."""
    out = {}
    if not path(name):
        return out, None
    inside = section is None
    conns = None
    for line in open(path(name)):
        m = re.search(r"([\d,]+) per (proxy|server)", line)
        if m and (section is None or section in line):
            conns = m.group(1)
        if section and line.startswith("#"):
            inside = section in line
        if not inside or not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        try:
            out[cells[col_proxy]] = (float(cells[col_conn]), float(cells[col_ka]))
        except (ValueError, IndexError):
            pass
    return out, conns


IDLE_PB, IDLE_PB_N = idle_table("proxy-bench.md", "Idle connections", 0, 3, 5)
IDLE_SH, IDLE_SH_N = idle_table("idle.md", None, 0, 4, 5)


# ---------------------------------------------------------------- formatting
def num(x, fmt="{:,.0f}"):
    return DASH if x is None else fmt.format(x)


def ratio(a, b, paired=None):
    if a is None or b is None or not b:
        return DASH
    s = f"{a / b:.2f}"
    if paired and len(paired) >= 2:
        s += f" ({min(paired):.2f}–{max(paired):.2f})"
    return s


def cell2(a, b, fa="{:,.0f}", fb="{:.1f}"):
    return DASH if a is None and b is None else f"{num(a, fa)}, {num(b, fb)}"


rows = []
w = rows.append
w("## The issue's table (one run; medians over rounds)")
w("")
w("| scenario | nginx 1.22 | haproxy 2.6 | rginx | rginx / nginx |")
w("| --- | --- | --- | --- | --- |")
for scn, label in (("small-ka", "small responses, client + upstream keepalive"),
                   ("small-close", "new upstream connection per request"),
                   ("1k", "1 KiB responses, keepalive"),
                   ("c1000", "1,000 connections, `keepalive 64`")):
    w(f"| {label}: req/s, CPU µs/req | " + " | ".join(cell2(pb(scn, p, "rps"), pb(scn, p, "us")) for p in ("nginx", "haproxy", "rginx"))
      + f" | {ratio(pb(scn, 'rginx', 'rps'), pb(scn, 'nginx', 'rps'), pb_paired(scn, 'rginx', 'nginx', 'rps'))}, "
        f"{ratio(pb(scn, 'rginx', 'us'), pb(scn, 'nginx', 'us'), pb_paired(scn, 'rginx', 'nginx', 'us'))} |")
w("| 1 MiB responses: MiB/s, p99 (ms), CPU µs/req | " + " | ".join(
    DASH if pb("1m", p, "mibps") is None else f"{pb('1m', p, 'mibps'):,.0f}, {pb('1m', p, 'p99'):.0f} ms, {num(pb('1m', p, 'us'))}"
    for p in ("nginx", "haproxy", "rginx"))
  + f" | {ratio(pb('1m', 'rginx', 'mibps'), pb('1m', 'nginx', 'mibps'), pb_paired('1m', 'rginx', 'nginx', 'mibps'))} |")
w("| `return 200`, no upstream: req/s, CPU µs/req | " + " | ".join(
    cell2(wk("return200", p, "rps"), wk("return200", p, "us"), fb="{:.2f}") for p in ("nginx", "haproxy", "rginx"))
  + f" | {ratio(wk('return200', 'rginx', 'rps'), wk('return200', 'nginx', 'rps'), wk_paired('return200', 'rginx', 'nginx', 'rps'))}, "
    f"{ratio(wk('return200', 'rginx', 'us'), wk('return200', 'nginx', 'us'), wk_paired('return200', 'rginx', 'nginx', 'us'))} |")
for scn, label in (("proxy", "instructions per proxied request (callgrind)"),
                   ("return200", "instructions per `return 200` (callgrind)"),
                   ("proxylog", "instructions per proxied request, access_log on"),
                   ("return200log", "instructions per `return 200`, access_log on")):
    w(f"| {label} | {num(cg(scn, 'nginx'))} | {DASH} | {num(cg(scn, 'rginx'))} | {ratio(cg(scn, 'rginx'), cg(scn, 'nginx'))} |")
w(f"| heap allocations per proxied request | {num(cg('proxy', 'nginx', 'mallocs'), '{:.0f}')} | {DASH} | "
  f"{num(cg('proxy', 'rginx', 'mallocs'), '{:.0f}')} | {ratio(cg('proxy', 'rginx', 'mallocs'), cg('proxy', 'nginx', 'mallocs'))} |")
for src, label in ((IDLE_PB, f"idle keep-alive connection, RSS (proxy-bench, {IDLE_PB_N} conns)"),
                   (IDLE_SH, f"idle keep-alive connection, RSS (idle.sh, `return 200`, {IDLE_SH_N} conns)")):
    if src:
        get = lambda p: src[p][1] if p in src else None
        w(f"| {label} | {num(get('nginx'), '{:.2f} KiB')} | {num(get('haproxy'), '{:.2f} KiB')} | "
          f"{num(get('rginx'), '{:.2f} KiB')} | {ratio(get('rginx'), get('nginx'))} |")
for scn, label in (("accesslog-return200", "`return 200` with access_log on: CPU µs/req"),
                   ("accesslog-proxy", "small keep-alive proxy with access_log on: CPU µs/req")):
    if WRK[scn]:
        w(f"| {label} | {num(wk(scn, 'nginx+log', 'us'), '{:.2f}')} | {DASH} | {num(wk(scn, 'rginx+log', 'us'), '{:.2f}')} | "
          f"{ratio(wk(scn, 'rginx+log', 'us'), wk(scn, 'nginx+log', 'us'), wk_paired(scn, 'rginx+log', 'nginx+log', 'us'))} |")
w("")
if PB:
    d, d1m = pb("direct", "direct", "rps"), pb("direct-1m", "direct", "mibps")
    w(f"The no-proxy ceiling (wrk straight to the backend): {num(d)} req/s small"
      + (f", {num(d1m)} MiB/s for 1 MiB." if d1m else "."))
    acc = {p: pb("c1000", p, "accepts") for p in ("nginx", "haproxy", "rginx")}
    w("Upstream connections opened per 1,000 requests at c1000 (nginx's `keepalive 64` pool rule): "
      + ", ".join(f"{p} {num(v, '{:.0f}')}" for p, v in acc.items()) + ".")
    w("")


# ---------------------------------------------------------------- targets
def verdict(ok):
    return DASH if ok is None else ("**met**" if ok else "not met")


def lt(a, b, k):
    return None if a is None or b is None else a <= k * b


T = []
r = cg("proxy", "rginx"), cg("proxy", "nginx")
T.append(("instructions per proxied request ≤ 0.80 × nginx's", ratio(*r), verdict(lt(r[0], r[1], 0.80))))
us, rps = (pb("small-ka", "rginx", "us"), pb("small-ka", "nginx", "us")), (pb("small-ka", "rginx", "rps"), pb("small-ka", "nginx", "rps"))
ok = None if None in us + rps else (us[0] <= 0.80 * us[1] and rps[0] >= rps[1])
T.append(("small-ka CPU µs/req ≤ 0.80 × nginx's, req/s ≥ 1.00 ×", f"{ratio(*us)} µs, {ratio(*rps)} req/s", verdict(ok)))
m = pb("1m", "rginx", "mibps"), pb("1m", "nginx", "mibps")
ceil = pb("direct-1m", "direct", "mibps")
T.append(("1 MiB: ≥ 1.50 × nginx's MiB/s", ratio(*m), verdict(None if None in m else m[0] >= 1.5 * m[1])))
T.append(("1 MiB: ≥ 70% of the ceiling (direct-1m)", DASH if None in (m[0], ceil) else f"{m[0] / ceil:.0%} of {ceil:,.0f} MiB/s",
          verdict(None if None in (m[0], ceil) else m[0] >= 0.7 * ceil)))
p = pb("1m", "rginx", "p99"), pb("1m", "haproxy", "p99")
T.append(("1 MiB: p99 no worse than haproxy's", DASH if None in p else f"{p[0]:.0f} ms vs {p[1]:.0f} ms",
          verdict(None if None in p else p[0] <= p[1])))
c = pb("c1000", "rginx", "rps"), pb("c1000", "haproxy", "rps")
T.append(("c1000 (`keepalive 64`): req/s ≥ haproxy's", f"{ratio(*c)} × haproxy", verdict(None if None in c else c[0] >= c[1])))
u = wk("return200", "rginx", "us"), wk("return200", "nginx", "us")
T.append(("`return 200`: CPU µs/req ≤ 0.70 × nginx's", ratio(*u, wk_paired("return200", "rginx", "nginx", "us")), verdict(lt(u[0], u[1], 0.70))))
ka = IDLE_PB.get("rginx", (None, None))[1]
if ka is None:
    ka = IDLE_SH.get("rginx", (None, None))[1]
T.append(("idle keep-alive connection ≤ 0.25 KiB", num(ka, "{:.2f} KiB"), verdict(None if ka is None else ka <= 0.25)))
for scn in ("accesslog-return200", "accesslog-proxy"):
    a = wk(scn, "rginx+log", "us"), wk(scn, "nginx+log", "us")
    T.append((f"access_log on ({scn.split('-')[1]}): CPU µs/req ≤ nginx's", ratio(*a, wk_paired(scn, "rginx+log", "nginx+log", "us")),
              verdict(lt(a[0], a[1], 1.0))))
for scn in ("return200", "proxy"):
    a = cg(scn + "log", "rginx"), cg(scn + "log", "nginx")
    T.append((f"access_log on ({scn}): instructions/req ≤ nginx's", ratio(*a), verdict(lt(a[0], a[1], 1.0))))
w("## Targets")
w("")
w("| target | measured (rginx / nginx unless said) | |")
w("|---|---|---|")
for t in T:
    w(f"| {t[0]} | {t[1]} | {t[2]} |")
w("")

# ---------------------------------------------------------------- worker scaling
sc = []
for scn in ("workers-return200", "workers-proxy"):
    for s in ("nginx", "rginx"):
        one, two = wk(scn, s, "rps"), wk(scn, s + "@2", "rps")
        if one is None or two is None:
            continue
        sc.append(f"| {scn.split('-')[1]} | {s} | {one:,.0f} | {two:,.0f} | **{ratio(two, one, wk_paired(scn, s + '@2', s, 'rps'))}** | "
                  f"{wk(scn, s, 'us'):.2f} → {wk(scn, s + '@2', 'us'):.2f} |")
if sc:
    w("## `worker_processes 2` against 1 (nothing pinned, wrk -t2)")
    w("")
    w("| scenario | server | req/s, 1 worker | req/s, 2 workers | 2/1 (paired) | CPU µs/req 1 → 2 |")
    w("|---|---|---:|---:|---:|---:|")
    rows.extend(sc)
    w("")
    w("Two CPUs carry wrk, the backend and the server: 2/1 cannot reach 2. Compare the two servers' "
      "ratios, and the CPU per request, which grows if the workers contend for something shared.")
    w("")

# ---------------------------------------------------------------- noise and errors
noisy = [f"{r['scenario']}/{r['proxy']} r{r['round']}" for r in PB if r["foreign"] > 5]
for n, rs in WRK.items():
    noisy += [f"{n}/{r['variant']} r{r['round']}" for r in rs if r["foreign"] > 5]
errs = [f"{r['scenario']}/{r['proxy']} r{r['round']}: {r['errs']}" for r in PB if r["errs"]]
for n, rs in WRK.items():
    errs += [f"{n}/{r['variant']} r{r['round']}: {r['errs']}" for r in rs if r["errs"]]
w(f"Runs disturbed by other work (> 5% foreign CPU): {len(noisy)}" + (f" ({', '.join(noisy[:12])}{', ...' if len(noisy) > 12 else ''})" if noisy else "") + ".")
w(f"Runs with socket errors or non-2xx responses: {len(errs)}" + (f" ({', '.join(errs[:12])})" if errs else "") + ".")
print("\n".join(rows))
sys.exit(1 if errs else 0)
