//! The queue worker Lambda function (lambda_runtime): SQS batches of jobs with partial batch
//! failures, and Step Functions "deliver" events. Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`)
//! it polls `JOB_QUEUE_URL` itself, like Lambda's SQS event source mapping.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    whatsapp_agent_lambda::entry::run::worker().await
}
