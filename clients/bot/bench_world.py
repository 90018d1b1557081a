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
world, not password hashing.

Issue 25's scenarios (each run on a fresh server and an empty database, its accounts inserted
straight into the database — 15,000 in seconds — and logged in with minted tokens):

    python3 clients/bot/bench_world.py --open-world 2000,5000,10000   # ~45 others in view each
    python3 clients/bot/bench_world.py --town-square 2000,5000        # go-game's scene 1000
    python3 clients/bot/bench_world.py --open-world 5000 --storm 10000 --storm-rate 1000
    python3 clients/bot/bench_world.py --open-world 5000 --storm 10000 --storm-rate 1000 \\
        --database postgres://postgres@127.0.0.1:5432/rsgame_bench
    python3 clients/bot/bench_world.py --open-world 10000 --cores 2   # two server workers

- `--open-world N[,N…]`: one scene of side sqrt(500 × players) with 50-unit cells, so each
  player has ~45 others in its nine cells (150 × 150 units); 2000 players: the 1000 × 1000
  scene above. New players spread over the whole scene (spawn radius just under half the
  side around the centre). With `--storm` the scene is sized for the players at the end
  (N + storm), so the density reaches ~45 in view once the storm is in.
- `--town-square N[,N…]`: go-game's scene 1000 as services/world/sample/world.yaml has it
  (325 × 325, 32.5-unit cells, its go-game grid and respawn point), without its monsters,
  every new player within 25 units of the respawn point; the bots walk over 85,75–410,400.
- `--storm N --storm-rate R`: once the base population is in and the measured window has
  begun, N more players log in at R a second and walk like the others (rsgame-bot --storm);
  the login figures are then the storm's. With `--storm-still` they stand where they arrive
  (and read what they see): the storm then measures the login path beside the base
  population's moves, not a world grown by N more walkers.
- `--database URL`: the server on this database instead of a fresh SQLite file, e.g.
  postgres://postgres@127.0.0.1:5432/rsgame_bench (on 127.0.0.1; the name must contain
  "bench": the script drops and creates it with psql around every run so each starts empty).
- `--cores 1|2`: the server pinned to core 0, or to cores 0 and 1 (tokio sizes its worker
  pool by the affinity mask). The bots stay on core 1 either way: with 2 they share core 1
  with the server, so compare the server's CPU per player and per delivered update, not the
  latencies.
- `--set KEY=VALUE` (repeatable): a server setting on top of the bench's, as the
  configuration file spells it (database.max_open=4 becomes RSGAME_DATABASE__MAX_OPEN=4).
- `--observers K`: bots that decode every MoveResp and time move → seen (rsgame-bot's default:
  all up to 1000 players, 200 beyond).

