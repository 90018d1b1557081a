//! Start-up and graceful shutdown of a serving process.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use rsgame_kit::http::{self, Readiness};
use rsgame_kit::shutdown::{self, HookOutcome, Shutdown};
use rsgame_kit::telemetry::{self, TelemetryError};
use tokio::time::Instant;

use crate::roles::Role;

/// Why a process could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Logs, metrics or trace export could not start.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The HTTP port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// host:port.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The gate could not start.
    #[error(transparent)]
    Gate(#[from] rsgame_gate::GateError),
    /// TLS is configured but unusable.
    #[error(transparent)]
    Tls(#[from] rsgame_kit::tls::TlsError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] rsgame_store::StoreError),
    /// A service or background worker could not start.
    #[error("service could not start: {0}")]
    Worker(String),
    /// The HTTP server stopped by itself.
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    /// Shutdown finished with work undone (a save that did not land, a hook cut off).
    #[error("shutdown incomplete: {0}")]
    Unfinished(String),
}

/// The services' logic, in process. (With the distributed issue a role will get remote
/// implementations of the traits it does not host.)
struct Services {
    auth: rsgame_kit::auth::Auth,
    /// What the REST API calls: in process, or remote when `rpc.usercenter_url` is set.
    usercenter: Arc<dyn rsgame_usercenter::UserCenter>,
    /// What the usercenter-rpc role serves.
    usercenter_local: Arc<dyn rsgame_usercenter::UserCenter>,
    /// The same, for what only the process that owns the accounts does (erasing closed ones).
    usercenter_owner: Arc<rsgame_usercenter::UserCenterLogic>,
    /// What the REST API and usercenter call: in process, or remote with `rpc.basic_url`.
    basic: Arc<dyn rsgame_basic::Basic>,
    /// Where the bytes of uploads and downloads are handled, and what basic-rpc serves.
    basic_local: rsgame_basic::BasicLogic,
    db: rsgame_store::Db,
    cache: rsgame_store::Cache,
    bus: rsgame_store::Bus,
}

impl Services {
    fn new(
        cfg: &Config,
        db: rsgame_store::Db,
        cache: rsgame_store::Cache,
        bus: rsgame_store::Bus,
        rpc: &rsgame_rpc::Connector,
    ) -> Result<Services, rsgame_kit::Error> {
        let jwt = Arc::new(rsgame_kit::auth::Jwt::from_config(&cfg.auth));
        let url_key = jwt.derive_key("basic file links");
        let basic_local =
            rsgame_basic::BasicLogic::new(db.clone(), cache.clone(), bus.clone(), cfg.basic.clone(), url_key)?;
        let basic: Arc<dyn rsgame_basic::Basic> = if cfg.rpc.basic_url.is_empty() {
            Arc::new(basic_local.clone())
        } else {
            Arc::new(rsgame_basic::rpc::RemoteBasic::connect(rpc, &cfg.rpc.basic_url)?)
        };
        let revocations = rsgame_usercenter::sessions::revocations(cache.clone());
        let usercenter_owner = Arc::new(rsgame_usercenter::UserCenterLogic::new(
            db.clone(),
            cache.clone(),
            bus.clone(),
            jwt.clone(),
            basic.clone(),
            cfg.usercenter.clone(),
        ));
        let usercenter_local: Arc<dyn rsgame_usercenter::UserCenter> = usercenter_owner.clone();
        let usercenter: Arc<dyn rsgame_usercenter::UserCenter> = if cfg.rpc.usercenter_url.is_empty() {
            usercenter_local.clone()
        } else {
            Arc::new(rsgame_usercenter::rpc::RemoteUserCenter::connect(rpc, &cfg.rpc.usercenter_url)?)
        };
        let auth = rsgame_kit::auth::Auth { jwt, revocations: Some(revocations) };
        Ok(Services { auth, usercenter, usercenter_local, usercenter_owner, basic, basic_local, db, cache, bus })
    }
}

/// Every hour (and a minute after start), erases the personal data of accounts closed longer
/// than `usercenter.delete_grace_days` ago. A failed sweep is logged and tried again at the
/// next one: nothing is marked erased that was not.
async fn erase_closed_accounts(usercenter: Arc<rsgame_usercenter::UserCenterLogic>, shutdown: Shutdown) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::select! {
            () = shutdown.triggered() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        match usercenter.erase_closed().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(accounts = n, "closed accounts erased"),
            Err(e) => tracing::error!(error = %e, "erasing closed accounts failed; trying again in an hour"),
        }
        next += Duration::from_secs(3600);
    }
}

