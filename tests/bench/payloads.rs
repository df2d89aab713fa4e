//! Deterministic, realistic Meta Cloud API webhook bodies for the acknowledgement benchmarks,
//! in the shape of `events/*.json` (Meta's field order: `value` before `field`, non-ASCII text
//! escaped as `\uXXXX` the way Meta's JSON encoder writes it).
//!
//! Same bytes on every run and every machine: a fixed-seed generator, no clock, no randomness.

use serde::Serialize;

/// The bench's app secret (the HMAC key).
pub const APP_SECRET: &str = "bench-app-secret-0f4c2a9e7b1d";
/// Meta's timestamps are Unix seconds as a string.
const TIMESTAMP: u64 = 1_795_514_400;
/// The business account and number the messages arrive on.
const WABA_ID: &str = "102290129340398";
const PHONE_NUMBER_ID: &str = "106540352242922";
const DISPLAY_PHONE_NUMBER: &str = "15550001111";
/// Different senders in the batches.
pub const SENDERS: usize = 50;
/// WhatsApp's longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// One benchmark payload: the exact body and what `accept` must make of it.
pub struct Payload {
    pub name: &'static str,
    pub body: Vec<u8>,
    /// Messages in the body (all from allowed senders).
    pub messages: usize,
}

/// The three payloads, in report order.
pub fn all() -> Vec<Payload> {
    vec![text_2kb(), batch_1000(), payload_3mb()]
}

/// `ALLOWED_SENDERS`: every bench sender, in assorted E.164 spellings, plus a few others.
pub fn allowlist_spec() -> String {
    let mut entries: Vec<String> = (0..SENDERS)
        .map(|index| spelled(&sender_phone(index), index))
        .collect();
    entries.extend(
        [
            "+1 (212) 555-0199",
            "0033 6 12 34 56 78",
            "US.13491208655302741918",
            "BR.20261124000000000042",
        ]
        .map(str::to_owned),
    );
    entries.join(", ")
}

/// `2kb_text`: one text message from an allowed sender, padded to a 2048-byte body.
fn text_2kb() -> Payload {
    const TARGET: usize = 2048;
    let sender = 0;
    let lead = "pods crashing in prod: checkout-api is in CrashLoopBackOff since the 14:02 deploy.\n\
                Last lines of the log before it died:\n";
    let build = |filler: &str| {
        let text = format!("{lead}{filler}");
        let message = text_message(sender, 0, &text);
        webhook(vec![entry(vec![change(vec![sender], vec![message])])])
    };
    let overhead = build("").len();
    let filler = ascii_filler(TARGET.saturating_sub(overhead), 7);
    let body = build(&filler);
    assert!(
        body.len().abs_diff(TARGET) <= 16,
        "2kb_text is {} bytes, wanted {TARGET} ± 16",
        body.len()
    );
    Payload {
        name: "2kb_text",
        body,
        messages: 1,
    }
}

/// `batch_1000`: 1000 text messages (~100 characters) from 50 senders, the way Meta batches
/// them under load: 5 entries × 4 changes, each change 50 messages with the contacts of its
/// senders.
fn batch_1000() -> Payload {
    const ENTRIES: usize = 5;
    const CHANGES: usize = 4;
    const PER_CHANGE: usize = 50;
    let mut rng = Rng(0xba7c_1000);
    let mut serial = 0;
    let entries = (0..ENTRIES)
        .map(|_| {
            let changes = (0..CHANGES)
                .map(|_| {
                    // Every sender once per change, in a different order each time.
                    let offset = serial / PER_CHANGE * 3;
                    let messages = (0..PER_CHANGE)
                        .map(|slot| {
                            serial += 1;
                            let sender = (slot * 7 + offset) % SENDERS;
                            text_message(sender, serial, &ops_text(&mut rng, 100))
                        })
                        .collect();
                    change((0..SENDERS).collect(), messages)
                })
                .collect();
            entry(changes)
        })
        .collect();
    Payload {
        name: "batch_1000",
        body: webhook(entries),
        messages: ENTRIES * CHANGES * PER_CHANGE,
    }
}