The server's output (warn level, slow query threshold lowered to 100 ms) goes to a file in
the run's folder: the summary counts its `slow query` lines, its `database is locked` lines
and the slowest query's took_ms. Each scenario prints one JSON line per run, then a markdown
table of medians over `--rounds` (errors summed): players, in (at the window's end), not in
when the window began, dropped, login p50/p99, move → seen p50/p99/max, entity updates/s,
MiB/s to the bots, server CPU, RSS, slow queries, locked, slowest query, errors. `--keep`
keeps the work folder (logs, databases, the bots' reports).

Traffic goes to 127.0.0.0/8 only; every run ends by itself (a bot run that overstays its
time is killed, the server stopped).
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gate import port_free, wait_port  # noqa: E402  (helpers for both benchmarks)

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


def open_world(players):
    """The open world for this many players: 50-unit cells, so a player's nine cells cover
    150 x 150 units; a side of sqrt(players x 150^2 / 45) = sqrt(500 players) leaves ~45
    others in them. Returns the world file and the bots' area."""
    side = round(math.sqrt(500 * players))
    half = side / 2
    world = f"""
scenes:
  - id: 1000
    name: Open world
    bounds: {{ min_x: 0, min_z: 0, max_x: {side}, max_z: {side} }}
    cell: 50
    respawn: {{ x: {half:g}, z: {half:g} }}
    spawn_radius: {round(side * 0.49)}
"""
    return world, f"0,0,{side},{side}"


# go-game's scene 1000 as services/world/sample/world.yaml has it (bounds, cell, go-game grid,
# respawn point, safe zone, regeneration), without its monsters: every new player within 25
# units of the respawn point.
TOWN_SQUARE = """
scenes:
  - id: 1000
    name: Town square
    bounds: { min_x: 85, min_z: 75, max_x: 410, max_z: 400 }
    cell: 32.5
    go_game_grid: { cols: 10, rows: 20 }
    respawn: { x: 185, z: 159 }
    spawn_radius: 25
    pvp: false
    safe_radius: 30
    regen: { per_sec: 2, after_secs: 5 }
"""
TOWN_SQUARE_AREA = "85,75,410,400"


class Database:
    """Where a server keeps its data: a fresh SQLite file in the run's folder, or (with a
    postgres:// URL) a PostgreSQL database on this machine, dropped and created empty with
    psql before a run and dropped after it."""

    def __init__(self, url=None):
        self.url = url
        self.sqlite_path = None
        if url is None:
            return
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("postgres", "postgresql"):
            raise SystemExit(f"--database: a postgres:// URL, not {url}")
        if u.hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit(f"--database: the bench talks to 127.0.0.1 only, not {u.hostname}")
        self.name = u.path.lstrip("/")
        # The script drops this database: a name that says it is a bench's, and nothing to quote.
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.name) or "bench" not in self.name:
            raise SystemExit(f"--database: the database name must contain 'bench' (it is dropped), not {self.name!r}")
        self.psql_args = ["psql", "-h", u.hostname, "-p", str(u.port or 5432), "-U", u.username or "postgres",
                          "-v", "ON_ERROR_STOP=1", "-q", "-tA"]
        self.psql_env = dict(os.environ)
        if u.password:
            self.psql_env["PGPASSWORD"] = urllib.parse.unquote(u.password)

    def psql(self, db, sql):
        out = subprocess.run(self.psql_args + ["-d", db, "-c", sql], env=self.psql_env, check=True,
                             stdout=subprocess.PIPE, timeout=300)
        return out.stdout.decode().strip()

    def fresh(self, folder):
        """An empty database for a run in `folder`; returns the server's URL for it."""
        if self.url is None:
            self.sqlite_path = os.path.join(folder, "bench.db")
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.sqlite_path + suffix):
                    os.remove(self.sqlite_path + suffix)
            return f"sqlite://{self.sqlite_path}?mode=rwc"
        self.drop()
        self.psql("postgres", f'CREATE DATABASE "{self.name}"')
        return self.url

    def drop(self):
        if self.url is not None:
            self.psql("postgres", f'DROP DATABASE IF EXISTS "{self.name}"')

    def add_accounts(self, n, prefix):
        """Inserts n accounts PREFIX0… straight into mem_user (REST would spend n argon2id
        hashes) once the server has made its tables; returns the first id (they follow on)."""
        now = int(time.time())
        if self.url is None:
            import sqlite3
            db = sqlite3.connect(self.sqlite_path, timeout=30)
            # A password no login can match: these accounts only ever use minted tokens.
            db.executemany("INSERT INTO mem_user (username, password, nickname, created_at, updated_at) "
                           "VALUES (?, '!', ?, ?, ?)", ((f"{prefix}{i}", f"{prefix}{i}", now, now) for i in range(n)))
            db.commit()
            first, last, count = db.execute("SELECT MIN(id), MAX(id), COUNT(*) FROM mem_user WHERE username LIKE ?",
                                            (prefix + "%",)).fetchone()
            db.close()
        else:
            self.psql(self.name, "INSERT INTO mem_user (username, password, nickname, created_at, updated_at) "
                                 f"SELECT '{prefix}' || g, '!', '{prefix}' || g, {now}, {now} "
                                 f"FROM generate_series(0, {n - 1}) AS g")
            # Fresh statistics, as a database that grew to this size would have.
            self.psql(self.name, "ANALYZE mem_user")
            first, last, count = (int(v) for v in self.psql(
                self.name, f"SELECT MIN(id), MAX(id), COUNT(*) FROM mem_user WHERE username LIKE '{prefix}%'").split("|"))
        # The bots take ids first, first + 1…: they must be one run of ids.
        if count != n or last - first + 1 != n:
            raise SystemExit(f"accounts: {count} of {n} inserted, ids {first}..{last}")
        return first