/// Every hour (and a minute after start), purges inbox messages deleted or expired more than
/// `keep_days` ago. A failed sweep is logged and tried again at the next one.
async fn purge_mail(game: Arc<rsgame_game::GameLogic>, keep_days: u64, shutdown: Shutdown) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::select! {
            () = shutdown.triggered() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let before = rsgame_kit::time::unix_ms() - (keep_days as i64) * 86_400_000;
        match game.purge_mail(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(messages = n, "old inbox messages purged"),
            Err(e) => tracing::error!(error = %e, "purging old inbox messages failed; trying again in an hour"),
        }
        next += Duration::from_secs(3600);
    }
}

/// Binds a gRPC role's port, serves it until shutdown, and registers it in etcd when
/// discovery is on (revoked first thing at shutdown, so callers move away before it stops).
async fn serve_rpc(
    cfg: &Config,
    port: u16,
    name: &'static str,
    router: tonic::transport::server::Router<rsgame_rpc::Secured>,
    etcd: Option<&rsgame_rpc::etcd::Etcd>,
    shutdown: &Shutdown,
) -> Result<(), ServeError> {
    let addr = format!("{}:{port}", cfg.rpc.host);
    let listener =
        http::bind(&cfg.rpc.host, port).await.map_err(|source| ServeError::Bind { addr: addr.clone(), source })?;
    let bound = listener.local_addr().map_err(|source| ServeError::Bind { addr: addr.clone(), source })?;
    tracing::info!(service = name, addr = %bound, "grpc listening");
    // The server stops accepting a moment after the shutdown starts, so callers watching etcd
    // see the deregistration first; the shutdown then waits for its calls in flight.
    let stopping = Shutdown::new();
    let (sd, trigger) = (shutdown.clone(), stopping.clone());
    tokio::spawn(async move {
        sd.triggered().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.trigger();
    });
    let server = tokio::spawn(async move {
        if let Err(e) = rsgame_rpc::serve(listener, router, stopping).await {
            tracing::error!(service = name, error = %e, "grpc server stopped");
        }
    });
    shutdown.on_shutdown(format!("{name} grpc"), move || async move {
        let _ = server.await;
    });
    if let Some(etcd) = etcd {
        let host = advertise_host(cfg);
        let url = format!("http://{host}:{}", bound.port());
        let key =
            format!("{}{host}:{}", rsgame_rpc::discovery::service_prefix(&cfg.discovery.prefix, name), bound.port());
        let ttl = Duration::from_secs(cfg.discovery.lease_ttl_secs);
        rsgame_rpc::discovery::register(etcd.clone(), key, url, ttl, shutdown.clone());
    }
    Ok(())
}

