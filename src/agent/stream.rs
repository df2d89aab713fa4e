//! Answers that arrive part by part. An HTTP agent may answer with
//! `Content-Type: application/x-ndjson`: one contract reply per line, each sent to the user as
//! soon as its line arrives ("Checking pods…", then the result). Every agent can be read this
//! way ([`ReplyStream`]); one that answers at once gives a single part.
//!
//! A streamed answer is bounded like a whole one: at most [`MAX_REPLY_BYTES`] in all and
//! [`MAX_STREAM_PARTS`] parts. A line that is not a reply ends the stream with an error, like a
//! broken connection does; what arrived before it stands.

use super::{AgentError, AgentReply};
use crate::BoxFuture;
use std::io::BufRead;
use tokio::sync::mpsc;

pub use super::http::MAX_REPLY_BYTES;

/// The media type of a streamed answer: one JSON reply per line.
pub const NDJSON: &str = "application/x-ndjson";
/// Most parts one streamed answer may have: each becomes at least one WhatsApp message.
pub const MAX_STREAM_PARTS: usize = 20;
/// Parts waiting to be sent while the agent writes the next ones.
const BUFFERED_PARTS: usize = 4;

/// One part of an answer, or why the answer stopped.
pub type Part = Result<AgentReply, AgentError>;

/// An agent's answer, read part by part with [`ReplyStream::next`].
pub enum ReplyStream<'a> {
    /// An answer that comes whole: `None` once it has been read.
    Whole(Option<BoxFuture<'a, Result<Option<AgentReply>, AgentError>>>),
    /// Parts as the agent produces them.
    Parts(mpsc::Receiver<Part>),
}

impl<'a> ReplyStream<'a> {
    /// The answer of a call that replies at once.
    pub fn whole(call: BoxFuture<'a, Result<Option<AgentReply>, AgentError>>) -> Self {
        Self::Whole(Some(call))
    }

    /// A stream fed from elsewhere (a blocking reader, a test) through the returned sender.
    pub fn channel() -> (PartSender, Self) {
        let (sender, receiver) = mpsc::channel(BUFFERED_PARTS);
        (PartSender(sender), Self::Parts(receiver))
    }

    /// The next part; `None` when the answer is complete. After an error there is no more.
    pub async fn next(&mut self) -> Option<Part> {
        match self {
            Self::Whole(call) => match call.take()?.await {
                Ok(Some(reply)) => Some(Ok(reply)),
                Ok(None) => None,
                Err(error) => Some(Err(error)),
            },
            Self::Parts(receiver) => receiver.recv().await,
        }
    }
}

/// The writing end of [`ReplyStream::channel`]; the stream ends when every clone is dropped.
#[derive(Clone)]
pub struct PartSender(mpsc::Sender<Part>);

impl PartSender {
    /// Hands a part over from a blocking thread; `false` once nobody reads any more.
    pub fn send_blocking(&self, part: Part) -> bool {
        self.0.blocking_send(part).is_ok()
    }

    /// Hands a part over from async code; `false` once nobody reads any more.
    pub async fn send(&self, part: Part) -> bool {
        self.0.send(part).await.is_ok()
    }
}

