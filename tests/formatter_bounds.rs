//! The reply formatter's memory and output stay linear in a hostile agent reply, and bounded.
//!
//! An agent's reply nesting a thousand quotes above ten thousand lines
//! (`"> " * 1000 + "x\n" + "y\n" * 10000`, 32 KB) took 284 MB to format, 70 KB took 2.7 GB and
//! 140 KB aborted the process. Here a counting global allocator measures the peak of live heap
//! bytes while `format_reply` runs, for that reply and for the other shapes that nest or pad
//! (lists, emphasis, links, tables, code fences), up to 1 MiB, the most the agent client reads.
//!
//! The bound is linear in the part of the reply the formatter parses ([`PARSED_MAX`]; the
//! Markdown parser's tree and inline state take up to ~150 bytes per byte of Markdown that is
//! all syntax) and so absolute: 44 MiB. Only
//! public items are used, so this file also runs against a formatter without the bounds.
//! The peak counter is global: the tests take [`SERIAL`] so that they do not overlap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use whatsapp_agent_lambda::agent::AgentReply;
use whatsapp_agent_lambda::domain::OutgoingMessage;
use whatsapp_agent_lambda::reply::limits::{MAX_TEXT_PARTS, TEXT_BODY_MAX, check};
use whatsapp_agent_lambda::reply::{format_reply, to_whatsapp};

/// The most the agent client reads of an answer (`agent::http::MAX_REPLY_BYTES`).
const REPLY_MAX: usize = 1024 * 1024;
/// The most Markdown the formatter parses of one reply.
const PARSED_MAX: usize = 256 * 1024;
/// Peak heap bytes allowed per parsed byte of reply.
const PEAK_PER_BYTE: usize = 160;
/// Peak heap bytes allowed on top of that, whatever the reply.
const PEAK_SLACK: usize = 4 * 1024 * 1024;
/// The longest converted text worth keeping: one message more than a reply may become, in
/// 4-byte chars, plus the truncation marker.
const CONVERTED_MAX: usize = (MAX_TEXT_PARTS + 1) * TEXT_BODY_MAX * 4 + 100;

// --- Peak-counting allocator --------------------------------------------------------------------

/// `System`, keeping the live heap bytes and their peak since the last [`peak_of`] reset.
/// An allocation that would take the live bytes past [`LIVE_MAX`] fails (the process aborts
/// with "memory allocation failed"), so a formatter that regresses fails fast instead of
/// swapping the machine.
struct PeakAllocator;

/// Far above any bound asserted here, far below the machine's memory.
const LIVE_MAX: usize = 1024 * 1024 * 1024;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl PeakAllocator {
    /// Counts `bytes` more as live; `false` (nothing counted) past [`LIVE_MAX`].
    fn grow(bytes: usize) -> bool {
        let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if live > LIVE_MAX {
            LIVE.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        PEAK.fetch_max(live, Ordering::Relaxed);
        true
    }
}

// SAFETY: every call is forwarded unchanged to `System`, or fails with a null pointer as the
// contract allows.
unsafe impl GlobalAlloc for PeakAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the new block before the old one is freed, as a moving realloc needs both.
        if !Self::grow(new_size) {
            return std::ptr::null_mut();
        }
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: PeakAllocator = PeakAllocator;

/// One test at a time: the peak is process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds [`SERIAL`] until dropped (a test that failed while holding it does not stop the rest).
fn serially() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `work`; returns its result and the peak heap bytes it added to what was live before.
fn peak_of<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let result = work();
    let peak = PEAK.load(Ordering::SeqCst).saturating_sub(before);
    (result, peak)
}

fn peak_bound(reply_len: usize) -> usize {
    PEAK_PER_BYTE * reply_len.min(PARSED_MAX) + PEAK_SLACK
}

/// Asserts that formatting `what`, a reply of `len` bytes, peaked within [`peak_bound`].
fn assert_peak_within(what: &str, len: usize, peak: usize) {
    assert!(
        peak <= peak_bound(len),
        "{what}: {len} bytes peaked at {peak} heap bytes, over {}",
        peak_bound(len)
    );
}

/// The issue's reply: `depth` nested quotes over a paragraph continued by `lines` lazy lines.
fn quote_bomb(depth: usize, lines: usize) -> String {
    format!("{}x\n{}", "> ".repeat(depth), "y\n".repeat(lines))
}

/// `unit` repeated to `len` bytes (cut on a char boundary; all units here are ASCII).
fn repeated(unit: &str, len: usize) -> String {
    let mut text = unit.repeat(len / unit.len() + 1);
    text.truncate(len);
    text
}