/// The host other processes reach this one at.
/// The OpenAPI document of the player-facing routes (`rsgame openapi`, `docs/openapi.json`):
/// the same documents the served `/openapi.json` merges, without the console's.
pub fn client_openapi() -> String {
    let mut doc = utoipa::openapi::OpenApiBuilder::new().build();
    doc.merge(rsgame_usercenter::api::openapi());
    doc.merge(rsgame_basic::api::openapi());
    doc.merge(rsgame_game::api::openapi());
    doc.merge(rsgame_game::guild_api::openapi());
    let doc = rsgame_kit::apidoc::finish(doc);
    // Keys in one order, so the committed file is the same on every run: utoipa keeps
    // extensions in a hash map, whose order changes from one process to the next.
    let value = serde_json::to_value(&doc).map(sorted_keys).unwrap_or_default();
    serde_json::to_string_pretty(&value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn sorted_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

fn advertise_host(cfg: &Config) -> String {
    if !cfg.discovery.advertise_host.is_empty() {
        return cfg.discovery.advertise_host.clone();
    }
    match cfg.rpc.host.as_str() {
        // Bound to every interface: advertise the address this machine reaches etcd from
        // (a UDP "connect" sends nothing; it only picks the route), which is the address
        // other processes on that network reach it at (a container's, a pod's).
        "0.0.0.0" | "::" | "[::]" => outbound_ip(&cfg.discovery.etcd_endpoints).unwrap_or_else(|| "127.0.0.1".into()),
        h => h.into(),
    }
}

fn outbound_ip(endpoints: &[String]) -> Option<String> {
    use std::net::ToSocketAddrs as _;
    let url = endpoints.first()?;
    let authority = url.trim_start_matches("http://").trim_start_matches("https://").split('/').next()?;
    let target = authority.to_socket_addrs().ok()?.next()?;
    let bind = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let sock = std::net::UdpSocket::bind(bind).ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
}

/// The token every gRPC call carries and every gRPC server requires: `rpc.token`, or else
/// this installation's own, kept in `{app.data_dir}/rpc.token` (owner-only), so gRPC is never
/// open to whoever can reach the port — a local process or a co-tenant container included —
/// and processes sharing the data folder (the roles of one machine) agree on it.
fn rpc_token(cfg: &Config) -> Result<String, ServeError> {
    if !cfg.rpc.token.is_empty() {
        return Ok(cfg.rpc.token.expose().to_owned());
    }
    let path = cfg.app.data_dir.join("rpc.token");
    let token = rsgame_kit::auth::install_secret(&path)
        .map_err(|e| ServeError::Worker(format!("rpc.token is not set and {} is unusable: {e}", path.display())))?;
    tracing::info!(file = %path.display(), "rpc.token is not set: using this installation's token");
    Ok(token)
}

/// Every crate's metrics table: described to the recorder at start, printed by
/// `rsgame config metrics`.
pub const METRICS: [&[rsgame_kit::telemetry::metrics::Def]; 6] = [
    rsgame_kit::telemetry::metrics::METRICS,
    rsgame_gate::metrics::METRICS,
    rsgame_store::metrics::METRICS,
    rsgame_rpc::metrics::METRICS,
    rsgame_game::metrics::METRICS,
    rsgame_world::metrics::METRICS,
];

/// Runs the process until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn serve(cfg: Config, roles: Vec<Role>) -> Result<(), ServeError> {
    // Log shipping to Kafka (`log.kafka.*`) needs the store's producer; Elasticsearch is
    // built by telemetry itself. Neither contacts its sink here: a sink that is down costs
    // dropped, counted lines, never the start.
    let log_sinks = rsgame_store::logship::sinks(&cfg.log)?;
    let telemetry = telemetry::init_with_sinks(cfg.telemetry(), log_sinks)?;
    rsgame_kit::error::set_error_status(cfg.http.error_status);
    for table in METRICS {
        rsgame_kit::telemetry::metrics::describe(table);
    }
    let role_names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), roles = %role_names.join(","), "rsgame starting");
    tracing::debug!(config = %cfg.to_masked_yaml(), "effective configuration");

    let shutdown = Shutdown::new();
    let readiness = Readiness::new(&shutdown);
    let stop = shutdown.triggered();
    tokio::spawn(async move {
        tokio::select! {
            () = stop => {}
            () = rsgame_kit::memory::give_back_after_crowds() => {}
        }
    });
    let metrics = telemetry.metrics().map(|m| (m, cfg.metrics.path.clone()));
    let etcd = if cfg.discovery.etcd_endpoints.is_empty() {
        None
    } else {
        let etcd = rsgame_rpc::etcd::Etcd::connect(&cfg.discovery.etcd_endpoints)
            .map_err(|e| ServeError::Worker(format!("etcd: {e}")))?;
        tracing::info!(endpoints = ?cfg.discovery.etcd_endpoints, prefix = %cfg.discovery.prefix, "discovery through etcd");
        Some(etcd)
    };
    let rpc_token = rpc_token(&cfg)?;
    let rpc_tls = rsgame_rpc::tls::RpcTls::from_config(&cfg.rpc).map_err(|e| ServeError::Worker(e.to_string()))?;
    let connector = rsgame_rpc::Connector::new(
        rsgame_rpc::ClientOptions {
            token: rpc_token.clone(),
            timeout: Duration::from_millis(cfg.rpc.timeout_ms),
            retries: cfg.rpc.retries,
            breaker: cfg.rpc.breaker,
            tls: rpc_tls.clone(),
        },
        etcd.clone().map(|e| (e, cfg.discovery.prefix.clone())),
        shutdown.clone(),
    );
    // Every role keeps its data in the database (the game node: places, friends, chat).
    let services = {
        let db = open_database(&cfg).await?;
        if cfg.database.migrate_on_start {
            let applied = rsgame_store::migrate::migrate(&db).await?;
            tracing::info!(applied = ?applied, "database migrations");
        }
        let check = db.clone();
        readiness.add("database", move || {
            let db = check.clone();
            async move { db.ping().await.map_err(|e| e.to_string()) }
        });
        let closing = db.clone();
        shutdown.on_shutdown("database", move || async move { closing.close().await });
        let cache = rsgame_store::Cache::from_config(&cfg.cache).await?;
        tracing::info!(backend = cache.backend_name(), "cache ready");
        let check = cache.clone();
        readiness.add("cache", move || {
            let cache = check.clone();
            async move { cache.ping().await.map_err(|e| e.to_string()) }
        });
        let bus = rsgame_store::Bus::from_config(&cfg.bus).await?;
        tracing::info!(backend = bus.backend_name(), "bus ready");
        let check = bus.clone();
        readiness.add("bus", move || {
            let bus = check.clone();
            async move { bus.ping().await.map_err(|e| e.to_string()) }
        });
        Services::new(&cfg, db, cache, bus.clone(), &connector).map_err(|e| ServeError::Worker(e.to_string()))?
    };
    let s = &services;
    // The game economy in process, built once for whichever roles need it.
    let mut local_game: Option<Arc<rsgame_game::GameLogic>> = None;
    let mut game_logic = |shutdown: &Shutdown| -> Result<Arc<rsgame_game::GameLogic>, ServeError> {
        if let Some(g) = &local_game {
            return Ok(g.clone());
        }
        let data = rsgame_game::DataStore::open_or_seed(&cfg.game.data_dir)
            .map_err(|e| ServeError::Worker(format!("game data: {e}")))?;
        if cfg.game.reload_secs > 0 {
            data.watch(Duration::from_secs(cfg.game.reload_secs), shutdown.clone());
        }
        let logic = Arc::new(
            rsgame_game::GameLogic::new(s.db.clone(), data)
                .with_rank_cache(s.cache.clone())
                .with_events(s.bus.clone())
                .with_presence(s.cache.clone()),
        );
        if cfg.game.mail_keep_days > 0 {
            tokio::spawn(purge_mail(logic.clone(), cfg.game.mail_keep_days, shutdown.clone()));
        }
        local_game = Some(logic.clone());
        Ok(logic)
    };
    // Ops routes, the web client and the WebSocket upgrade stay outside governance (health
    // checks must answer under load; the gate has its own limits); the REST API goes in `api`.
    // Closed accounts' personal data is erased where accounts are kept: by the usercenter
    // role serving them, over gRPC or to its own REST API.
    let owns_accounts = roles
        .iter()
        .any(|r| *r == Role::UsercenterRpc || (*r == Role::UsercenterApi && cfg.rpc.usercenter_url.is_empty()));
    if owns_accounts {
        tokio::spawn(erase_closed_accounts(s.usercenter_owner.clone(), shutdown.clone()));
    }
    let mut router = http::ops_router(readiness, metrics);
    let mut console: Option<axum::Router> = None;
    let mut api = axum::Router::new();
    let mut apidoc = utoipa::openapi::OpenApiBuilder::new().build();
    for role in &roles {
        match role {
            Role::GameNode => {
                let game: Arc<dyn rsgame_game::Game> = if cfg.rpc.game_url.is_empty() {
                    game_logic(&shutdown)?
                } else {
                    Arc::new(
                        rsgame_game::rpc::RemoteGame::connect(&connector, &cfg.rpc.game_url)
                            .map_err(|e| ServeError::Worker(e.to_string()))?,
                    )
                };
                let rsgame_world::data::WorldData { scenes, modes } =
                    rsgame_world::data::load(std::path::Path::new(&cfg.game.data_dir), &cfg.world)
                        .map_err(|e| ServeError::Worker(format!("world data: {e}")))?;
                let scene_names: Vec<String> = scenes.iter().map(|s| s.name.clone()).collect();
                // One node among several: presence, chat and kicks cross nodes.
                let clustered = etcd.is_some() || !cfg.node.id.is_empty();
                let node_id = crate::nodes::node_id(&cfg);
                let cluster = clustered.then(|| {
                    let id = node_id.clone();
                    tracing::info!(node = %id, "game node in a cluster");
                    let ttl = Duration::from_secs(cfg.node.presence_ttl_secs);
                    // A match's room goes to the least loaded node etcd lists (else the node
                    // that formed the match).
                    let nodes = etcd.as_ref().map(|etcd| {
                        let dir = crate::nodes::NodeDirectory::new(&cfg, etcd.clone(), s.cache.clone(), &shutdown);
                        dir as Arc<dyn rsgame_world::cluster::Nodes>
                    });
                    Arc::new(
                        rsgame_world::cluster::Cluster::new(id, s.bus.clone(), s.cache.clone(), ttl)
                            .with_nodes(crate::nodes::public_url(&cfg), nodes),
                    )
                });
                let world = rsgame_world::World::start(rsgame_world::WorldDeps {
                    cfg: cfg.world.clone(),
                    scenes,
                    modes,
                    auth: s.auth.clone(),
                    game,
                    directory: Arc::new(crate::directory::UsercenterDirectory(s.usercenter.clone())),
                    db: s.db.clone(),
                    cluster,
                    presence: Some(s.cache.clone()),
                    accounts: Some((s.bus.clone(), node_id)),
                });
                if let Some(etcd) = &etcd {
                    crate::nodes::register(&cfg, etcd.clone(), world.clone(), scene_names, &shutdown)
                        .await
                        .map_err(ServeError::Worker)?;
                }
                let mut routes = rsgame_gate::Router::builder();
                world.register(&mut routes).map_err(|e| ServeError::Worker(e.to_string()))?;
                let hook = world.clone();
                let gate = rsgame_gate::Gate::builder(&cfg.gate, &cfg.tls, routes.build())
                    .on_disconnect(move |session, reason| hook.on_disconnect(session, reason))
                    .start(&shutdown)
                    .await?;
                // Registered after the database's close hook, so it runs before it (hooks
                // run newest first): every place and hit point is written, then the pool closes.
                let flushing = world.clone();
                shutdown.on_shutdown_checked("world", move || async move {
                    flushing.flush().await.map_err(|e| e.to_string())
                });
                router = router.merge(gate.ws_routes());
            }
            Role::UsercenterApi => {
                let servers: Arc<dyn rsgame_usercenter::api::GameServers> = match &etcd {
                    Some(etcd) => crate::nodes::NodeDirectory::new(&cfg, etcd.clone(), s.cache.clone(), &shutdown),
                    None => Arc::new(cfg.usercenter.game_servers.clone()),
                };
                api = api.merge(rsgame_usercenter::api::router(s.usercenter.clone(), s.auth.clone(), servers));
                apidoc.merge(rsgame_usercenter::api::openapi());
                if cfg.http.web_client {
                    router = router.merge(crate::web::router());
                }
            }
            Role::BasicApi => {
                {
                    api = api.merge(rsgame_basic::api::router(s.basic.clone(), s.basic_local.clone(), s.auth.clone()));
                    apidoc.merge(rsgame_basic::api::openapi());
                    // The worker that sends verification codes runs beside the API that
                    // queues them (a dedicated worker role can come with the distributed issue).
                    let provider = rsgame_basic::code::provider(&cfg.basic);
                    rsgame_basic::code::run_worker(s.basic_local.bus().clone(), provider)
                        .await
                        .map_err(|e| ServeError::Worker(e.to_string()))?;
                }
            }
            Role::UsercenterRpc => {
                let svc = rsgame_usercenter::rpc::UsercenterRpc::service(s.usercenter_local.clone());
                let router = rsgame_rpc::server(&rpc_token, &cfg.governance, rpc_tls.as_ref())
                    .map_err(|e| ServeError::Worker(e.to_string()))?
                    .add_service(svc);
                serve_rpc(&cfg, cfg.rpc.usercenter_port, "usercenter", router, etcd.as_ref(), &shutdown).await?;
            }
            Role::BasicRpc => {
                let svc = rsgame_basic::rpc::BasicRpc::service(Arc::new(s.basic_local.clone()));
                let router = rsgame_rpc::server(&rpc_token, &cfg.governance, rpc_tls.as_ref())
                    .map_err(|e| ServeError::Worker(e.to_string()))?
                    .add_service(svc);
                serve_rpc(&cfg, cfg.rpc.basic_port, "basic", router, etcd.as_ref(), &shutdown).await?;
            }
            Role::GameApi => {
                let logic = game_logic(&shutdown)?;
                let game: Arc<dyn rsgame_game::Game> = logic.clone();
                let svc = rsgame_game::rpc::GameRpc::service(game.clone());
                let grpc = rsgame_rpc::server(&rpc_token, &cfg.governance, rpc_tls.as_ref())
                    .map_err(|e| ServeError::Worker(e.to_string()))?
                    .add_service(svc);
                serve_rpc(&cfg, cfg.rpc.game_port, "game", grpc, etcd.as_ref(), &shutdown).await?;
                api = api.merge(rsgame_game::api::router(
                    game,
                    s.auth.clone(),
                    cfg.game.admin_token.expose(),
                    Some(s.bus.clone()),
                ));
                apidoc.merge(rsgame_game::api::openapi());
                api = api.merge(rsgame_game::guild_api::router(logic, s.auth.clone(), Some(s.bus.clone())));
                apidoc.merge(rsgame_game::guild_api::openapi());
            }
            Role::Console if cfg.console.enabled => {
                // Acts through the owners' logic: grants through the game's ledger, bans
                // through the usercenter (which ends sessions on every node).
                let mut logic = rsgame_console::Console::new(
                    s.db.clone(),
                    s.cache.clone(),
                    cfg.console.clone(),
                    s.usercenter_owner.clone(),
                    game_logic(&shutdown)?,
                );
                if let Some(m) = telemetry.metrics() {
                    logic = logic.with_metrics(Arc::new(move || m.render()), shutdown.clone());
                }
                console = Some(rsgame_console::api::router(logic).merge(crate::console_web::router()));
                apidoc.merge(rsgame_console::api::openapi());
            }
            Role::Console => tracing::info!("console.enabled is false: no console listener"),
        }
    }
    let api = rsgame_kit::governance::apply(api, &cfg.governance);
    let public: Vec<&'static str> = [rsgame_usercenter::api::PUBLIC_ROUTES, rsgame_basic::api::PUBLIC_ROUTES].concat();
    let api = rsgame_kit::governance::limit_public(api, &public, &cfg.governance);
    let router = http::finish(router.merge(api).merge(rsgame_kit::apidoc::router(apidoc)));
    // Outermost, so the access log, rate limits, login counters and the WebSocket gate all
    // see the client behind a trusted proxy.
    let proxies = rsgame_kit::proxy::TrustedProxies::parse(&cfg.http.trusted_proxies).map_err(ServeError::Worker)?;
    let router = rsgame_kit::proxy::layer(router, proxies);
    let tls = if cfg.tls.http {
        Some(rsgame_kit::tls::server_config(cfg.tls.cert_file.as_ref(), cfg.tls.key_file.as_ref(), false)?)
    } else {
        None
    };

    let addr = format!("{}:{}", cfg.http.host, cfg.http.port);
    let listener = http::bind(&cfg.http.host, cfg.http.port)
        .await
        .map_err(|source| ServeError::Bind { addr: addr.clone(), source })?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    tracing::info!(addr = %local, tls = tls.is_some(), "http listening");
    let limits = rsgame_kit::listen::ConnLimits::from_config(&cfg.http).map_err(ServeError::Worker)?;
    let mut server = tokio::spawn(rsgame_kit::listen::serve(listener, tls, router, shutdown.clone(), limits.clone()));
    if let Some(routes) = console {
        serve_console(&cfg, routes, &shutdown, limits).await?;
    }

    tokio::select! {
        sig = shutdown::signal() => tracing::info!(signal = sig, "shutdown requested"),
        res = &mut server => {
            let err = match res {
                Ok(Ok(())) => std::io::Error::other("stopped without a shutdown signal"),
                Ok(Err(e)) => e,
                Err(e) => std::io::Error::other(e.to_string()),
            };
            tracing::error!(error = %err, "http server stopped");
            telemetry.shutdown();
            return Err(ServeError::Http(err));
        }
    }
    // A second signal means "now": skip the grace period.
    tokio::spawn(async {
        let sig = shutdown::signal().await;
        eprintln!("{sig} again: exiting without waiting for shutdown to finish");
        std::process::exit(130);
    });

    shutdown.trigger();
    let grace = Duration::from_secs(cfg.shutdown.grace_secs);
    let deadline = Instant::now() + grace;
    match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(_) => tracing::info!("http drained"),
        Err(_) => {
            tracing::warn!(grace_secs = cfg.shutdown.grace_secs, "grace period over: dropping in-flight requests");
            server.abort();
        }
    }
    let outcomes = shutdown.run_hooks(deadline).await;
    let undone: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.is_done())
        .map(|o| match o {
            HookOutcome::Failed(name, reason) => format!("{name}: {reason}"),
            HookOutcome::TimedOut(name) => format!("{name}: cut off by the grace period"),
            HookOutcome::Skipped(name) => format!("{name}: never ran (grace period over)"),
            HookOutcome::Done(name) => name.clone(),
        })
        .collect();
    if !undone.is_empty() {
        tracing::error!(undone = ?undone, "rsgame stopped with work undone");
        telemetry.shutdown();
        return Err(ServeError::Unfinished(undone.join("; ")));
    }
    tracing::info!("rsgame stopped");
    telemetry.shutdown();
    Ok(())
}