/// `payload_3mb`: Meta's largest webhook (3 MiB) of text messages at WhatsApp's maximum length
/// (4096 characters each, with line breaks and an emoji, as people paste logs), 50 to a change.
fn payload_3mb() -> Payload {
    const TARGET: usize = 3 * 1024 * 1024;
    const PER_CHANGE: usize = 50;
    let mut rng = Rng(0x3_0000_0000);
    let mut messages: Vec<Message> = Vec::new();
    let mut ensure = |messages: &mut Vec<Message>, count: usize| {
        while messages.len() < count {
            let serial = messages.len() + 1;
            let text = long_text(&mut rng, MAX_TEXT_CHARS);
            messages.push(text_message(serial % SENDERS, serial, &text));
        }
    };
    let build = |messages: &[Message]| {
        let changes: Vec<Change> = messages
            .chunks(PER_CHANGE)
            .map(|chunk| {
                let mut senders: Vec<usize> = chunk.iter().map(|m| m.sender).collect();
                senders.sort_unstable();
                senders.dedup();
                change(senders, chunk.to_vec())
            })
            .collect();
        webhook(
            changes
                .chunks(4)
                .map(|changes| entry(changes.to_vec()))
                .collect(),
        )
    };
    // The body grows by about the same step per message: estimate from 100, then settle on the
    // most messages that fit (a couple of builds, not one per message).
    ensure(&mut messages, 100);
    let per_100 = build(&messages).len();
    let mut count = TARGET * 100 / per_100;
    ensure(&mut messages, count + 1);
    while build(&messages[..count]).len() > TARGET {
        count -= 1;
    }
    while build(&messages[..count + 1]).len() <= TARGET {
        count += 1;
        ensure(&mut messages, count + 1);
    }
    messages.truncate(count);
    let body = build(&messages);
    assert!(
        body.len().abs_diff(TARGET) <= TARGET / 100,
        "payload_3mb is {} bytes, wanted {TARGET} ± 1%",
        body.len()
    );
    Payload {
        name: "payload_3mb",
        messages: messages.len(),
        body,
    }
}

// --- Meta's webhook JSON, in Meta's field order -----------------------------------------------

#[derive(Serialize)]
struct Webhook {
    object: &'static str,
    entry: Vec<Entry>,
}

#[derive(Serialize, Clone)]
struct Entry {
    id: &'static str,
    changes: Vec<Change>,
}

#[derive(Serialize, Clone)]
struct Change {
    value: Value,
    field: &'static str,
}

#[derive(Serialize, Clone)]
struct Value {
    messaging_product: &'static str,
    metadata: Metadata,
    contacts: Vec<Contact>,
    messages: Vec<Message>,
}

#[derive(Serialize, Clone)]
struct Metadata {
    display_phone_number: &'static str,
    phone_number_id: &'static str,
}

#[derive(Serialize, Clone)]
struct Contact {
    profile: Profile,
    wa_id: String,
    /// The sender's BSUID, which Meta sends beside the phone number since 2026 (pywa needs it).
    user_id: String,
}

#[derive(Serialize, Clone)]
struct Profile {
    name: String,
}

#[derive(Serialize, Clone)]
struct Message {
    from: String,
    from_user_id: String,
    id: String,
    timestamp: String,
    text: TextBody,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip)]
    sender: usize,
}

#[derive(Serialize, Clone)]
struct TextBody {
    body: String,
}

fn webhook(entry: Vec<Entry>) -> Vec<u8> {
    let json = serde_json::to_string(&Webhook {
        object: "whatsapp_business_account",
        entry,
    })
    .expect("the bench webhook serializes");
    escape_non_ascii(&json).into_bytes()
}

fn entry(changes: Vec<Change>) -> Entry {
    Entry {
        id: WABA_ID,
        changes,
    }
}

fn change(senders: Vec<usize>, messages: Vec<Message>) -> Change {
    Change {
        value: Value {
            messaging_product: "whatsapp",
            metadata: Metadata {
                display_phone_number: DISPLAY_PHONE_NUMBER,
                phone_number_id: PHONE_NUMBER_ID,
            },
            contacts: senders
                .into_iter()
                .map(|sender| Contact {
                    profile: Profile {
                        name: sender_name(sender),
                    },
                    wa_id: sender_phone(sender),
                    user_id: sender_bsuid(sender),
                })
                .collect(),
            messages,
        },
        field: "messages",
    }
}

fn text_message(sender: usize, serial: usize, text: &str) -> Message {
    Message {
        from: sender_phone(sender),
        from_user_id: sender_bsuid(sender),
        id: wamid(&sender_phone(sender), serial),
        timestamp: (TIMESTAMP + serial as u64).to_string(),
        text: TextBody {
            body: text.to_owned(),
        },
        kind: "text",
        sender,
    }
}

