//! Metrics, logs and the health/metrics HTTP endpoint.

pub mod metrics;
pub mod server;

/// Installs the tracing subscriber: `text` or `json`, filtered by `RUST_LOG` (default info).
pub fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Ignore the error when a subscriber is already set (tests call this repeatedly).
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