# `--set KEY=VALUE` settings for the server (e.g. database.max_open=4), on top of the bench's.
SETTINGS = {}


def start_server(workdir, db_url=None, cores=1, log=None):
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
        "RSGAME_DATABASE__URL": db_url or f"sqlite://{workdir}/bench.db?mode=rwc",
        # Every query over 100 ms is logged (issue 25's bound for a login storm).
        "RSGAME_DATABASE__SLOW_QUERY_MS": "100",
        "RSGAME_GAME__DATA_DIR": os.path.join(workdir, "game"),
        "RSGAME_AUTH__JWT_SECRET": SECRET,
        "RSGAME_RPC__USERCENTER_PORT": "0", "RSGAME_RPC__BASIC_PORT": "0", "RSGAME_RPC__GAME_PORT": "0",
        "RSGAME_LOG__LEVEL": "warn",
        "RSGAME_WORLD__RECONNECT_GRACE_SECS": "1",
        # Thousands of bots sign up from one address: the stranger's limits stay off here.
        "RSGAME_GOVERNANCE__PUBLIC_RATE_PER_SEC": "0",
        "RSGAME_USERCENTER__REGISTER_CAPTCHA_AFTER_PER_IP": "0",
    })
    env.update({"RSGAME_" + k.upper().replace(".", "__"): v for k, v in SETTINGS.items()})
    # The server's output (warn and worse) to a file: slow queries and locked databases are
    # counted from it.
    for port in (HTTP, TCP):
        port_free(port)
    out = open(log or os.path.join(workdir, "server.log"), "ab")
    cpus = "0" if cores == 1 else "0,1"
    p = subprocess.Popen(["taskset", "-c", cpus, os.path.join(REL, "rsgame"), "serve"], env=env,
                         stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    out.close()
    try:
        wait_port(HTTP)
        wait_port(TCP)
    except SystemExit:
        stop(p)
        raise
    return p


ANSI = re.compile(r"\x1b\[[0-9;]*m")
TOOK_MS = re.compile(r"took_ms\W{1,3}(\d+)")


def log_figures(path):
    """What a server log says about its database: slow queries (and the slowest one's
    took_ms), and SQLite's `database is locked` errors."""
    slow = locked = 0
    slowest = None
    try:
        with open(path, errors="replace") as f:
            for line in f:
                line = ANSI.sub("", line)
                if "slow query" in line:
                    slow += 1
                    m = TOOK_MS.search(line)
                    if m:
                        slowest = max(slowest or 0, int(m.group(1)))
                if "database is locked" in line:
                    locked += 1
    except OSError:
        pass
    return {"slow_queries": slow, "db_locked": locked, "slowest_query_ms": slowest}


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


def bot(args, pid, extra, timeout=None, log=None):
    cmd = ["taskset", "-c", "1", os.path.join(REL, "rsgame-bot"), "--http", f"127.0.0.1:{HTTP}",
           "--gate", f"127.0.0.1:{TCP}", "--server-pid", str(pid), "--metrics"] + extra
    err = open(log, "ab") if log and not args.verbose else None
    try:
        # Past `timeout` the bots are killed (subprocess.run does it): a run ends by itself.
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, timeout=timeout,
                             stderr=sys.stderr if args.verbose else (err or subprocess.DEVNULL))
    finally:
        if err:
            err.close()
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def counts_of(text):
    return [int(c) for c in text.split(",") if c.strip()] if text else []