/// The console on its own listener (`console.host:port`, loopback by default), so that a
/// studio can firewall it apart from the players' port.
async fn serve_console(
    cfg: &Config,
    routes: axum::Router,
    shutdown: &Shutdown,
    limits: rsgame_kit::listen::ConnLimits,
) -> Result<(), ServeError> {
    let addr = format!("{}:{}", cfg.console.host, cfg.console.port);
    let listener = http::bind(&cfg.console.host, cfg.console.port)
        .await
        .map_err(|source| ServeError::Bind { addr: addr.clone(), source })?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    tracing::info!(addr = %local, "console listening");
    let proxies = rsgame_kit::proxy::TrustedProxies::parse(&cfg.http.trusted_proxies).map_err(ServeError::Worker)?;
    let router = rsgame_kit::proxy::layer(http::finish(routes), proxies);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = rsgame_kit::listen::serve(listener, None, router, stop, limits).await {
            tracing::error!(error = %e, "console listener stopped");
        }
    });
    Ok(())
}

pub(crate) async fn open_database(cfg: &Config) -> Result<rsgame_store::Db, ServeError> {
    let db = rsgame_store::Db::connect(&cfg.database).await?;
    let masked = rsgame_kit::config::mask_url_password(&cfg.database.url).unwrap_or_else(|| cfg.database.url.clone());
    tracing::info!(backend = db.backend().as_str(), url = %masked, "database connected");
    Ok(db)
}

