#!/usr/bin/env python3
"""World benchmark: N bots walking at 10 Hz in one scene of a 20 Hz world, server on one core.

Builds rsgame and rsgame-bot in release, starts the monolith pinned to core 0 (taskset) on a
fresh SQLite database with a bench world (scene 1000: 1000 x 1000 units, 50-unit AOI cells,
new players spread over the whole scene, no monsters), and runs rsgame-bot pinned to core 1
for each player count. The bot reads the scene's tick p50/p99/max (over the last 10 s) and
entity updates from /metrics, and the server's CPU time and memory from /proc. Rounds run
500, 1000, 2000, 500, 1000, 2000… so every count sees the same machine noise.

    python3 clients/bot/bench_world.py                 # 500, 1000, 2000; 20 s each; 2 rounds
    python3 clients/bot/bench_world.py --quick         # 200 players, 5 s, 1 round (smoke)
    python3 clients/bot/bench_world.py --idle 100000   # N logged-in idle sessions (KCP): memory

Accounts are registered over REST once (argon2id: about 90 per second here); later runs mint
tokens with the bench's signing key for those accounts (--mint-secret), so a run measures the
world, not password hashing. Traffic goes to 127.0.0.0/8 only; every run ends by itself.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gate import wait_port  # noqa: E402  (one helper for both benchmarks)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# `--bin-dir` runs another build's binaries (e.g. two builds of one commit, alternately).
REL = os.path.join(ROOT, "target", "release")
HTTP, TCP, KCP = 18890, 19000, 19001
SECRET = "bench-world-signing-key-0123456789abcdef"

# Idle sessions: a scene big enough that each player has a handful of others in view.
IDLE_WORLD = """
scenes:
  - id: 1000
    name: Idle
    bounds: { min_x: 0, min_z: 0, max_x: 40000, max_z: 40000 }
    cell: 100
    respawn: { x: 20000, z: 20000 }
    spawn_radius: 19990
"""

WORLD = """
scenes:
  - id: 1000
    name: Bench
    bounds: { min_x: 0, min_z: 0, max_x: 1000, max_z: 1000 }
    cell: 50
    respawn: { x: 500, z: 500 }
    spawn_radius: 490