/// Reads an NDJSON answer line by line: each line through `decode` (the same reading as a whole
/// answer: blank lines and `null` are skipped), each reply handed to `emit` as soon as its line
/// is complete. Stops at the first error (read failure from `read_error`, a line that is not a
/// reply, more than `limit` bytes or [`MAX_STREAM_PARTS`] parts), handing it to `emit` too, or
/// when `emit` returns `false` (nobody listens). Returns the number of parts emitted.
pub fn read_ndjson(
    reader: impl BufRead,
    limit: u64,
    decode: impl Fn(&[u8]) -> Result<Option<AgentReply>, AgentError>,
    read_error: impl Fn(std::io::Error) -> AgentError,
    mut emit: impl FnMut(Part) -> bool,
) -> usize {
    // One byte over the limit tells a body that is too large from one that just fits.
    let mut reader = reader.take(limit.saturating_add(1));
    let mut read: u64 = 0;
    let mut parts = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let got = match reader.read_until(b'\n', &mut line) {
            Ok(0) => return parts,
            Ok(got) => got as u64,
            Err(error) => {
                emit(Err(read_error(error)));
                return parts;
            }
        };
        read += got;
        if read > limit {
            emit(Err(AgentError::TooLarge { limit }));
            return parts;
        }
        let reply = match decode(&line) {
            Ok(None) => continue,
            Ok(Some(reply)) => reply,
            Err(error) => {
                emit(Err(error));
                return parts;
            }
        };
        if parts == MAX_STREAM_PARTS {
            emit(Err(AgentError::Decode {
                error: format!("the answer has more than {MAX_STREAM_PARTS} parts"),
                body: String::new(),
            }));
            return parts;
        }
        parts += 1;
        if !emit(Ok(reply)) {
            return parts;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &[u8]) -> Result<Option<AgentReply>, AgentError> {
        let line = line.trim_ascii();
        if line.is_empty() || line == b"null" {
            return Ok(None);
        }
        serde_json::from_slice::<AgentReply>(line)
            .map(Some)
            .map_err(|error| AgentError::Decode {
                error: error.to_string(),
                body: String::new(),
            })
    }

    fn read(body: &str, limit: u64) -> Vec<Result<String, String>> {
        let mut seen = Vec::new();
        read_ndjson(
            body.as_bytes(),
            limit,
            decode,
            |error| AgentError::Config(error.to_string()),
            |part| {
                seen.push(
                    part.map(|reply| reply.text.unwrap_or_default())
                        .map_err(|error| error.to_string()),
                );
                true
            },
        );
        seen
    }

    #[test]
    fn each_line_is_one_part_blank_and_null_lines_are_skipped() {
        let body = "{\"text\":\"Checking pods…\"}\n\n null \n{\"text\":\"2 pods restarted\"}";
        assert_eq!(
            read(body, MAX_REPLY_BYTES),
            vec![Ok("Checking pods…".into()), Ok("2 pods restarted".into())]
        );
    }

    #[test]
    fn a_bad_line_ends_the_stream_and_what_came_before_stands() {
        let body = "{\"text\":\"one\"}\n<html>\n{\"text\":\"never read\"}\n";
        let seen = read(body, MAX_REPLY_BYTES);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], Ok("one".into()));
        assert!(seen[1].as_ref().unwrap_err().contains("not a valid reply"));
    }

    #[test]
    fn the_byte_and_part_limits_hold() {
        let line = "{\"text\":\"part\"}\n";
        let seen = read(&line.repeat(3), (line.len() * 2) as u64);
        assert_eq!(seen.len(), 3);
        assert!(seen[2].as_ref().unwrap_err().contains("larger than"));

        let seen = read(&line.repeat(MAX_STREAM_PARTS + 5), MAX_REPLY_BYTES);
        assert_eq!(seen.len(), MAX_STREAM_PARTS + 1);
        assert!(
            seen[MAX_STREAM_PARTS]
                .as_ref()
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn a_reader_that_stops_listening_stops_the_reading() {
        let mut calls = 0;
        let parts = read_ndjson(
            "{\"text\":\"a\"}\n{\"text\":\"b\"}\n".as_bytes(),
            MAX_REPLY_BYTES,
            decode,
            |error| AgentError::Config(error.to_string()),
            |_| {
                calls += 1;
                false
            },
        );
        assert_eq!((parts, calls), (1, 1));
    }

    #[tokio::test]
    async fn a_whole_answer_is_one_part_and_no_answer_is_none() {
        let mut stream =
            ReplyStream::whole(Box::pin(async { Ok(Some(AgentReply::text(None, "hi"))) }));
        assert_eq!(
            stream.next().await.unwrap().unwrap().text.as_deref(),
            Some("hi")
        );
        assert!(stream.next().await.is_none());
        let mut none = ReplyStream::whole(Box::pin(async { Ok(None) }));
        assert!(none.next().await.is_none());
    }

    #[tokio::test]
    async fn channel_parts_arrive_in_order() {
        let (sender, mut stream) = ReplyStream::channel();
        let writer = std::thread::spawn(move || {
            for text in ["a", "b", "c"] {
                assert!(sender.send_blocking(Ok(AgentReply::text(None, text))));
            }
        });
        let mut texts = Vec::new();
        while let Some(part) = stream.next().await {
            texts.push(part.unwrap().text.unwrap());
        }
        writer.join().unwrap();
        assert_eq!(texts, ["a", "b", "c"]);
    }
}
