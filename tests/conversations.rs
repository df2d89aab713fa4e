//! Conversations through the pipeline: history handed to the agent, agent and environment
//! chosen by list, the built-in commands, a streamed answer resumed after a failed send without
//! asking the agent again, and replies kept while the 24-hour window is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use whatsapp_agent_lambda::BoxFuture;
use whatsapp_agent_lambda::agent::{
    AgentReply, AgentRequest, Agents, Deliver, NamedAgent, ScriptedAgent,
};
use whatsapp_agent_lambda::domain::{
    Channel, InboundMessage, MessageId, MessageKind, OutgoingMessage, PhoneNumberId, Recipient,
    Sender, TemplateRef,
};
use whatsapp_agent_lambda::graph::{CODE_REENGAGEMENT, GraphError, Messenger, RecordingMessenger};
use whatsapp_agent_lambda::idempotency::MemoryIdempotency;
use whatsapp_agent_lambda::pipeline::{Attempt, Outcome, Pipeline};
use whatsapp_agent_lambda::sessions::conversation::{WINDOW_TAP_PREFIX, kept};
use whatsapp_agent_lambda::sessions::{
    Conversations, KeptBecause, MemorySessions, Role, SessionKey, SessionStore, ttl_days,
};

const PHONE_NUMBER_ID: &str = "106540352242922";

fn inbound(id: &str, kind: MessageKind) -> InboundMessage {
    InboundMessage {
        id: MessageId::from(id),
        timestamp: 1_795_000_000,
        sender: Sender {
            // Spelled as the allowlist might have it: one conversation whatever the spelling.
            phone: Some("+1 (415) 555-1234".into()),
            ..Sender::default()
        },
        channel: Channel {
            phone_number_id: PhoneNumberId::from(PHONE_NUMBER_ID),
            display_phone_number: None,
            business_account_id: None,
        },
        reply_to: None,
        kind,
    }
}

fn text(id: &str, body: &str) -> InboundMessage {
    inbound(id, MessageKind::Text { body: body.into() })
}

/// A tap on the list row `row` of the list message `list`.
fn tap(id: &str, row: &str, list: MessageId) -> InboundMessage {
    let mut tap = inbound(
        id,
        MessageKind::ListReply {
            id: row.to_owned(),
            title: "row".into(),
            description: None,
        },
    );
    tap.reply_to = Some(list);
    tap
}

fn key() -> SessionKey {
    SessionKey::of(&text("wamid.K", "x")).unwrap()
}

/// A pipeline over two scripted agents (`k8s`, `cost`), environments `prod,staging`, the
/// given session store and messenger.
struct Setup {
    pipeline: Pipeline,
    messenger: Arc<RecordingMessenger>,
    k8s: Arc<ScriptedAgent>,
    cost: Arc<ScriptedAgent>,
    store: Arc<MemorySessions>,
}

fn setup(template: Option<&str>) -> Setup {
    let messenger = Arc::new(RecordingMessenger::new());
    let k8s = Arc::new(ScriptedAgent::new(|request: &AgentRequest| {
        let asked_before = request
            .history
            .iter()
            .filter(|turn| turn.role == Role::User)
            .map(|turn| turn.text.as_str())
            .collect::<Vec<_>>()
            .join(" / ");
        Ok(Some(AgentReply::text(
            None,
            format!("k8s heard {:?}; before: {asked_before}", request.event.text),
        )))
    }));
    let cost = Arc::new(ScriptedAgent::replying_text("cost: $42 today"));
    let store = Arc::new(MemorySessions::new(ttl_days(30)));
    let named = |name: &str, agent: Arc<ScriptedAgent>| NamedAgent {
        name: name.into(),
        description: Some(format!("{name} agent")),
        agent,
    };
    let conversations = Conversations::new(
        store.clone(),
        Agents::new(
            vec![named("k8s", k8s.clone()), named("cost", cost.clone())],
            None,
        )
        .unwrap(),
        vec!["prod".into(), "staging".into()],
        10,
        template.map(|spec| TemplateRef::parse(spec).unwrap()),
    );
    let pipeline = Pipeline::new(
        k8s.clone(),
        messenger.clone(),
        Arc::new(MemoryIdempotency::default()),
    )
    .with_conversations(conversations);
    Setup {
        pipeline,
        messenger,
        k8s,
        cost,
        store,
    }
}

