//! The webhook Lambda function (lambda_http). Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`) it
//! serves the same handler over plain HTTP on `LOCAL_ADDR`, path `/webhook`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    whatsapp_agent_lambda::entry::run::webhook().await
}