/// Hostile shapes, each `len` bytes long: nesting that the output repeats per line, nesting
/// the parser walks per line, padding the parser adds, and plain syntax in bulk.
fn hostile(len: usize) -> Vec<(&'static str, String)> {
    let lazy = |prefix: &str| {
        let head = format!("{}x\n", prefix.repeat(len / 4 / prefix.len()));
        format!("{head}{}", repeated("y\n", len - head.len()))
    };
    let table = format!("{}|\n{}|\n", "|a".repeat(512), "|-".repeat(512));
    let table = format!("{table}{}\n", "x\n".repeat(512));
    vec![
        ("quotes over lazy lines", lazy("> ")),
        ("bullets over lazy lines", lazy("- ")),
        ("numbers over lazy lines", lazy("1. ")),
        ("mixed nesting over lazy lines", lazy("> - 1) * ")),
        ("quotes repeated on every line", {
            repeated(&format!("{}x\n", "> ".repeat(2000)), len)
        }),
        ("indented list staircase", {
            let mut text = String::new();
            let mut level = 0;
            while text.len() < len {
                text.push_str(&format!("{}- x\n", "  ".repeat(level)));
                level += 1;
            }
            text.truncate(len);
            text
        }),
        (
            "code fence in deep quotes",
            lazy("> ").replacen('x', "```", 1),
        ),
        ("nested emphasis", {
            let half = repeated("**_~~", len / 2);
            format!("{half}x{}", repeated("~~_**", len - half.len() - 1))
        }),
        ("nested links", {
            let half = repeated("[![", len / 2);
            format!("{half}x{}", repeated("](u)", len - half.len() - 1))
        }),
        ("wide table over one-cell rows", repeated(&table, len)),
        ("code fences", repeated("```\n", len)),
        ("open brackets", repeated("[", len)),
    ]
}

/// What every formatted reply must satisfy, whatever it was.
fn assert_sendable(name: &str, messages: &[OutgoingMessage]) {
    assert!(
        !messages.is_empty() && messages.len() <= MAX_TEXT_PARTS,
        "{name}: {} messages",
        messages.len()
    );
    for message in messages {
        assert_eq!(check(message), Ok(()), "{name}");
    }
}

#[test]
fn the_issues_quote_bomb_formats_in_memory_linear_in_the_reply_and_bounded() {
    let _serial = serially();
    // 32 KB, 70 KB and 140 KB as in the issue, then the largest reply the agent client reads.
    for (depth, lines) in [
        (1000, 10_000),
        (1000, 27_000),
        (1000, 62_000),
        (1000, 523_000),
    ] {
        let reply = AgentReply::text(None, quote_bomb(depth, lines));
        let len = reply.text.as_deref().map_or(0, str::len);
        assert!(len <= REPLY_MAX);
        let (messages, peak) = peak_of(|| format_reply(&reply));
        println!("quote bomb, {len} bytes: peak {peak} bytes");
        assert_peak_within("the quote bomb", len, peak);
        assert_sendable("quote bomb", &messages);
        match messages.first() {
            Some(OutgoingMessage::Text { body }) => {
                assert!(body.contains("x\n") && body.contains("y\n"), "{body:.200}");
            }
            other => panic!("expected a text first, got {other:?}"),
        }
    }
}

#[test]
fn hostile_replies_of_1_mib_format_in_bounded_memory_and_output() {
    let _serial = serially();
    for (name, text) in hostile(REPLY_MAX) {
        let reply = AgentReply::text(None, text);
        let (messages, peak) = peak_of(|| format_reply(&reply));
        println!("{name}: peak {peak} bytes");
        assert_peak_within(name, REPLY_MAX, peak);
        assert_sendable(name, &messages);
        let converted = to_whatsapp(reply.text.as_deref().unwrap_or_default());
        assert!(
            converted.len() <= CONVERTED_MAX,
            "{name}: converted to {} bytes, over the {CONVERTED_MAX} that can matter",
            converted.len()
        );
    }
}

#[test]
fn smaller_hostile_replies_take_proportionally_less() {
    let _serial = serially();
    const LEN: usize = 32 * 1024;
    for (name, text) in hostile(LEN) {
        let (converted, peak) = peak_of(|| to_whatsapp(&text));
        assert_peak_within(name, LEN, peak);
        // Output linear in the input: at most a line prefix of a few levels per line.
        assert!(
            converted.len() <= 16 * LEN,
            "{name}: {LEN} bytes converted to {} bytes",
            converted.len()
        );
    }
}

#[test]
fn text_nested_past_any_depth_is_kept_flattened() {
    let _serial = serially();
    for prefix in ["> ", "- ", "1. ", "> - ", "* > 2) "] {
        let text = format!(
            "{}the deepest words\nand their lazy line\n",
            prefix.repeat(1000)
        );
        let converted = to_whatsapp(&text);
        let deepest = converted
            .lines()
            .find(|line| line.contains("the deepest words"))
            .unwrap_or_else(|| panic!("{prefix:?}: the deepest text is gone: {converted:.300}"));
        assert!(
            converted.contains("and their lazy line"),
            "{prefix:?}: {converted:.300}"
        );
        // Flattened: no longer than the line the agent wrote (markers past the bound are its
        // text now), plus a few levels of indentation.
        assert!(
            deepest.len() <= prefix.len() * 1000 + "the deepest words".len() + 32,
            "{prefix:?}: a {}-byte line",
            deepest.len()
        );
        let lazy = converted
            .lines()
            .find(|line| line.contains("and their lazy line"))
            .unwrap_or_default();
        assert!(lazy.len() < 64, "{prefix:?}: lazy line {lazy:?}");
    }
}
