//! The webhook Lambda function (lambda_http). Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`) it
//! serves the same handler over plain HTTP on `LOCAL_ADDR`, path `/webhook`.

use lambda_http::{Error, Request};
use std::sync::Arc;
use whatsapp_agent_lambda::{app, local, webhook};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let env = app::Env::load().await.inspect_err(report)?;
    let config = env.config.clone();
    let app = Arc::new(env.into_webhook().inspect_err(report)?);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        let listener = tokio::net::TcpListener::bind(&config.local_addr).await?;
        tracing::info!(addr = %config.local_addr, "not in Lambda: serving http://{}/webhook", config.local_addr);
        let handler = local::handler(move |request: Request| {
            let app = app.clone();
            async move { app.handle(request).await }
        });
        let limits = local::Limits {
            max_body: config.max_body_bytes,
            max_connections: config.local_max_connections,
            body_budget: config.local_body_budget_bytes,
        };
        return Ok(local::serve_with(listener, handler, limits).await?);
    }
    // Our own Lambda entry: an event lambda_http would panic on (invalid base64, odd URIs) gets
    // a clean 400 instead of an invocation error.
    webhook::run_lambda(app).await
}

fn report(error: &app::StartupError) {
    tracing::error!(%error, "webhook cannot start");
    eprintln!("webhook cannot start: {error}");
}
