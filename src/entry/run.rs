//! What the two Lambda binaries run: load the configuration and secrets once, build the app,
//! then serve it inside Lambda (the Runtime API) or, outside Lambda (no
//! `AWS_LAMBDA_RUNTIME_API`), locally: the webhook over plain HTTP on `LOCAL_ADDR`, the worker
//! by polling `JOB_QUEUE_URL` like Lambda's SQS event source mapping. A start-up failure is
//! logged and printed, and the process exits with it.

use super::local::{self, Limits};
use super::startup::{Env, StartupError};
use crate::config::Dispatch;
use lambda_http::Request;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;

/// Whether this process runs inside Lambda (the Runtime API's address is set).
fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// The `webhook` function.
pub async fn webhook() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let env = Env::load().await.inspect_err(|e| report("webhook", e))?;
    let config = env.config.clone();
    let app = Arc::new(env.into_webhook().inspect_err(|e| report("webhook", e))?);
    if in_lambda() {
        // Our own Lambda entry: an event lambda_http would panic on (invalid base64, odd URIs)
        // gets a clean 400 instead of an invocation error.
        return super::lambda_webhook::run(app).await;
    }
    let listener = tokio::net::TcpListener::bind(&config.local_addr).await?;
    tracing::info!(addr = %config.local_addr, "not in Lambda: serving http://{}/webhook", config.local_addr);
    let handler = local::handler(move |request: Request| {
        let app = app.clone();
        async move { app.handle(request).await }
    });
    let limits = Limits {
        max_body: config.max_body_bytes,
        max_connections: config.local_max_connections,
        body_budget: config.local_body_budget_bytes,
    };
    Ok(local::serve_with(listener, handler, limits).await?)
}

/// The `worker` function: SQS batches of jobs (and of escalation timers) and Step Functions
/// "deliver" events.
pub async fn worker() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = Env::load().await.inspect_err(|e| report("worker", e))?;
    let local = match (&env.config.dispatch, &env.aws) {
        (Dispatch::Queue { queue_url }, Some(aws)) => Some((queue_url.clone(), aws.clone())),
        _ => None,
    };
    let timer_queue_url = env.config.timer_queue_url.clone();
    let worker = Arc::new(env.into_worker().inspect_err(|e| report("worker", e))?);
    if !in_lambda() {
        let Some((queue_url, aws)) = local else {
            return Err("outside Lambda the worker polls JOB_QUEUE_URL: set DISPATCH=queue and JOB_QUEUE_URL".into());
        };
        tracing::info!("not in Lambda: polling the job queue");
        let jobs = crate::worker::poll_sqs(&worker, &aws, &queue_url, std::future::pending());
        match &timer_queue_url {
            // Escalation timers: the timer queue too, as its event source mapping would.
            Some(timer_queue_url) => {
                let timers =
                    crate::worker::poll_sqs(&worker, &aws, timer_queue_url, std::future::pending());
                tokio::join!(jobs, timers);
            }
            None => jobs.await,
        }
        return Ok(());
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let worker = worker.clone();
        async move {
            worker
                .handle(event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

fn report(function: &str, error: &StartupError) {
    tracing::error!(%error, "{function} cannot start");
    eprintln!("{function} cannot start: {error}");
}
