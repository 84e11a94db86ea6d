//! Starting and stopping a server: store, catalog, engine, sources and the HTTP listener.
//!
//! Shutdown order keeps the "nothing acknowledged is lost" invariant: the HTTP listener stops
//! taking requests (in-flight ones finish), then the engine stops its sources, writes what is
//! queued and fires the acks, then the store closes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use pdm_core::live::{AlignDefaults, JobRunner, Live, ModelFactory};
use pdm_core::webhook::{Dispatcher, SystemClock};
use pdm_core::{Catalog, Engine, Metrics, ShutdownTrigger, Source, Store};
use pdm_ingest::Intake;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use pdm_store::redact_url;

use crate::config::ServerConfig;
use crate::state::{AppState, DetectionState, PushSettings, WebhookState};
use crate::webhook_sender::HttpSender;

/// Opens the configured database and applies its migrations.
pub async fn open_store(config: &ServerConfig) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.effective_database_url();
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    let store = pdm_store::connect(&url, &config.store)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&url)))?;
    Ok(store)
}

/// Removes files of the attachments directory that no record names (a crash between writing
/// and recording one) once [`crate::files::SWEEP_GRACE`] old; a failure only warns.
async fn sweep_attachments(store: &dyn Store, files: &crate::files::FileDir) {
    let known = match store.attachment_files().await {
        Ok(k) => k.into_iter().collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the attachments: no sweep");
            return;
        }
    };
    let dir = files.clone();
    let swept =
        tokio::task::spawn_blocking(move || dir.sweep(&known, crate::files::SWEEP_GRACE)).await;
    match swept {
        Ok(Ok(n)) if n > 0 => {
            tracing::info!(files = n, "attachment files without a record removed")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot sweep the attachments directory"),
        Err(e) => tracing::warn!(error = %e, "the attachments sweep failed"),
    }
}