def prepare(folder, world):
    """A server's folder: the game's sample data, and this world."""
    os.makedirs(os.path.join(folder, "game"))
    sample = os.path.join(ROOT, "services", "game", "sample")
    for f in os.listdir(sample):
        shutil.copy(os.path.join(sample, f), os.path.join(folder, "game", f))
    with open(os.path.join(folder, "game", "world.yaml"), "w") as f:
        f.write(world)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--counts", default="500,1000,2000")
    ap.add_argument("--idle", type=int, default=0, help="instead: this many idle logged-in sessions")
    ap.add_argument("--idle-transport", choices=["tcp", "ws", "kcp"], default="tcp")
    ap.add_argument("--open-world", metavar="N[,N…]", help="instead: open worlds sized for ~45 players in view")
    ap.add_argument("--town-square", metavar="N[,N…]", help="instead: N players around go-game's respawn point")
    ap.add_argument("--storm", type=int, default=0, help="with a scenario: this many more log in during the window")
    ap.add_argument("--storm-rate", type=int, default=1000, help="the storm's logins per second")
    ap.add_argument("--storm-still", action="store_true", help="the storm's players stand where they arrive")
    ap.add_argument("--connect-rate", type=int, default=1000, help="the base population's logins per second")
    ap.add_argument("--observers", type=int, help="bots timing move → seen (rsgame-bot's default otherwise)")
    ap.add_argument("--database", metavar="URL", help="postgres://…@127.0.0.1/…bench… instead of SQLite")
    ap.add_argument("--cores", type=int, choices=[1, 2], default=1, help="server cores: 0, or 0 and 1")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, databases)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--bin-dir", help="use rsgame and rsgame-bot from here, unbuilt")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a server setting on top of the bench's, e.g. database.max_open=4")
    args = ap.parse_args()
    global REL
    for kv in args.set:
        key, eq, value = kv.partition("=")
        if not eq or not re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", key):
            raise SystemExit(f"--set: KEY=VALUE with a dotted key (database.max_open=4), not {kv!r}")
        SETTINGS[key] = value
    counts = [200] if args.quick else counts_of(args.counts)
    rounds = 1 if args.quick else args.rounds
    duration = 5 if args.quick else args.duration
    scenarios = ([("open world", n) for n in counts_of(args.open_world)]
                 + [("town square", n) for n in counts_of(args.town_square)])
    if args.storm and not scenarios:
        raise SystemExit("--storm needs a base population: --open-world or --town-square")
    if args.idle and scenarios:
        raise SystemExit("--idle or the scenarios, not both")
    db = Database(args.database)
    if args.bin_dir:
        REL = os.path.abspath(args.bin_dir)
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "rsgame", "-p", "rsgame-bot"], cwd=ROOT, check=True)

    workdir = tempfile.mkdtemp(prefix="rsgame-bench-world-")
    try:
        raise_fd_limit()
        if scenarios:
            return run_scenarios(args, db, workdir, scenarios, rounds, duration)
        prepare(workdir, IDLE_WORLD if args.idle else WORLD)
        srv = start_server(workdir, db.fresh(workdir), args.cores)
        try:
            if args.idle:
                return idle(args, srv, workdir, db)
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
                        "--first-user", "1", "--connect-rate", str(args.connect_rate)]
                        + (["--observers", str(args.observers)] if args.observers is not None else []))
                    rep["round"] = r
                    print(json.dumps(rep))
                    results[c].append(rep)
                    time.sleep(3)  # the reconnect grace ends; the scene empties
        finally:
            stop(srv)
            db.drop()
        print("\n| players | tick p50 ms | tick p99 ms | tick max ms | entity updates/s | messages/s (bots) | server CPU (cores) | RSS MiB "
              "| move → seen p50 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for c in counts:
            rs = results[c]
            med = lambda k: statistics.median([x[k] for x in rs if x.get(k) is not None]) if any(x.get(k) is not None for x in rs) else None
            print(f"| {c} | {med('tick_p50_ms')} | {med('tick_p99_ms')} | {med('tick_max_ms')} | {med('entity_updates_per_s')} "
                  f"| {med('messages_per_s')} | {med('server_cpu_cores')} | {med('server_rss_mib')} "
                  f"| {med('seen_p50_ms')} | {med('seen_p99_ms')} | {sum(x['errors'] for x in rs)} |")
        lf = log_figures(os.path.join(workdir, "server.log"))
        print(f"\nserver log: {lf['slow_queries']} slow queries (over 100 ms; slowest {lf['slowest_query_ms']} ms), "
              f"{lf['db_locked']} 'database is locked'")
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_scenarios(args, db, workdir, scenarios, rounds, duration):
    """Issue 25's scenarios: every run on a fresh server and an empty database; rounds run
    the scenarios in turn (a, b, a, b…) so each sees the same machine noise."""
    results = {sc: [] for sc in scenarios}
    for r in range(rounds):
        for kind, n in scenarios:
            if kind == "open world":
                world, area = open_world(n + args.storm)
            else:
                world, area = TOWN_SQUARE, TOWN_SQUARE_AREA
            folder = os.path.join(workdir, f"{kind.replace(' ', '-')}-{n}-round{r}")
            prepare(folder, world)
            print(f"{kind}, {n} players{f' + a storm of {args.storm}' if args.storm else ''}, round {r + 1}/{rounds}…",
                  file=sys.stderr)
            rep = run_one(args, db, folder, n, area, duration)
            if rep is not None:
                rep.update(round=r, scenario=kind, players=n)
                print(json.dumps(rep), flush=True)
                results[(kind, n)].append(rep)
            time.sleep(3)  # the sockets of the run before wind down
    summary(args, scenarios, results)


def run_one(args, db, folder, n, area, duration):
    """One run: a server on an empty database with n (+ storm) accounts, the bots, the
    server's log read. None when the bots failed or overstayed (then killed)."""
    log = os.path.join(folder, "server.log")
    srv = start_server(folder, db.fresh(folder), args.cores, log)
    rep = None
    try:
        first = db.add_accounts(n + args.storm, "bench")
        extra = ["--bots", str(n), "--duration", str(duration), "--scenario", "walk", "--move-hz", "10",
                 "--area", area, "--mint-secret", SECRET, "--first-user", str(first),
                 "--connect-rate", str(args.connect_rate),
                 # Thousands of sockets from 16 source addresses: past one address's ports,
                 # and the runs before's TIME_WAITs.
                 "--sources", "16"]
        if args.storm:
            extra += ["--storm", str(args.storm), "--storm-rate", str(args.storm_rate)]
            if args.storm_still:
                extra.append("--storm-still")
        if args.observers is not None:
            extra += ["--observers", str(args.observers)]
        # Logging in, the 3 s warm-up, the window (the storm's and 3 s more at least), the
        # bots' 15 s to finish, and a margin; past it the bots are killed.
        storm_secs = args.storm / max(args.storm_rate, 1) + 3 if args.storm else 0
        limit = n / max(args.connect_rate, 1) + 3 + max(duration, storm_secs) + 15 + 120
        try:
            rep = bot(args, srv.pid, extra, timeout=limit, log=os.path.join(folder, "bot.log"))
        except subprocess.TimeoutExpired:
            print(f"the bots overstayed {limit:.0f} s and were stopped; run left out", file=sys.stderr)
        except (subprocess.CalledProcessError, ValueError, IndexError) as e:
            print(f"the bots failed ({e}); run left out (see {folder}/bot.log with --keep)", file=sys.stderr)
    finally:
        stop(srv)
        db.drop()
    if rep is not None:
        rep.update(log_figures(log))
    return rep


def summary(args, scenarios, results):
    def fmt(v, nd=None):
        if v is None:
            return "—"
        return f"{v:,.{nd}f}" if nd is not None else f"{v:,}"

    rounds = max((len(v) for v in results.values()), default=0)
    where = "core 0" if args.cores == 1 else "cores 0 and 1 (the bots share core 1)"
    still = ", standing where they arrive" if args.storm_still else ""
    storm = (f"; a storm of {args.storm:,} logins at {args.storm_rate:,}/s{still} (login figures: the storm's)"
             if args.storm else "")
    print(f"\nMedians of {rounds} rounds; server on {where}, bots on core 1; "
          f"{'PostgreSQL' if args.database else 'SQLite'}{storm}.\n")
    print("| scenario | players | in | not in at start | dropped | login timeouts | login p50 ms | login p99 ms "
          "| move → seen p50 ms | p99 ms | max ms | entity updates/s | MiB/s to bots | server CPU (cores) | RSS MiB "
          "| slow queries | db locked | slowest query ms | errors |")
    print("|" + "---|" * 19)
    for kind, n in scenarios:
        rs = results[(kind, n)]
        players = f"{n:,} + {args.storm:,}" if args.storm else f"{n:,}"
        if not rs:
            print(f"| {kind} | {players} | no run completed |" + " |" * 16)
            continue

        def med(k):
            vs = [x[k] for x in rs if x.get(k) is not None]
            if not vs:
                return None
            m = statistics.median(vs)
            return int(m) if float(m).is_integer() else m

        mib = med("bytes_in_per_s")
        print(f"| {kind} | {players} | {fmt(med('in_at_end'))} | {fmt(med('not_in_at_start'))} | {fmt(med('dropped'))} "
              f"| {fmt(med('login_timeouts'))} | {fmt(med('login_p50_ms'))} | {fmt(med('login_p99_ms'))} "
              f"| {fmt(med('seen_p50_ms'))} | {fmt(med('seen_p99_ms'))} | {fmt(med('seen_max_ms'))} "
              f"| {fmt(med('entity_updates_per_s'))} | {fmt(None if mib is None else mib / 2**20, 1)} "
              f"| {fmt(med('server_cpu_cores'))} | {fmt(med('server_rss_mib'))} | {fmt(med('slow_queries'))} "
              f"| {fmt(med('db_locked'))} | {fmt(med('slowest_query_ms'))} | {sum(x['errors'] for x in rs):,} |")


def idle(args, srv, workdir, db):
    """N logged-in idle sessions: accounts inserted straight into the bench database (REST
    would spend N argon2id hashes), tokens minted with the bench key, 64 source addresses."""
    n = args.idle
    first = db.add_accounts(n, "idle")
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
    # Every reading, for what the sessions hold once the login burst is over: the last ones
    # (the bots idle for 30 s after the last login, and the server trims its free pages
    # every 10 s).
    samples = []
    while any(p.poll() is None for p in procs):
        time.sleep(2)
        try:
            r, h = rss_kib(), heap()[0]
        except OSError:
            break
        peak, peak_heap = max(peak, r), max(peak_heap, h)
        samples.append((r, h))
    reps = [json.loads(p.stdout.read().decode().strip().splitlines()[-1]) for p in procs]
    for r in reps:
        print(json.dumps(r))
    # Every session that logged in (some may still have been logging in when the bots'
    # measured window began: `connected` counts those in at its start).
    connected = sum(r.get("in_at_end", r["connected"]) for r in reps)
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
    # Held: the median of the last five readings while every session was in (the bots'
    # final 10 s). Marginal: held less what stays once every session is gone (the database's
    # page caches, the runtime's pools: fixed costs that do not grow with sessions).
    tail = samples[-6:-1] if len(samples) > 6 else samples
    held = statistics.median(x[0] for x in tail) if tail else peak
    held_heap = statistics.median(x[1] for x in tail) if tail else peak_heap
    per_held = (held - base) / max(connected, 1)
    per_marginal = (held - after) / max(connected, 1)
    heap_marginal = (held_heap - in_use) * 1024 / max(connected, 1)
    print(f"heap after: {in_use:.0f} MiB in use, {free:.0f} MiB free")
    print(f"\n{connected} of {n} idle sessions logged in over {args.idle_transport} in {took:.0f} s: "
          f"server RSS {base / 1024:.0f} MiB before, {peak / 1024:.0f} MiB peak, {after / 1024:.0f} MiB once all "
          f"were closed (memory given back {released:.0f} times): {per_session:.1f} KiB per session "
          f"(100,000 sessions at that rate: {(base + per_session * 100000) / 1024:.0f} MiB); heap in use "
          f"{heap_base:.0f} MiB before, {peak_heap:.0f} MiB peak: {(peak_heap - heap_base) * 1024 / max(connected, 1):.1f} KiB "
          f"per session; held with every session in, after the login burst: RSS {held / 1024:.0f} MiB "
          f"({per_held:.1f} KiB per session over the start, {per_marginal:.1f} KiB per session over the RSS "
          f"once all were gone), heap in use {held_heap:.0f} MiB ({heap_marginal:.1f} KiB per session over "
          f"what stayed once all were gone); {errors} errors; "
          f"ping rtt p50 {reps[0]['rtt_p50_ms']} ms p99 {reps[0]['rtt_p99_ms']} ms")
    stop(srv)


if __name__ == "__main__":
    main()
