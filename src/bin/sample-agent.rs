//! The sample agent over HTTP: `SAMPLE_AGENT_ADDR` (default 127.0.0.1:8080), optional `AGENT_TOKEN`.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    lambda_http::tracing::init_default_subscriber();
    let addr = std::env::var("SAMPLE_AGENT_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "sample agent listening: POST the agent contract to http://{addr}/");
    let handler =
        whatsapp_agent_lambda::dev::sample_agent::http_handler(std::env::var("AGENT_TOKEN").ok());
    whatsapp_agent_lambda::entry::local::serve(listener, handler, 1024 * 1024).await
}
