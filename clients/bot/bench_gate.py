#!/usr/bin/env python3
"""Gate benchmark: rsgame's real Ping handler against the baseline echo server.

Builds both in release, pins each server to core 0 and the load generator to core 1
(taskset), and runs every case A B A B … (rsgame, baseline, interleaved) so both see the same
machine noise. Prints one JSON line per run, then a summary of medians and ratios.

    python3 clients/bot/bench_gate.py            # full run, 10 s per case, 3 rounds
    python3 clients/bot/bench_gate.py --quick    # 3 s per case, 1 round (smoke)
    python3 clients/bot/bench_gate.py --only flood --bin-dir /tmp/before/release   # one case, another build

Traffic goes to 127.0.0.1 only; every run ends by itself.
"""
import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REL = os.path.join(ROOT, "target", "release")
RS_TCP, RS_HTTP, BASE_TCP, BASE_WS = 18999, 18888, 17999, 17888


def port_free(port):
    """Refuses to start when something already listens on `port` (a server left from an earlier
    run would answer in place of the one being measured)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return
    raise SystemExit(f"port {port} is already in use: stop what listens there first")


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"port {port} did not open")


def start_servers():
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("RSGAME_") or k == "RUST_LOG":
            del env[k]
    env.update({
        "RSGAME_HTTP__HOST": "127.0.0.1", "RSGAME_HTTP__PORT": str(RS_HTTP),
        "RSGAME_GATE__HOST": "127.0.0.1", "RSGAME_GATE__TCP_PORT": str(RS_TCP),
        "RSGAME_GATE__KCP_ENABLED": "false",
        # The load generator is one client: lift the abuse limits, keep everything else real
        # (metrics on, router, hooks, rate-limit bookkeeping still runs).
        "RSGAME_GATE__RATE_PER_SEC": "100000000", "RSGAME_GATE__RATE_BURST": "100000000",
        "RSGAME_GATE__MAX_CONNECTIONS_PER_IP": "0", "RSGAME_GATE__HEARTBEAT_TIMEOUT_SECS": "3600",
        "RSGAME_GATE__OUTBOUND_QUEUE": "1024",
        "RSGAME_LOG__LEVEL": "warn",
    })
    for p in (RS_TCP, RS_HTTP, BASE_TCP, BASE_WS):
        port_free(p)
    rs = subprocess.Popen(["taskset", "-c", "0", os.path.join(REL, "rsgame"), "serve", "--role", "game-node"],
                          env=env, stdout=subprocess.DEVNULL)
    base = subprocess.Popen(["taskset", "-c", "0", os.path.join(REL, "bench-baseline"),
                             "--tcp", f"127.0.0.1:{BASE_TCP}", "--ws", f"127.0.0.1:{BASE_WS}"],
                            stdout=subprocess.DEVNULL)
    for p in (RS_TCP, RS_HTTP, BASE_TCP, BASE_WS):
        wait_port(p)
    return rs, base


def bench(label, pid, port, mode, transport, conns, inflight, duration, warmup):
    cmd = ["taskset", "-c", "1", os.path.join(REL, "rsgame-bench"), "--mode", mode, "--transport", transport,
           "--addr", f"127.0.0.1:{port}", "-c", str(conns), "-w", str(inflight), "--payload", "64",
           "--duration", str(duration), "--warmup", str(warmup), "--server-pid", str(pid), "--label", label]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 120)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    print(line, flush=True)
    return json.loads(line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--idle-conns", type=int, default=5000)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--only", help="run only the cases of this mode (pingpong, flood); no idle memory")
    ap.add_argument("--bin-dir", help="use rsgame, rsgame-bench and bench-baseline from here, unbuilt")
    a = ap.parse_args()
    global REL
    if a.bin_dir:
        REL, a.no_build = os.path.abspath(a.bin_dir), True
    if a.quick:
        a.rounds, a.duration, a.idle_conns = 1, 3, 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "rsgame", "-p", "rsgame-bot"], cwd=ROOT, check=True)

    cases = [
        ("pingpong", "tcp", 100, 1),
        ("pingpong", "tcp", 1000, 1),
        ("pingpong", "ws", 1000, 1),
        ("flood", "tcp", 100, 16),
    ]
    if a.only:
        cases = [c for c in cases if c[0] == a.only]
    results = []
    # Idle memory first, on fresh processes, so earlier load does not pad the heap.
    for transport in () if a.only else ("tcp", "ws"):
        rs, base = start_servers()
        try:
            results.append(bench("rsgame", rs.pid, RS_TCP if transport == "tcp" else RS_HTTP, "idle", transport,
                                 a.idle_conns, 1, 1, 3))
            results.append(bench("baseline", base.pid, BASE_TCP if transport == "tcp" else BASE_WS, "idle",
                                 transport, a.idle_conns, 1, 1, 3))
        finally:
            rs.terminate(); base.terminate(); rs.wait(); base.wait()

    rs, base = start_servers()
    try:
        for r in range(a.rounds):
            for mode, transport, conns, w in cases:
                for label, pid, port in (("rsgame", rs.pid, RS_TCP if transport == "tcp" else RS_HTTP),
                                         ("baseline", base.pid, BASE_TCP if transport == "tcp" else BASE_WS)):
                    results.append(bench(label, pid, port, mode, transport, conns, w, a.duration, 1))
    finally:
        rs.terminate(); base.terminate(); rs.wait(); base.wait()

    print("\nsummary (medians over rounds; ratio = rsgame / baseline)")
    def med(label, **k):
        vals = [x for x in results if x.get("label") == label and all(x.get(kk) == vv for kk, vv in k.items())]
        return vals
    for mode, transport, conns, w in cases:
        rsr = med("rsgame", mode=mode, transport=transport, conns=conns)
        bsr = med("baseline", mode=mode, transport=transport, conns=conns)
        rps = statistics.median(x["per_sec"] for x in rsr)
        bps = statistics.median(x["per_sec"] for x in bsr)
        rcpu = statistics.median(x["server_cpu_us_per_msg"] or 0 for x in rsr)
        bcpu = statistics.median(x["server_cpu_us_per_msg"] or 0 for x in bsr)
        rp99 = statistics.median(x["p99_us"] for x in rsr)
        bp99 = statistics.median(x["p99_us"] for x in bsr)
        print(f"{mode:8} {transport:3} C={conns:<5} W={w:<3} rsgame {rps:>9.0f}/s  baseline {bps:>9.0f}/s  "
              f"ratio {rps / bps:.2f}  cpu/msg {rcpu:.2f} vs {bcpu:.2f} us (ratio {rcpu / bcpu if bcpu else 0:.2f})  "
              f"p99 {rp99} vs {bp99} us")
    for transport in () if a.only else ("tcp", "ws"):
        r = med("rsgame", mode="idle", transport=transport)[0]
        b = med("baseline", mode="idle", transport=transport)[0]
        print(f"idle     {transport:3} C={r['conns']:<5} rsgame {r['rss_per_conn_kib']:.2f} KiB/conn  "
              f"baseline {b['rss_per_conn_kib']:.2f} KiB/conn")


if __name__ == "__main__":
    sys.exit(main())