/// [`sweep_attachments`] every hour until `stop`: files whose records went by cascade (a
/// comment deleted while an upload to it landed) or whose upload was cut off.
async fn sweep_hourly(
    store: Arc<dyn Store>,
    files: crate::files::FileDir,
    mut stop: pdm_core::Shutdown,
) {
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(3_600)) => {}
        }
        sweep_attachments(&*store, &files).await;
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    state: AppState,
    engine: Engine,
    live: Option<Arc<Live>>,
    jobs: Option<JobRunner>,
    webhooks: Option<Dispatcher>,
    http_stop: ShutdownTrigger,
    http: JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the store, starts the engine (and MQTT ingestion when configured) and listens.
    pub async fn start(mut config: ServerConfig) -> anyhow::Result<Server> {
        config.check()?;
        let store = open_store(&config).await?;
        // The settings an admin changed win over the file's, for everything built below.
        let settings = crate::settings::SettingsHandle::load(&*store, &mut config)
            .await
            .context("cannot read the stored settings")?;
        let files = crate::files::FileDir::open(&config.data_dir).with_context(|| {
            format!(
                "cannot create the attachments directory under {}",
                config.data_dir.display()
            )
        })?;
        sweep_attachments(&*store, &files).await;
        let swept = files.clone();
        let catalog = Arc::new(
            Catalog::load(store.clone(), config.auto_register)
                .await
                .context("cannot load machines and sensors")?,
        );
        let metrics = Arc::new(Metrics::default());
        let factory: Arc<dyn ModelFactory> = Arc::new(pdm_detect::DetectFactory);
        // The bus and the alarms exist with or without live scoring: alarms stored earlier can
        // be acknowledged, and push clients connect either way.
        let webhooks = if config.webhooks.enabled {
            let sender = HttpSender::new(config.webhooks.allow_private_destinations)
                .context("cannot set up the webhook HTTP client")?
                .with_settings(settings.clone());
            Some(Dispatcher::start(
                store.clone(),
                Arc::new(sender),
                Arc::new(SystemClock),
                config.webhooks.dispatcher(),
            ))
        } else {
            None
        };
        let bus = config.push.bus();
        // Every stored alarm transition wakes the dispatcher: its outbox rows go out at once.
        let outbox = webhooks
            .as_ref()
            .map(Dispatcher::waker)
            .unwrap_or_else(|| Arc::new(tokio::sync::Notify::new()));
        let alarms = pdm_core::live::Alarms::new(store.clone(), bus, outbox);
        if config.live.enabled && config.live.seed_alarm_defaults {
            let seeded = alarms
                .seed_defaults()
                .await
                .context("cannot store the default alarm rules")?;
            if seeded > 0 {
                tracing::info!(rules = seeded, "default alarm rules stored (fleet-wide)");
            }
        }
        let live = config.live.enabled.then(|| {
            Live::start_with(
                store.clone(),
                factory.clone(),
                config.live.clone(),
                alarms.clone(),
            )
        });
        let jobs = match &live {
            Some(l) => Some(
                JobRunner::start(
                    store.clone(),
                    factory.clone(),
                    Some(l.clone()),
                    l.metrics_handle(),
                    config.live.clone(),
                )
                .await
                .context("cannot start the job runner")?,
            ),
            None => None,
        };
        let detection = DetectionState::new(
            store.clone(),
            factory,
            live.clone(),
            AlignDefaults {
                sample_period_ms: config.live.sample_period_ms,
                max_gap_ms: config.live.max_gap_ms,
            },
            jobs.as_ref().map(JobRunner::waker).unwrap_or_default(),
        );
        let mut engine = Engine::start_with_live(
            store.clone(),
            catalog.clone(),
            metrics.clone(),
            config.engine.clone(),
            live.clone(),
        );
        let intake = Arc::new(Intake::new(catalog.clone(), config.codec.clone()));
        #[cfg(feature = "mqtt")]
        if let Some(mqtt) = &config.mqtt {
            let source = mqtt
                .build(intake.clone())
                .map_err(crate::config::ConfigError::from)?;
            tracing::info!(broker = %redact_url(&mqtt.connection.url), "MQTT ingestion on");
            engine.add_source(Box::new(source));
        }
        let auth = crate::auth::start(store.clone(), &config)
            .await?
            .with_settings(settings.clone());
        // A new database gets the default code lists of work-order findings (once: codes an
        // admin removes stay removed).
        store
            .seed_codes(&pdm_core::workorder::default_codes())
            .await
            .context("cannot write the default work-order code lists")?;
        let (http_stop, mut stopped) = ShutdownTrigger::new();
        tokio::spawn(crate::auth::prune(store.clone(), http_stop.subscribe()));
        tokio::spawn(crate::audit::prune(
            store.clone(),
            settings.clone(),
            http_stop.subscribe(),
        ));
        tokio::spawn(sweep_hourly(store.clone(), swept, http_stop.subscribe()));
        tokio::spawn(crate::settings::follow(
            settings.clone(),
            store.clone(),
            http_stop.subscribe(),
        ));
        let state = AppState::new(store, catalog, engine.sink(), intake, metrics, detection)
            .with_auth(auth)
            .with_alarms(alarms)
            .with_push(PushSettings {
                heartbeat: config.push.heartbeat(),
                closing: Some(http_stop.subscribe()),
            })
            .with_request_timeout(std::time::Duration::from_millis(config.request_timeout_ms))
            .with_cors_origins(config.cors_origins.clone())
            .with_webhooks(WebhookState {
                dispatcher: webhooks.as_ref().map(Dispatcher::handle),
                allow_private: config.webhooks.allow_private_destinations,
                settings: Some(settings.clone()),
            })
            .with_attachments(crate::state::AttachmentState {
                dir: Some(files),
                settings,
            });
        tokio::spawn(
            state
                .ingest
                .rate
                .clone()
                .follow(state.ingest.metrics.clone(), http_stop.subscribe()),
        );
        let listener = TcpListener::bind(config.http).await.with_context(|| {
            format!(
                "cannot listen on {} (setting http, PDM_HTTP, --http)",
                config.http
            )
        })?;
        let addr = listener.local_addr()?;
        let app = crate::app(state.clone());
        let http = tokio::spawn(async move {
            // The client's address feeds sign-in throttling and the session list.
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stopped.wait().await })
            .await
        });
        tracing::info!(%addr, "HTTP API listening");
        if let Some(l) = &live {
            tracing::info!(shard = %l.config().shard, owners = l.config().tasks, "live detection on");
        }
        Ok(Server {
            addr,
            state,
            engine,
            live,
            jobs,
            webhooks,
            http_stop,
            http,
        })
    }

    /// The address the HTTP server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (catalog, store, sink, metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The webhook dispatcher, when this worker runs one: its [`Dispatcher::waker`] is what
    /// to notify after storing an alarm transition (also reachable as
    /// [`WebhookState::wake`] on the state).
    pub fn webhooks(&self) -> Option<&Dispatcher> {
        self.webhooks.as_ref()
    }

    /// The live path, when this server scores.
    pub fn live(&self) -> Option<&Arc<Live>> {
        self.live.as_ref()
    }

    /// Runs another source (the demo's simulator) until shutdown.
    pub fn add_source(&mut self, source: Box<dyn Source>) {
        self.engine.add_source(source);
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        wait_for_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await
    }

    /// Stops taking requests, writes and acknowledges what is queued, and returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.http_stop.trigger();
        let served = self.http.await;
        if let Some(jobs) = self.jobs {
            // A training cut here stays running in the store and is marked failed at the next
            // start.
            jobs.shutdown().await;
        }
        if let Some(webhooks) = self.webhooks {
            // Attempts cut here are retried by the next dispatcher with the same webhook-id.
            webhooks.shutdown().await;
        }
        self.engine.shutdown().await;
        if let Some(live) = &self.live {
            // After the engine: the last batches it wrote are scored and their predictions
            // stored.
            live.shutdown().await;
        }
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("HTTP server failed")),
            Err(e) => Err(anyhow::Error::new(e).context("HTTP server task failed")),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