impl Setup {
    /// A Step Functions delivery of `reply` to the message `id`, `hours` after the user last
    /// wrote.
    async fn deliver_late(&self, hours: i64, id: &str, reply: &str) -> Outcome {
        self.store
            .update(&key(), &mut |session| {
                session.last_user_message_at = Some(unix_now() - hours * 3600)
            })
            .await
            .unwrap();
        self.pipeline
            .deliver(
                &deliver_for(&text(id, "report?"), reply),
                Attempt::Retryable,
            )
            .await
    }
}

/// The row ids of the last list sent, with the id WhatsApp gave that list.
fn last_list(messenger: &RecordingMessenger) -> (Vec<String>, MessageId) {
    let sent = messenger.sent();
    sent.iter()
        .rev()
        .find_map(|record| match &record.message {
            OutgoingMessage::List { sections, .. } => Some((
                sections
                    .iter()
                    .flat_map(|section| section.rows.iter().map(|row| row.id.clone()))
                    .collect(),
                record.id.clone(),
            )),
            _ => None,
        })
        .expect("a list was sent")
}

#[tokio::test]
async fn the_agent_gets_the_conversation_so_far() {
    let s = setup(None);
    s.pipeline
        .handle(
            &text("wamid.H1", "pods crashing in prod"),
            Attempt::Retryable,
        )
        .await;
    let outcome = s
        .pipeline
        .handle(
            &text("wamid.H2", "what did I ask before?"),
            Attempt::Retryable,
        )
        .await;
    assert_eq!(outcome, Outcome::Replied { messages: 1 });
    let second = &s.k8s.requests()[1];
    assert_eq!(second.history.len(), 2);
    assert_eq!(second.history[0].text, "pods crashing in prod");
    assert_eq!(second.history[1].role, Role::Assistant);
    assert_eq!(second.session.agent, "k8s");
    assert_eq!(second.session.environment.as_deref(), Some("prod"));
    assert_eq!(
        second.session_id,
        format!("whatsapp:{PHONE_NUMBER_ID}:14155551234")
    );
    assert!(s.messenger.texts()[1].contains("before: pods crashing in prod"));
}

#[tokio::test]
async fn agents_list_then_a_tap_sends_the_next_message_to_the_chosen_agent() {
    let s = setup(None);
    let outcome = s
        .pipeline
        .handle(&text("wamid.A1", "/agents"), Attempt::Retryable)
        .await;
    assert_eq!(outcome, Outcome::Replied { messages: 1 });
    assert_eq!(
        s.k8s.calls() + s.cost.calls(),
        0,
        "the function answers /agents itself"
    );
    let (rows, list_id) = last_list(&s.messenger);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|id| id.starts_with("wal:cmd:")));

    s.pipeline
        .handle(&tap("wamid.A2", &rows[1], list_id), Attempt::Retryable)
        .await;
    assert!(
        s.messenger
            .texts()
            .last()
            .unwrap()
            .contains("*cost* answers your messages")
    );
    assert_eq!(
        s.k8s.calls() + s.cost.calls(),
        0,
        "nor does a tap on our list reach an agent"
    );

    s.pipeline
        .handle(&text("wamid.A3", "what did we spend?"), Attempt::Retryable)
        .await;
    assert_eq!(s.cost.calls(), 1);
    assert_eq!(s.k8s.calls(), 0);
    assert_eq!(s.cost.requests()[0].session.agent, "cost");
    assert_eq!(s.messenger.texts().last().unwrap(), "cost: $42 today");
}

#[tokio::test]
async fn a_tap_on_an_old_list_or_another_message_selects_nothing() {
    let s = setup(None);
    s.pipeline
        .handle(&text("wamid.O1", "/env"), Attempt::Retryable)
        .await;
    let (old_rows, old_list) = last_list(&s.messenger);
    s.pipeline
        .handle(&text("wamid.O2", "/env"), Attempt::Retryable)
        .await;
    s.pipeline
        .handle(&tap("wamid.O3", &old_rows[1], old_list), Attempt::Retryable)
        .await;
    assert!(s.messenger.texts().last().unwrap().contains("out of date"));
    let session = s.store.load(&key()).await.unwrap();
    assert_eq!(session.environment, None);
    assert_eq!(s.k8s.calls(), 0);
}