/// `rsgame check ledger`: balances against the ledger; an error when something does not add up.
pub async fn check_ledger(cfg: Config) -> Result<(), ServeError> {
    let db = open_database(&cfg).await?;
    let data =
        rsgame_game::DataStore::open_or_seed(&cfg.game.data_dir).map_err(|e| ServeError::Worker(e.to_string()))?;
    let game = rsgame_game::GameLogic::new(db.clone(), data);
    let found = game.check_ledger().await.map_err(|e| ServeError::Worker(e.to_string()));
    db.close().await;
    let found = found?;
    for m in &found {
        if m.balance != m.ledger {
            println!("user {} {}: balance {} but the ledger adds up to {}", m.user_id, m.asset, m.balance, m.ledger);
        } else {
            println!("user {} {}: balance {} is negative", m.user_id, m.asset, m.balance);
        }
    }
    if found.is_empty() {
        println!("ledger ok: every balance equals the sum of its ledger rows, and none is negative");
        Ok(())
    } else {
        Err(ServeError::Worker(format!("{} balances do not match the ledger", found.len())))
    }
}

/// Applies pending migrations and exits.
pub async fn migrate(cfg: Config) -> Result<(), ServeError> {
    let metrics = rsgame_kit::config::MetricsConfig { enabled: false, ..cfg.metrics.clone() };
    let telemetry = telemetry::init(telemetry::Settings { metrics: &metrics, ..cfg.telemetry() })?;
    let db = open_database(&cfg).await?;
    let result = rsgame_store::migrate::migrate(&db).await;
    db.close().await;
    match &result {
        Ok(v) if v.is_empty() => println!("database is up to date"),
        Ok(v) => println!("applied migrations {v:?}"),
        Err(_) => {}
    }
    telemetry.shutdown();
    result.map(|_| ()).map_err(ServeError::from)
}