"""


def start_server(workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RSGAME_") and k != "RUST_LOG"}
    env.update({
        "RSGAME_HTTP__HOST": "127.0.0.1", "RSGAME_HTTP__PORT": str(HTTP),
        "RSGAME_GATE__HOST": "127.0.0.1", "RSGAME_GATE__TCP_PORT": str(TCP),
        "RSGAME_GATE__KCP_PORT": str(KCP),
        # Many players from one address: lift the per-IP cap; keep the rest real.
        "RSGAME_GATE__MAX_CONNECTIONS_PER_IP": "0", "RSGAME_GATE__MAX_CONNECTIONS": "200000",
        "RSGAME_GATE__KCP__MAX_SESSIONS_PER_IP": "0", "RSGAME_GATE__KCP__MAX_SESSIONS": "200000",
        "RSGAME_GATE__OUTBOUND_QUEUE": "1024",
        # WebSocket sessions are HTTP connections until their upgrade.
        "RSGAME_HTTP__MAX_CONNECTIONS_PER_IP": "0", "RSGAME_HTTP__MAX_CONNECTIONS": "200000",
        "RSGAME_DATABASE__URL": f"sqlite://{workdir}/bench.db?mode=rwc",
        "RSGAME_GAME__DATA_DIR": os.path.join(workdir, "game"),
        "RSGAME_AUTH__JWT_SECRET": SECRET,
        "RSGAME_RPC__USERCENTER_PORT": "0", "RSGAME_RPC__BASIC_PORT": "0", "RSGAME_RPC__GAME_PORT": "0",
        "RSGAME_LOG__LEVEL": "warn",
        "RSGAME_WORLD__RECONNECT_GRACE_SECS": "1",
        # Thousands of bots sign up from one address: the stranger's limits stay off here.
        "RSGAME_GOVERNANCE__PUBLIC_RATE_PER_SEC": "0",
        "RSGAME_USERCENTER__REGISTER_CAPTCHA_AFTER_PER_IP": "0",
    })
    p = subprocess.Popen(["taskset", "-c", "0", os.path.join(REL, "rsgame"), "serve"], env=env,
                         stdout=subprocess.DEVNULL, cwd=workdir)
    wait_port(HTTP)
    wait_port(TCP)
    return p


def raise_fd_limit():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def bot(args, pid, extra):
    cmd = ["taskset", "-c", "1", os.path.join(REL, "rsgame-bot"), "--http", f"127.0.0.1:{HTTP}",
           "--gate", f"127.0.0.1:{TCP}", "--server-pid", str(pid), "--metrics"] + extra
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=sys.stderr if args.verbose else subprocess.DEVNULL)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--counts", default="500,1000,2000")
    ap.add_argument("--idle", type=int, default=0, help="instead: this many idle logged-in sessions")
    ap.add_argument("--idle-transport", choices=["tcp", "ws", "kcp"], default="tcp")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--bin-dir", help="use rsgame and rsgame-bot from here, unbuilt")
    args = ap.parse_args()
    global REL
    counts = [200] if args.quick else [int(c) for c in args.counts.split(",")]
    rounds = 1 if args.quick else args.rounds
    duration = 5 if args.quick else args.duration
    if args.bin_dir:
        REL = os.path.abspath(args.bin_dir)
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "rsgame", "-p", "rsgame-bot"], cwd=ROOT, check=True)

    workdir = tempfile.mkdtemp(prefix="rsgame-bench-world-")
    try:
        os.makedirs(os.path.join(workdir, "game"))
        sample = os.path.join(ROOT, "services", "game", "sample")
        for f in os.listdir(sample):
            shutil.copy(os.path.join(sample, f), os.path.join(workdir, "game", f))
        with open(os.path.join(workdir, "game", "world.yaml"), "w") as f:
            f.write(IDLE_WORLD if args.idle else WORLD)
        raise_fd_limit()
        srv = start_server(workdir)
        try:
            if args.idle:
                return idle(args, srv, workdir)
            top = max(counts)
            print(f"registering {top} accounts over REST…", file=sys.stderr)
            bot(args, srv.pid, ["--bots", str(top), "--duration", "0", "--scenario", "idle",
                                "--account-concurrency", "4"])
            results = {c: [] for c in counts}
            for r in range(rounds):
                for c in counts:
                    rep = bot(args, srv.pid, [
                        "--bots", str(c), "--duration", str(duration), "--scenario", "walk",
                        "--move-hz", "10", "--area", "0,0,1000,1000", "--mint-secret", SECRET,
                        "--first-user", "1", "--connect-rate", "1000"])
                    rep["round"] = r
                    print(json.dumps(rep))
                    results[c].append(rep)
                    time.sleep(3)  # the reconnect grace ends; the scene empties
        finally:
            stop(srv)
        print("\n| players | tick p50 ms | tick p99 ms | tick max ms | entity updates/s | messages/s (bots) | server CPU (cores) | RSS MiB | errors |")
        print("|---|---|---|---|---|---|---|---|---|")
        for c in counts:
            rs = results[c]
            med = lambda k: statistics.median([x[k] for x in rs if x.get(k) is not None]) if any(x.get(k) is not None for x in rs) else None
            print(f"| {c} | {med('tick_p50_ms')} | {med('tick_p99_ms')} | {med('tick_max_ms')} | {med('entity_updates_per_s')} "
                  f"| {med('messages_per_s')} | {med('server_cpu_cores')} | {med('server_rss_mib')} | {sum(x['errors'] for x in rs)} |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def idle(args, srv, workdir):
    """N logged-in idle sessions: accounts inserted straight into the bench database (REST
    would spend N argon2id hashes), tokens minted with the bench key, 64 source addresses."""
    import sqlite3
    n = args.idle
    db = sqlite3.connect(os.path.join(workdir, "bench.db"))
    now = int(time.time())
    # A password no login can match: these accounts only ever use minted tokens.
    db.executemany("INSERT INTO mem_user (username, password, nickname, created_at, updated_at) VALUES (?, '!', ?, ?, ?)",
                   ((f"idle{i}", f"idle{i}", now, now) for i in range(n)))
    db.commit()
    first = db.execute("SELECT MIN(id) FROM mem_user WHERE username LIKE 'idle%'").fetchone()[0]
    db.close()
    def rss_kib():
        with open(f"/proc/{srv.pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

    base = rss_kib()
    import urllib.request
    def heap():
        with urllib.request.urlopen(f"http://127.0.0.1:{HTTP}/metrics", timeout=5) as r:
            lines = r.read().decode().splitlines()
        gauge = lambda name: sum(float(l.split()[-1]) for l in lines if l.startswith(name + " "))
        return (gauge("process_heap_in_use_bytes") / 2**20, gauge("process_heap_free_bytes") / 2**20,
                gauge("process_memory_released_total"))
    print("heap before: %.0f MiB in use, %.0f MiB free" % heap()[:2])
    procs = []
    start = time.time()
    if args.idle_transport in ("tcp", "ws"):
        # One TCP socket per session on both sides (WebSocket: on the HTTP port): the count is
        # capped by the open-file limit.
        cmd = ["taskset", "-c", "1", os.path.join(REL, "rsgame-bot"), "--http", f"127.0.0.1:{HTTP}",
               "--gate", f"127.0.0.1:{TCP}", "--transport", args.idle_transport, "--bots", str(n), "--duration", "30",
               "--scenario", "idle", "--mint-secret", SECRET, "--first-user", str(first),
               "--connect-rate", "1000", "--sources", "16", "--server-pid", str(srv.pid)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr if args.verbose else subprocess.DEVNULL))
    else:
        # KCP: the server holds every session on one UDP socket; each bot process opens one
        # UDP socket per session, so sessions are split over several bot processes.
        per = 15000
        for k in range(0, n, per):
            cnt = min(per, n - k)
            cmd = ["taskset", "-c", "1", os.path.join(REL, "rsgame-bot"), "--http", f"127.0.0.1:{HTTP}",
                   "--gate", f"127.0.0.1:{KCP}", "--transport", "kcp", "--bots", str(cnt), "--duration", "30",
                   "--scenario", "idle", "--mint-secret", SECRET, "--first-user", str(first + k),
                   "--connect-rate", "200"]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr if args.verbose else subprocess.DEVNULL))
    # The server's memory is read while every session is in: the RSS (what the system sees,
    # the login burst's transient allocations included) and the heap in use (what the
    # sessions themselves hold, without the allocator's free pages).
    peak = 0
    peak_heap = 0.0
    heap_base = heap()[0]
    while any(p.poll() is None for p in procs):
        time.sleep(2)
        try:
            peak = max(peak, rss_kib())
            peak_heap = max(peak_heap, heap()[0])
        except OSError:
            break
    reps = [json.loads(p.stdout.read().decode().strip().splitlines()[-1]) for p in procs]
    for r in reps:
        print(json.dumps(r))
    connected = sum(r["connected"] for r in reps)
    errors = sum(r["errors"] for r in reps)
    per_session = (peak - base) / max(connected, 1)
    took = time.time() - start
    # The bots are gone: wait until the server has closed every session (a KCP session ends
    # at its heartbeat timeout) and let every player go, then see how much memory it gave back.
    def open_sessions():
        with urllib.request.urlopen(f"http://127.0.0.1:{HTTP}/metrics", timeout=5) as r:
            lines = r.read().decode().splitlines()
        # Sessions, and players the world still keeps for their reconnect grace.
        return sum(float(l.split()[-1]) for l in lines
                   if l.startswith("gate_connections{") or l.startswith("world_online_players "))
    deadline = time.time() + 120
    while open_sessions() > 0 and time.time() < deadline:
        time.sleep(2)
    # The server gives freed memory back on its own schedule (it looks every 10 s): two
    # of its rounds.
    time.sleep(22)
    after = rss_kib()
    in_use, free, released = heap()
    print(f"heap after: {in_use:.0f} MiB in use, {free:.0f} MiB free")
    print(f"\n{connected} of {n} idle sessions logged in over {args.idle_transport} in {took:.0f} s: "
          f"server RSS {base / 1024:.0f} MiB before, {peak / 1024:.0f} MiB peak, {after / 1024:.0f} MiB once all "
          f"were closed (memory given back {released:.0f} times): {per_session:.1f} KiB per session "
          f"(100,000 sessions at that rate: {(base + per_session * 100000) / 1024:.0f} MiB); heap in use "
          f"{heap_base:.0f} MiB before, {peak_heap:.0f} MiB peak: {(peak_heap - heap_base) * 1024 / max(connected, 1):.1f} KiB "
          f"per session; {errors} errors; "
          f"ping rtt p50 {reps[0]['rtt_p50_ms']} ms p99 {reps[0]['rtt_p99_ms']} ms")
    stop(srv)


if __name__ == "__main__":
    main()