#[tokio::test]
async fn reset_clears_the_history_and_help_shows_the_choices() {
    let s = setup(None);
    s.pipeline
        .handle(&text("wamid.R1", "status?"), Attempt::Retryable)
        .await;
    assert_eq!(s.store.load(&key()).await.unwrap().history.len(), 2);
    s.pipeline
        .handle(&text("wamid.R2", "/RESET"), Attempt::Retryable)
        .await;
    assert!(s.store.load(&key()).await.unwrap().history.is_empty());
    s.pipeline
        .handle(&text("wamid.R3", "/help"), Attempt::Retryable)
        .await;
    let help = s.messenger.texts().last().unwrap().clone();
    assert!(
        help.contains("/agents") && help.contains("*k8s*") && help.contains("*prod*"),
        "{help}"
    );
    // Any other /word is the agent's.
    s.pipeline
        .handle(&text("wamid.R4", "/deploy api"), Attempt::Retryable)
        .await;
    assert_eq!(s.k8s.calls(), 2);
}

/// A Graph API whose `fail_at`-th send (1-based) fails once, transiently.
struct FailingOnce {
    inner: RecordingMessenger,
    sends: AtomicUsize,
    fail_at: usize,
}

impl Messenger for FailingOnce {
    fn send<'a>(
        &'a self,
        from: &'a PhoneNumberId,
        to: &'a Recipient,
        message: &'a OutgoingMessage,
        context: Option<&'a MessageId>,
    ) -> BoxFuture<'a, Result<MessageId, GraphError>> {
        if self.sends.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Box::pin(async { Err(GraphError::Timeout) });
        }
        self.inner.send(from, to, message, context)
    }

    fn mark_read<'a>(
        &'a self,
        from: &'a PhoneNumberId,
        message: &'a MessageId,
        typing: bool,
    ) -> BoxFuture<'a, Result<(), GraphError>> {
        self.inner.mark_read(from, message, typing)
    }
}

#[tokio::test(start_paused = true)]
async fn a_streamed_answer_broken_by_a_failed_send_is_finished_by_the_retry_without_asking_again() {
    let messenger = Arc::new(FailingOnce {
        inner: RecordingMessenger::new(),
        sends: AtomicUsize::new(0),
        fail_at: 3,
    });
    let agent = Arc::new(ScriptedAgent::streaming(|_| {
        [
            "Checking pods…",
            "api-7f9 restarted twice",
            "✅ All pods running",
        ]
        .into_iter()
        .map(|text| (Duration::from_secs(2), Ok(AgentReply::text(None, text))))
        .collect()
    }));
    let store = Arc::new(MemorySessions::new(ttl_days(30)));
    let pipeline = Pipeline::new(
        agent.clone(),
        messenger.clone(),
        Arc::new(MemoryIdempotency::default()),
    )
    .with_conversations(Conversations::new(
        store.clone(),
        Agents::single(agent.clone()),
        Vec::new(),
        10,
        None,
    ));
    let message = text("wamid.S1", "restart the api");
    let first = pipeline.handle(&message, Attempt::Retryable).await;
    assert!(matches!(first, Outcome::Retry { .. }), "{first:?}");
    assert_eq!(
        messenger.inner.texts(),
        ["Checking pods…", "api-7f9 restarted twice"]
    );
    let kept = kept(&store.load(&key()).await.unwrap());
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].because, KeptBecause::SendFailed);

    // SQS delivers the job again: the third part goes out, the agent is not asked again.
    let retry = pipeline.handle(&message, Attempt::Retryable).await;
    assert_eq!(retry, Outcome::Replied { messages: 1 });
    assert_eq!(agent.calls(), 1);
    assert_eq!(
        messenger.inner.texts(),
        [
            "Checking pods…",
            "api-7f9 restarted twice",
            "✅ All pods running"
        ]
    );
    let session = store.load(&key()).await.unwrap();
    assert!(session.pending.is_empty());
    // All three parts are in the history, after the question.
    let texts: Vec<&str> = session
        .history
        .iter()
        .map(|turn| turn.text.as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "restart the api",
            "Checking pods…",
            "api-7f9 restarted twice",
            "✅ All pods running"
        ]
    );
    // A third delivery finds it done.
    assert_eq!(
        pipeline.handle(&message, Attempt::Retryable).await,
        Outcome::Duplicate
    );
}

fn deliver_for(message: &InboundMessage, reply: &str) -> Deliver {
    Deliver {
        request: AgentRequest::from_message(message),
        reply: Some(AgentReply::text(None, reply)),
        error: None,
    }
}

