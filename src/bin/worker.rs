//! The queue worker Lambda function (lambda_runtime): SQS batches of jobs with partial batch
//! failures, and Step Functions "deliver" events. Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`)
//! it polls `JOB_QUEUE_URL` itself, like Lambda's SQS event source mapping.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;
use whatsapp_agent_lambda::app;
use whatsapp_agent_lambda::config::Dispatch;
use whatsapp_agent_lambda::worker::poll_sqs;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = app::Env::load().await.inspect_err(report)?;
    let local = match (&env.config.dispatch, &env.aws) {
        (Dispatch::Queue { queue_url }, Some(aws)) => Some((queue_url.clone(), aws.clone())),
        _ => None,
    };
    let worker = Arc::new(env.into_worker().inspect_err(report)?);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        let Some((queue_url, aws)) = local else {
            return Err("outside Lambda the worker polls JOB_QUEUE_URL: set DISPATCH=queue and JOB_QUEUE_URL".into());
        };
        tracing::info!("not in Lambda: polling the job queue");
        poll_sqs(&worker, &aws, &queue_url, std::future::pending()).await;
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

fn report(error: &app::StartupError) {
    tracing::error!(%error, "worker cannot start");
    eprintln!("worker cannot start: {error}");
}