/// A message id shaped like Meta's: `wamid.` and base64 of the sender and a 20-byte id.
fn wamid(phone: &str, serial: usize) -> String {
    use base64::Engine;
    let mut rng = Rng(serial as u64 ^ 0x5eed);
    let mut raw = Vec::with_capacity(48);
    raw.extend_from_slice(&[0x1c, 0x18, phone.len() as u8]);
    raw.extend_from_slice(phone.as_bytes());
    raw.extend_from_slice(&[0x15, 0x02, 0x00, 0x12, 0x18, 0x14]);
    for _ in 0..20 {
        raw.push(b"0123456789ABCDEF"[rng.below(16)]);
    }
    raw.push(0x00);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Sender `index`'s number as Meta sends it: digits only, no `+`.
pub fn sender_phone(index: usize) -> String {
    let index = index as u64;
    match index % 5 {
        0 => format!("1415555{:04}", 1000 + index),
        1 => format!("447700900{:03}", 100 + index),
        2 => format!("4915123{:06}", 400_000 + index * 37),
        3 => format!("55119{:08}", 87_650_000 + index * 11),
        _ => format!("91981{:07}", 2_340_000 + index * 13),
    }
}

/// The same number in one of the spellings people put in `ALLOWED_SENDERS`.
fn spelled(digits: &str, index: usize) -> String {
    match index % 3 {
        0 => digits.to_owned(),
        1 => format!("+{digits}"),
        _ => format!("00{} {}", &digits[..2], &digits[2..]),
    }
}

fn sender_name(index: usize) -> String {
    const FIRST: [&str; 10] = [
        "Ana", "Bilal", "Chen", "Dara", "Emeka", "Fatima", "Gustav", "Hana", "Ivan", "Joana",
    ];
    const LAST: [&str; 5] = ["Lima", "Okafor", "Schmidt", "Tanaka", "Kowalski"];
    format!(
        "{} {}",
        FIRST[index % FIRST.len()],
        LAST[index / FIRST.len() % LAST.len()]
    )
}

// --- Text ---------------------------------------------------------------------------------------

const PHRASES: [&str; 16] = [
    "pods crashing in prod",
    "checkout-api p99 latency is over 2s",
    "can you roll back the last deploy of payments?",
    "which env is failing?",
    "disk usage on db-replica-3 at 91%",
    "scale web to 12 replicas please",
    "is the eu-west-1 incident still open?",
    "show me the error rate for the last hour",
    "restart the ingest workers",
    "who is on call for search today",
    "alert: 5xx spike on api-gateway",
    "what changed in staging since yesterday",
    "kafka consumer lag keeps growing on orders",
    "cert for status.example.com expires in 3 days",
    "run the smoke tests against canary",
    "ack the pagerduty incident",
];

/// A short ops chat message of about `chars` characters.
fn ops_text(rng: &mut Rng, chars: usize) -> String {
    let mut text = String::new();
    while text.len() < chars {
        if !text.is_empty() {
            text.push_str(if rng.below(4) == 0 { ". " } else { ", " });
        }
        text.push_str(PHRASES[rng.below(PHRASES.len())]);
    }
    text.truncate(chars);
    text.trim_end().to_owned()
}

/// Exactly `chars` characters of pasted log lines: line breaks, an emoji, ASCII otherwise.
fn long_text(rng: &mut Rng, chars: usize) -> String {
    let mut text = String::from("🔥 pasted from the pod log:\n");
    // The emoji is one character in four bytes; everything after it is ASCII.
    let mut count = text.chars().count();
    let mut line = 0u32;
    while count < chars {
        line += 1;
        let next = format!(
            "2026-11-24T10:{:02}:{:02}Z ERROR checkout-api-7d9f{:04x} {}\n",
            line / 60 % 60,
            line % 60,
            rng.below(0x10000),
            PHRASES[rng.below(PHRASES.len())]
        );
        count += next.len();
        text.push_str(&next);
    }
    let excess = count - chars;
    text.truncate(text.len() - excess);
    text
}

/// `len` bytes of plain ASCII words (no character JSON would escape).
fn ascii_filler(len: usize, seed: u64) -> String {
    let mut rng = Rng(seed);
    let mut text = String::with_capacity(len + 64);
    while text.len() < len {
        text.push_str(PHRASES[rng.below(PHRASES.len())]);
        text.push(' ');
    }
    text.truncate(len);
    text
}

/// Meta writes non-ASCII characters as `\uXXXX` (UTF-16 escapes): so does the bench.
fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 8);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// splitmix64: small, fixed, good enough to vary text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// A business-scoped user id (BSUID) for sender `sender`: country code, dot, digits.
fn sender_bsuid(sender: usize) -> String {
    format!("US.{}", 13_491_208_655_302_740_000_u64 + sender as u64)
}