#[tokio::test]
async fn a_reply_after_the_window_closed_is_kept_and_delivered_when_the_user_taps_the_template() {
    let s = setup(Some("answer_ready:en_US"));
    // The user wrote 25 hours ago (a long Step Functions run).
    let outcome = s
        .deliver_late(25, "wamid.W1", "Report: $1,234 this month")
        .await;
    assert_eq!(outcome, Outcome::Kept { parts: 1 });
    let sent = s.messenger.sent();
    assert_eq!(sent.len(), 1, "only the template");
    let OutgoingMessage::Template {
        template,
        quick_replies,
        ..
    } = &sent[0].message
    else {
        panic!("a template: {:?}", sent[0].message);
    };
    assert_eq!(template.to_string(), "answer_ready:en_US");
    assert!(quick_replies[0].starts_with(WINDOW_TAP_PREFIX));

    // The tap on the template's button delivers the kept reply, and reaches no agent.
    let tap = inbound(
        "wamid.W2",
        MessageKind::TemplateButton {
            payload: quick_replies[0].clone(),
            text: "Show answer".into(),
        },
    );
    s.pipeline.handle(&tap, Attempt::Retryable).await;
    assert_eq!(
        s.messenger.texts().last().unwrap(),
        "Report: $1,234 this month"
    );
    assert_eq!(s.k8s.calls() + s.cost.calls(), 0);
    assert!(s.store.load(&key()).await.unwrap().pending.is_empty());
}

#[tokio::test]
async fn a_kept_reply_goes_out_before_the_answer_to_the_users_next_message() {
    let s = setup(None);
    let outcome = s.deliver_late(30, "wamid.N1", "late report").await;
    // No template configured: kept, and the log says why nothing went out.
    assert_eq!(outcome, Outcome::Kept { parts: 1 });
    assert!(s.messenger.sent().is_empty());
    s.pipeline
        .handle(&text("wamid.N2", "hello again"), Attempt::Retryable)
        .await;
    let texts = s.messenger.texts();
    assert_eq!(texts[0], "late report");
    assert!(
        texts[1].starts_with("k8s heard \"hello again\""),
        "{texts:?}"
    );
}

#[tokio::test]
async fn metas_refusal_outside_the_window_keeps_the_reply_instead_of_losing_it() {
    let s = setup(Some("answer_ready:en_US"));
    s.messenger.fail_next_sends(1, || GraphError::Api {
        status: 400,
        code: CODE_REENGAGEMENT,
        subcode: None,
        message: String::new(),
        fbtrace_id: None,
    });
    let outcome = s
        .pipeline
        .handle(&text("wamid.M1", "status?"), Attempt::Retryable)
        .await;
    assert_eq!(outcome, Outcome::Kept { parts: 1 });
    assert!(matches!(
        s.messenger.sent()[0].message,
        OutgoingMessage::Template { .. }
    ));
    let kept = kept(&s.store.load(&key()).await.unwrap());
    assert_eq!(kept[0].because, KeptBecause::WindowClosed);
}

#[tokio::test]
async fn a_failing_session_store_never_silences_the_user() {
    struct Down;
    impl SessionStore for Down {
        fn load<'a>(
            &'a self,
            _: &'a SessionKey,
        ) -> BoxFuture<
            'a,
            Result<
                whatsapp_agent_lambda::sessions::Session,
                whatsapp_agent_lambda::sessions::SessionError,
            >,
        > {
            Box::pin(async {
                Err(whatsapp_agent_lambda::sessions::SessionError::Conflict { attempts: 8 })
            })
        }
        fn update<'a>(
            &'a self,
            _: &'a SessionKey,
            _: &'a mut (dyn FnMut(&mut whatsapp_agent_lambda::sessions::Session) + Send),
        ) -> BoxFuture<
            'a,
            Result<
                whatsapp_agent_lambda::sessions::Session,
                whatsapp_agent_lambda::sessions::SessionError,
            >,
        > {
            Box::pin(async {
                Err(whatsapp_agent_lambda::sessions::SessionError::Conflict { attempts: 8 })
            })
        }
    }
    let messenger = Arc::new(RecordingMessenger::new());
    let agent = Arc::new(ScriptedAgent::replying_text("still here"));
    let pipeline = Pipeline::new(
        agent.clone(),
        messenger.clone(),
        Arc::new(MemoryIdempotency::default()),
    )
    .with_conversations(Conversations::new(
        Arc::new(Down),
        Agents::single(agent.clone()),
        Vec::new(),
        10,
        None,
    ));
    let outcome = pipeline
        .handle(&text("wamid.D1", "status?"), Attempt::Retryable)
        .await;
    assert_eq!(outcome, Outcome::Replied { messages: 1 });
    assert_eq!(messenger.texts(), ["still here"]);
    assert!(agent.requests()[0].history.is_empty());
}

fn unix_now() -> i64 {
    whatsapp_agent_lambda::sessions::conversation::unix_now()
}
