//! Escalation in the production shape, on moto: incidents in DynamoDB (`ALERTS_TABLE`), timers
//! as delayed messages on a standard SQS queue (`TIMER_QUEUE_URL`), the worker built by the
//! same start-up code as the Lambda function. The worker that paged the first tier is gone
//! before the timer is due ("the process died"); a fresh one takes the timer off the queue and
//! pages the next tier; the same timer delivered again pages nobody.

mod support;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::fakes::{Sent, numbering_graph, requests_agent};
use support::moto::Moto;
use whatsapp_agent_lambda::aws::sdk_config_for;
use whatsapp_agent_lambda::config::Config;
use whatsapp_agent_lambda::dev::events::{
    LOCAL_ACCESS_TOKEN, LOCAL_ALLOWED_SENDERS, LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN,
};
use whatsapp_agent_lambda::dev::moto::{alerts_table, timer_queue};
use whatsapp_agent_lambda::entry::Env;
use whatsapp_agent_lambda::secrets::Secrets;
use whatsapp_agent_lambda::worker::Worker;

const REGION: &str = "us-east-1";
const ALICE: &str = "14155551234";
const BOB: &str = "447700900123";

struct Rig {
    _moto: Moto,
    endpoint: String,
    vars: HashMap<&'static str, String>,
    sqs: aws_sdk_sqs::Client,
    timer_queue_url: String,
}

impl Rig {
    async fn start(agent_url: &str, graph_url: &str) -> Self {
        let moto = Moto::start();
        let config = sdk_config_for(moto.endpoint(), REGION).await;
        alerts_table(&config, "alerts").await.unwrap();
        let timer_queue_url = timer_queue(&config, "alert-timers").await.unwrap();
        let oncall = json!({
            "tiers": [[{"number": "+14155551234", "name": "Alice"}], [{"number": "+447700900123", "name": "Bob"}]],
            "escalate_after_secs": 1
        });
        let vars = HashMap::from([
            ("ALLOWED_SENDERS", LOCAL_ALLOWED_SENDERS.to_owned()),
            ("AGENT_URL", agent_url.to_owned()),
            ("GRAPH_API_BASE_URL", graph_url.to_owned()),
            ("WHATSAPP_APP_SECRET", LOCAL_APP_SECRET.to_owned()),
            ("WHATSAPP_ACCESS_TOKEN", LOCAL_ACCESS_TOKEN.to_owned()),
            ("WHATSAPP_VERIFY_TOKEN", LOCAL_VERIFY_TOKEN.to_owned()),
            ("ONCALL", oncall.to_string()),
            ("PHONE_NUMBER_ID", "106540352242922".to_owned()),
            ("ALERT_TEMPLATE", "oncall_alert:en".to_owned()),
            ("NOTICE_TEMPLATE", "oncall_notice:en".to_owned()),
            ("PAGE_MIN_INTERVAL_SECS", "0".to_owned()),
            ("ALERTS_TABLE", "alerts".to_owned()),
            ("TIMER_QUEUE_URL", timer_queue_url.clone()),
        ]);
        Self {
            endpoint: moto.endpoint().to_owned(),
            _moto: moto,
            vars,
            sqs: aws_sdk_sqs::Client::new(&config),
            timer_queue_url,
        }
    }

    /// A worker as a cold start builds it: configuration, secrets, its own AWS clients.
    async fn worker(&self) -> Worker {
        let lookup = |name: &str| self.vars.get(name).cloned();
        Env {
            config: Config::from_lookup(lookup).expect("configuration"),
            secrets: Secrets::from_env(lookup),
            aws: Some(sdk_config_for(&self.endpoint, REGION).await),
        }
        .into_worker()
        .expect("the worker starts")
    }

    /// The next timer message, waited for (bounded): its SQS event record.
    async fn next_timer(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.timer_queue_url)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            if let Some(message) = received.messages().first() {
                self.sqs
                    .delete_message()
                    .queue_url(&self.timer_queue_url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                return record(message.body().unwrap());
            }
            assert!(Instant::now() < deadline, "no timer came due");
        }
    }
}

fn record(body: &str) -> Value {
    json!({"messageId": format!("m-{}", body.len()), "body": body, "attributes": {"ApproximateReceiveCount": "1"}})
}

fn batch(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

fn pages(sent: &Sent, to: &str) -> usize {
    sent.lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| body["to"] == to && body["template"]["name"] == "oncall_alert")
        .count()
}

fn notices(sent: &Sent, to: &str) -> Vec<String> {
    sent.lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| body["to"] == to && body["template"]["name"] == "oncall_notice")
        .filter_map(|(_, body)| {
            body["template"]["components"][0]["parameters"][0]["text"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_survives_the_worker_dying_between_steps_and_fires_once_per_step() {
    let (agent, requests) = requests_agent("on it");
    let (graph, sent) = numbering_graph();
    let rig = Rig::start(&agent.url(), &graph.url()).await;

    // The first worker takes the alert job and pages Alice, then dies.
    let job = json!({"version": 1, "alerts": {
        "source": "generic", "group_key": null, "common_labels": {},
        "alerts": [{
            "key": "0123456789abcdef0123456789abcdef", "status": "firing", "title": "Queue backlog",
            "severity": "warning", "summary": "orders queue over 10k", "url": null,
            "labels": {"team": "orders"}, "source": "generic", "started_at": 1796439600
        }]
    }});
    {
        let first = rig.worker().await;
        let answer = first
            .handle(batch(vec![record(&job.to_string())]))
            .await
            .unwrap();
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
        assert_eq!(pages(&sent, ALICE), 1);
        assert_eq!(pages(&sent, BOB), 0);
    }

    // A second worker, as after a restart, takes the escalation timer when it comes due.
    let second = rig.worker().await;
    let timer = rig.next_timer().await;
    assert!(
        timer["body"].as_str().unwrap().contains("\"escalate\""),
        "{timer}"
    );
    second.handle(batch(vec![timer.clone()])).await.unwrap();
    assert_eq!(pages(&sent, BOB), 1, "the second tier is paged");
    assert!(
        notices(&sent, ALICE)
            .iter()
            .any(|n| n.contains("now paging Bob")),
        "{:?}",
        notices(&sent, ALICE)
    );

    // SQS delivers the same timer again: the step is done, nobody is paged twice.
    second.handle(batch(vec![timer])).await.unwrap();
    assert_eq!(pages(&sent, BOB), 1);
    assert_eq!(pages(&sent, ALICE), 1);

    // The last tier's timer: the final notice to everyone paged, and nothing after it.
    let last = rig.next_timer().await;
    second.handle(batch(vec![last])).await.unwrap();
    for number in [ALICE, BOB] {
        assert!(
            notices(&sent, number)
                .iter()
                .any(|n| n.contains("Final notice")),
            "{number}: {:?}",
            notices(&sent, number)
        );
    }
    assert!(requests.lock().unwrap().is_empty(), "no tap, no agent call");
}
