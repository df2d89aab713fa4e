//! Markdown from the agent → WhatsApp's own formatting, through a real Markdown parser.
//!
//! WhatsApp knows `*bold*`, `_italic_`, `~strike~`, `` `code` ``, ```` ``` ```` blocks, `- `
//! and `1. ` lists and `> ` quotes, and nothing else; everything else becomes readable text.
//! <https://faq.whatsapp.com/539178204879377>
//!
//! An agent's reply is untrusted input, so time and memory are linear in it and bounded:
//! - only the first [`MAX_INPUT_BYTES`] are parsed, and conversion stops once the output
//!   passes [`MAX_OUTPUT_BYTES`] (more than ten WhatsApp messages hold); either cut ends
//!   the text with the same marker as a reply cut into too many messages;
//! - a container marker (`>`, `-`, `1.`) that starts past column [`MAX_MARKER_COLUMN`] is
//!   escaped, so it opens no container: the parser revisits the open containers on every
//!   line, which made a reply nesting thousands of quotes above thousands of lines quadratic;
//! - quotes, lists and emphasis deeper than [`MAX_NESTING`] are flattened into that level:
//!   every line used to repeat the whole `> > > …` prefix of its depth;
//! - tables are parsed only when their cells, counted before parsing, are fewer than the
//!   reply's bytes: the parser fills a short row with empty cells, so a wide header over many
//!   one-cell rows would make hundreds of cells per byte (they become plain text instead).

use super::limits::{MAX_TEXT_PARTS, TEXT_BODY_MAX};
use super::split::truncation_marker;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use std::borrow::Cow;
use std::ops::Range;

/// WhatsApp's bold marker (Markdown's `**strong**`).
const BOLD: &str = "*";
/// WhatsApp's italic marker (Markdown's `*emphasis*`).
const ITALIC: &str = "_";
/// WhatsApp's strikethrough marker (Markdown's `~~strike~~`).
const STRIKE: &str = "~";
/// WhatsApp's inline code marker.
const INLINE_CODE: &str = "`";
/// WhatsApp's monospace block fence.
pub const FENCE: &str = "```";
/// What a horizontal rule becomes: WhatsApp has no rule, a line of em dashes reads as one.
const RULE: &str = "———";
/// Bullet list marker.
const BULLET: &str = "- ";
/// Indentation per nesting level of a list, and of an item's continuation lines.
const INDENT: &str = "  ";
/// Prefix of every line of a block quote.
const QUOTE: &str = "> ";
/// Between the cells of a table row.
const CELL_SEPARATOR: &str = " | ";

/// The most Markdown parsed from one text: far more than ten messages of 4096 chars, unless
/// almost all of it is syntax that converts to nothing. The agent's HTTP answer may be 1 MiB.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;
/// Conversion stops beyond this many bytes of output: one message more than a reply may
/// become, in 4-byte chars, so the split still sees that there was more and says so.
pub const MAX_OUTPUT_BYTES: usize = (MAX_TEXT_PARTS + 1) * TEXT_BODY_MAX * 4;
/// Levels of quotes, lists and emphasis shown; deeper ones are written at this level (list
/// items still with their marker), their text kept.
pub const MAX_NESTING: usize = 8;
/// The column past which `>`, `-`, `+`, `*` or `1.` at the start of a line is text, not a
/// container. Each nested container starts at least one column right of its parent, so no
/// more than this many can be open at once.
pub const MAX_MARKER_COLUMN: usize = 64;
/// Tab stops, as CommonMark counts columns.
const TAB_STOP: usize = 4;

/// Converts the agent's Markdown into WhatsApp-formatted text, trailing whitespace trimmed.
///
/// Plain text without Markdown comes out unchanged, apart from trailing whitespace and runs
/// of blank lines (paragraphs are separated by exactly one blank line). Within the bounds of
/// the module header; a text cut at one of them ends with [`truncation_marker`].
pub fn to_whatsapp(markdown: &str) -> String {
    let parsed = cut_input(markdown);
    // Windows line ends would otherwise survive verbatim inside code blocks.
    let source = if parsed.contains("\r\n") {
        Cow::Owned(parsed.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(parsed)
    };
    let (source, tables) = prepare(&source);
    let mut options = Options::ENABLE_STRIKETHROUGH;
    if tables {
        options |= Options::ENABLE_TABLES;
    }
    let mut writer = Writer::new(&source);
    let mut omitted = markdown[parsed.len()..].chars().count();
    for (event, range) in Parser::new_ext(&source, options).into_offset_iter() {
        let (start, written) = (range.start, writer.out.len());
        writer.event(event, range);
        if writer.full {
            // The rest of the source, less what the last event got in before the bound.
            let got_in = writer
                .out
                .get(written..)
                .map_or(0, |text| text.chars().count());
            omitted += source[start..]
                .chars()
                .count()
                .saturating_sub(got_in)
                .max(1);
            break;
        }
    }
    writer.finish(omitted)
}

/// The first [`MAX_INPUT_BYTES`] of `markdown`, ending at a line end when there is one in the
/// last quarter, else at a char boundary.
fn cut_input(markdown: &str) -> &str {
    if markdown.len() <= MAX_INPUT_BYTES {
        return markdown;
    }
    let mut end = MAX_INPUT_BYTES;
    while !markdown.is_char_boundary(end) {
        end -= 1;
    }
    let head = &markdown[..end];
    match head.rfind('\n') {
        Some(line_end) if line_end >= MAX_INPUT_BYTES / 4 * 3 => &head[..=line_end],
        _ => head,
    }
}

/// One linear pass over the lines before parsing: escapes the first container marker of a
/// line that starts past [`MAX_MARKER_COLUMN`] (see the module header), and tells whether the
/// tables' cells stay within the text's length (see [`table_cells`]).
fn prepare(source: &str) -> (Cow<'_, str>, bool) {
    let mut escapes = Vec::new();
    let mut line_start = 0;
    for line in source.split_inclusive('\n') {
        if let Some(at) = deep_marker(line) {
            escapes.push(line_start + at);
        }
        line_start += line.len();
    }
    let tables = table_cells(source) <= source.len();
    if escapes.is_empty() {
        return (Cow::Borrowed(source), tables);
    }
    let mut escaped = String::with_capacity(source.len() + escapes.len());
    let mut from = 0;
    for at in escapes {
        escaped.push_str(&source[from..at]);
        escaped.push('\\');
        from = at;
    }
    escaped.push_str(&source[from..]);
    (Cow::Owned(escaped), tables)
}

/// Where to put a backslash in `line` so that its first container marker past
/// [`MAX_MARKER_COLUMN`] is text: before the `>` or bullet, or before the `.`/`)` of a number.
/// Once escaped, the rest of the line is a paragraph's text and opens nothing either.
fn deep_marker(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    // A marker must be followed by a space, a tab or the line end.
    let ends_marker =
        |at: usize| matches!(bytes.get(at), None | Some(b' ' | b'\t' | b'\r' | b'\n'));
    let mut column = 0;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        // What the token at `at` is: where its escape would go (whitespace has none), its
        // columns and its bytes.
        let (escape, columns, len) = match byte {
            b' ' => (None, 1, 1),
            b'\t' => (None, TAB_STOP - column % TAB_STOP, 1),
            b'>' => (Some(at), 1, 1),
            b'-' | b'+' | b'*' if ends_marker(at + 1) => (Some(at), 1, 1),
            b'0'..=b'9' => {
                let digits = bytes[at..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let delimiter = at + digits;
                if !matches!(bytes.get(delimiter), Some(b'.' | b')')) || !ends_marker(delimiter + 1)
                {
                    return None;
                }
                (Some(delimiter), digits + 1, digits + 1)
            }
            _ => return None,
        };
        if escape.is_some() && column > MAX_MARKER_COLUMN {
            return escape;
        }
        column += columns;
        at += len;
    }
    None
}

/// An upper bound of the cells the parser would make of the tables in `source`: for each line
/// that can be a table's delimiter row (`|---|:-:|`), its column count times the lines that
/// follow it up to a blank one (which always ends a table). Linear in `source`.
fn table_cells(source: &str) -> usize {
    let mut cells = 0usize;
    let mut columns = 0;
    for line in source.split('\n') {
        let content = line.trim_start_matches([' ', '\t', '>']);
        if content.trim().is_empty() {
            columns = 0;
            continue;
        }
        cells = cells.saturating_add(columns);
        let delimiter_row = content.contains('|')
            && content.contains('-')
            && content
                .bytes()
                .all(|b| matches!(b, b'|' | b'-' | b':' | b' ' | b'\t' | b'\r'));
        if delimiter_row {
            columns = content.split('|').filter(|cell| cell.contains('-')).count();
        }
    }
    cells
}

/// What separates the next block from the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Separator {
    None,
    Line,
    Blank,
}

/// A block that prefixes every line inside it.
#[derive(Debug)]
enum Container {
    Quote,
    /// A list item; `marker` is written on its first line, [`INDENT`] on the following ones.
    Item {
        marker: Option<String>,
    },
}

#[derive(Debug)]
struct ListState {
    /// The next item's number; `None` for a bullet list.
    next: Option<u64>,
    /// `.` or `)` as the agent wrote it.
    delimiter: char,
    /// A loose list (items hold paragraphs) keeps a blank line between items.
    loose: bool,
}

/// A position in the output to come back to when an inline turns out empty.
#[derive(Debug, Clone, Copy)]
struct Mark {
    len: usize,
    at_line_start: bool,
}

#[derive(Debug)]
struct LinkState {
    url: String,
    /// Before the link text.
    start: Mark,
}

#[derive(Debug, Default)]
struct TableState {
    in_head: bool,
    rows: usize,
    cells: usize,
    /// Before and after a header cell's opening bold marker.
    cell_marks: Option<(Mark, usize)>,
}

struct Writer<'s> {
    source: &'s str,
    out: String,
    containers: Vec<Container>,
    lists: Vec<ListState>,
    at_line_start: bool,
    pending: Separator,
    /// Inside a heading, a table header or `**strong**`: nested bold adds no markers.
    bold: usize,
    in_code_block: bool,
    in_paragraph: bool,
    links: Vec<LinkState>,
    /// Before and after a heading's opening bold marker.
    heading: Option<(Mark, usize)>,
    table: TableState,
    /// Open emphasis, strong and strikethrough spans; markers only up to [`MAX_NESTING`].
    inline_depth: usize,
    /// `containers[fresh..]` were opened since the last line prefix: the items among them
    /// may still have their marker to write. Keeps the markers of containers deeper than
    /// [`MAX_NESTING`] from being looked for on every line.
    fresh: usize,
    /// The output reached [`MAX_OUTPUT_BYTES`]: nothing more is written.
    full: bool,
}

impl<'s> Writer<'s> {
    fn new(source: &'s str) -> Self {
        Self {
            source,
            out: String::with_capacity(source.len().min(MAX_OUTPUT_BYTES)),
            containers: Vec::new(),
            lists: Vec::new(),
            at_line_start: true,
            pending: Separator::None,
            bold: 0,
            in_code_block: false,
            in_paragraph: false,
            links: Vec::new(),
            heading: None,
            table: TableState::default(),
            inline_depth: 0,
            fresh: 0,
            full: false,
        }
    }

    /// The output, trimmed; when `omitted_chars` of the source were not converted, a code
    /// block left open is closed and the truncation marker ends the text (past the output
    /// bound: a few bytes).
    fn finish(mut self, omitted_chars: usize) -> String {
        let len = self.out.trim_end().len();
        self.out.truncate(len);
        if omitted_chars > 0 {
            if self.in_code_block {
                self.out.push('\n');
                self.out.push_str(FENCE);
            }
            let marker = truncation_marker(omitted_chars);
            let marker = if self.out.is_empty() {
                marker.trim_start()
            } else {
                &marker
            };
            self.out.push_str(marker);
        }
        self.out
    }

    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        match event {
            Event::Start(tag) => self.start(tag, range),
            Event::End(tag) => self.end(tag),
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => self.write(&text),
            Event::Code(code) => {
                self.write(INLINE_CODE);
                self.write(&code);
                self.write(INLINE_CODE);
            }
            Event::InlineMath(math) => {
                self.write("$");
                self.write(&math);
                self.write("$");
            }
            Event::DisplayMath(math) => {
                self.write("$$");
                self.write(&math);
                self.write("$$");
            }
            Event::FootnoteReference(label) => {
                self.write("[^");
                self.write(&label);
                self.write("]");
            }
            Event::TaskListMarker(checked) => self.write(if checked { "[x] " } else { "[ ] " }),
            Event::SoftBreak | Event::HardBreak => {
                self.newline();
                self.keep_indentation(range.end);
            }
            Event::Rule => {
                self.begin_block();
                self.write(RULE);
                self.end_block();
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>, range: Range<usize>) {
        match tag {
            Tag::Paragraph => {
                self.begin_block();
                if let Some(ListState { loose, .. }) = self.lists.last_mut()
                    && matches!(self.containers.last(), Some(Container::Item { .. }))
                {
                    *loose = true;
                }
                self.in_paragraph = true;
                // Plain text keeps its first line's indentation (the parser drops up to 3 spaces).
                if self.containers.is_empty() {
                    let before = &self.source[..range.start];
                    let indent = &before[before.trim_end_matches([' ', '\t']).len()..];
                    let at_line_start = before.len() == indent.len()
                        || before[..before.len() - indent.len()].ends_with('\n');
                    if !indent.is_empty() && at_line_start {
                        self.write(indent);
                    }
                }
            }
            Tag::Heading { .. } => {
                self.begin_block();
                self.heading = Some(self.open_bold());
            }
            Tag::BlockQuote(_) => {
                self.begin_block();
                self.containers.push(Container::Quote);
            }
            Tag::CodeBlock(_) => {
                self.begin_block();
                self.write(FENCE);
                self.newline();
                self.in_code_block = true;
            }
            Tag::HtmlBlock => self.begin_block(),
            Tag::List(start) => {
                self.begin_block();
                let delimiter = self.source[range.start..]
                    .trim_start()
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .chars()
                    .next()
                    .filter(|c| *c == ')')
                    .unwrap_or('.');
                self.lists.push(ListState {
                    next: start,
                    delimiter,
                    loose: false,
                });
            }
            Tag::Item => {
                self.begin_block();
                let marker = match self.lists.last_mut() {
                    Some(ListState {
                        next: Some(number),
                        delimiter,
                        ..
                    }) => {
                        let marker = format!("{number}{delimiter} ");
                        *number = number.saturating_add(1);
                        marker
                    }
                    _ => BULLET.to_owned(),
                };
                self.containers.push(Container::Item {
                    marker: Some(marker),
                });
            }
            Tag::Table(_) => {
                self.begin_block();
                self.table = TableState::default();
            }
            Tag::TableHead => {
                self.table.in_head = true;
                self.start_row();
            }
            Tag::TableRow => self.start_row(),
            Tag::TableCell => {
                if self.table.cells > 0 {
                    self.write(CELL_SEPARATOR);
                }
                self.table.cells += 1;
                if self.table.in_head {
                    self.table.cell_marks = Some(self.open_bold());
                }
            }
            Tag::Emphasis => self.open_inline(ITALIC),
            Tag::Strong => {
                self.open_inline(if self.bold == 0 { BOLD } else { "" });
                self.bold += 1;
            }
            Tag::Strikethrough => self.open_inline(STRIKE),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                let start = self.mark();
                self.links.push(LinkState {
                    url: dest_url.into_string(),
                    start,
                });
            }
            // Not enabled in the parser options; their content still comes through as text.
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => self.begin_block(),
            Tag::Superscript | Tag::Subscript => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                self.in_paragraph = false;
                self.end_block();
            }
            TagEnd::Heading(_) => {
                if let Some(marks) = self.heading.take() {
                    self.close_bold(marks);
                }
                self.end_block();
            }
            TagEnd::BlockQuote(_) => {
                self.pop_container();
                self.end_block();
            }
            TagEnd::CodeBlock => {
                if !self.at_line_start {
                    self.newline();
                }
                self.write(FENCE);
                self.in_code_block = false;
                self.end_block();
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.end_block();
            }
            TagEnd::Item => {
                // An empty item still shows its marker.
                if let Some(Container::Item { marker: Some(_) }) = self.containers.last() {
                    self.write_prefix_if_line_start();
                }
                self.pop_container();
                self.pending = self.pending.max(Separator::Line);
            }
            TagEnd::Table => {
                self.table = TableState::default();
                self.end_block();
            }
            TagEnd::TableHead => self.table.in_head = false,
            TagEnd::TableCell => {
                if let Some(marks) = self.table.cell_marks.take() {
                    self.close_bold(marks);
                }
            }
            TagEnd::Emphasis => self.close_inline(ITALIC),
            TagEnd::Strong => {
                self.bold = self.bold.saturating_sub(1);
                self.close_inline(if self.bold == 0 { BOLD } else { "" });
            }
            TagEnd::Strikethrough => self.close_inline(STRIKE),
            TagEnd::Link | TagEnd::Image => {
                if let Some(link) = self.links.pop() {
                    self.close_link(link);
                }
            }
            TagEnd::HtmlBlock
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::MetadataBlock(_) => self.end_block(),
            TagEnd::TableRow | TagEnd::Superscript | TagEnd::Subscript => {}
        }
    }

    /// Opens an emphasis, strong or strikethrough span; deeper than [`MAX_NESTING`] spans, its
    /// marker is left out (the text stays).
    fn open_inline(&mut self, marker: &str) {
        self.inline_depth += 1;
        if self.inline_depth <= MAX_NESTING {
            self.write(marker);
        }
    }

    /// Closes [`Self::open_inline`] with the same marker.
    fn close_inline(&mut self, marker: &str) {
        if self.inline_depth <= MAX_NESTING {
            self.write(marker);
        }
        self.inline_depth = self.inline_depth.saturating_sub(1);
    }

    /// `text (url)`; just the url when the text is the url (autolinks) or empty.
    fn close_link(&mut self, link: LinkState) {
        let url = link.url.trim();
        let text = self.out.get(link.start.len..).unwrap_or_default().trim();
        let bare_url = url.strip_prefix("mailto:").unwrap_or(url);
        if url.is_empty() || text == url || text == bare_url {
            return;
        }
        if text.is_empty() {
            self.reset(link.start);
            self.write(url);
        } else {
            self.write(" (");
            self.write(url);
            self.write(")");
        }
    }

    /// Writes an opening bold marker unless already bold; returns where to undo it if empty.
    fn open_bold(&mut self) -> (Mark, usize) {
        let before = self.mark();
        if self.bold == 0 {
            self.write(BOLD);
        }
        self.bold += 1;
        (before, self.out.len())
    }

    /// Closes [`Self::open_bold`]; an empty bold span (`**`) is removed instead.
    fn close_bold(&mut self, (before, after): (Mark, usize)) {
        self.bold = self.bold.saturating_sub(1);
        if self.bold > 0 {
            return;
        }
        if self.out.len() == after {
            self.reset(before);
        } else {
            self.write(BOLD);
        }
    }

    fn pop_container(&mut self) {
        self.containers.pop();
        self.fresh = self.fresh.min(self.containers.len());
    }

    fn start_row(&mut self) {
        if self.table.rows > 0 {
            self.newline();
        }
        self.table.rows += 1;
        self.table.cells = 0;
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.out.len(),
            at_line_start: self.at_line_start,
        }
    }

    fn reset(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        self.at_line_start = mark.at_line_start;
    }

    /// After a block: a blank line before the next one, or just a line break inside the item of
    /// a tight list (whose items hold no paragraphs), so the list stays compact.
    fn end_block(&mut self) {
        let in_tight_item = matches!(self.containers.last(), Some(Container::Item { .. }))
            && self.lists.last().is_some_and(|list| !list.loose);
        self.pending = if in_tight_item {
            Separator::Line
        } else {
            Separator::Blank
        };
    }

    /// Puts the pending separator (line break or blank line) before a new block.
    fn begin_block(&mut self) {
        let separator = std::mem::replace(&mut self.pending, Separator::None);
        if self.out.is_empty() {
            return;
        }
        if !self.at_line_start {
            self.newline();
        }
        if separator == Separator::Blank {
            let prefix = self.blank_line_prefix();
            self.push(&prefix);
            self.newline();
        }
    }

    /// Plain text keeps the indentation of its continuation lines (outside lists and quotes,
    /// where indentation is Markdown syntax).
    fn keep_indentation(&mut self, from: usize) {
        if !self.in_paragraph || !self.containers.is_empty() {
            return;
        }
        let rest = self.source.get(from..).unwrap_or_default();
        let indent_len = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        if indent_len > 0 {
            let indent = &rest[..indent_len];
            self.write(indent);
        }
    }

    /// Writes text, prefixing each new line with the quote and list markers around it.
    fn write(&mut self, text: &str) {
        for (index, line) in text.split('\n').enumerate() {
            if index > 0 {
                if self.at_line_start && !self.containers.is_empty() {
                    let prefix = self.line_prefix();
                    self.push(prefix.trim_end());
                }
                self.newline();
            }
            if line.is_empty() {
                continue;
            }
            self.write_prefix_if_line_start();
            self.push(line);
        }
    }

    fn write_prefix_if_line_start(&mut self) {
        if self.at_line_start {
            let prefix = self.line_prefix();
            self.push(&prefix);
            self.at_line_start = false;
        }
    }

    /// Ends the line; trailing spaces go, except in code blocks, which stay verbatim.
    fn newline(&mut self) {
        if !self.in_code_block {
            let len = self.out.trim_end_matches([' ', '\t']).len();
            self.out.truncate(len);
        }
        self.push("\n");
        self.at_line_start = true;
    }

    /// Appends to the output up to [`MAX_OUTPUT_BYTES`] (on a char boundary); past it, sets
    /// [`Self::full`] and drops the rest and every later text.
    fn push(&mut self, text: &str) {
        if self.full {
            return;
        }
        let room = MAX_OUTPUT_BYTES.saturating_sub(self.out.len());
        if text.len() <= room {
            self.out.push_str(text);
            return;
        }
        let mut end = room;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.out.push_str(&text[..end]);
        self.full = true;
    }

    /// The prefix of a new line: quote markers, list indentation, an item's marker once.
    /// Only the outer [`MAX_NESTING`] levels add to it, so a line costs the same at any depth;
    /// an item opened deeper still shows its marker, once.
    fn line_prefix(&mut self) -> String {
        let mut prefix = String::new();
        let shown = self.containers.len().min(MAX_NESTING);
        for container in &mut self.containers[..shown] {
            match container {
                Container::Quote => prefix.push_str(QUOTE),
                Container::Item { marker } => match marker.take() {
                    Some(marker) => prefix.push_str(&marker),
                    None => prefix.push_str(INDENT),
                },
            }
        }
        let deeper = shown.max(self.fresh);
        for container in self.containers.iter_mut().skip(deeper) {
            if let Container::Item { marker } = container
                && let Some(marker) = marker.take()
            {
                prefix.push_str(&marker);
            }
        }
        self.fresh = self.containers.len();
        prefix
    }

    /// A blank line inside quotes keeps the `>` so the quote reads as one block.
    fn blank_line_prefix(&self) -> String {
        let mut prefix = String::new();
        for container in self.containers.iter().take(MAX_NESTING) {
            match container {
                Container::Quote => prefix.push_str(QUOTE),
                Container::Item { .. } => prefix.push_str(INDENT),
            }
        }
        prefix.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bold_becomes_single_asterisks() {
        assert_eq!(to_whatsapp("a **b** c __d__"), "a *b* c *d*");
    }

    #[test]
    fn italic_becomes_underscores() {
        assert_eq!(to_whatsapp("*i* and _j_"), "_i_ and _j_");
    }

    #[test]
    fn bold_italic_nests() {
        assert_eq!(to_whatsapp("***both***"), "_*both*_");
    }

    #[test]
    fn strikethrough_becomes_single_tilde() {
        assert_eq!(to_whatsapp("~~gone~~"), "~gone~");
    }

    #[test]
    fn inline_code_stays_backticked() {
        assert_eq!(
            to_whatsapp("run `kubectl get **pods**`"),
            "run `kubectl get **pods**`"
        );
    }

    #[test]
    fn fenced_code_is_kept_verbatim() {
        let markdown = "Logs:\n\n```rust\nfn main() { **x** }\n  indented  \n```\nafter";
        assert_eq!(
            to_whatsapp(markdown),
            "Logs:\n\n```\nfn main() { **x** }\n  indented  \n```\n\nafter"
        );
    }

    #[test]
    fn indented_code_becomes_a_fence() {
        assert_eq!(
            to_whatsapp("text\n\n    let x = 1;\n"),
            "text\n\n```\nlet x = 1;\n```"
        );
    }

    #[test]
    fn headings_become_bold_lines() {
        assert_eq!(
            to_whatsapp("# Title\nbody\n## **Sub** title"),
            "*Title*\n\nbody\n\n*Sub title*"
        );
    }

    #[test]
    fn empty_heading_leaves_no_markers() {
        assert_eq!(to_whatsapp("#\n\ntext"), "text");
    }

    #[test]
    fn paragraphs_are_separated_by_one_blank_line() {
        assert_eq!(to_whatsapp("one\n\n\n\ntwo"), "one\n\ntwo");
    }

    #[test]
    fn line_breaks_are_kept() {
        assert_eq!(to_whatsapp("a\nb  \nc\\\nd"), "a\nb\nc\nd");
    }

    #[test]
    fn plain_text_comes_out_unchanged() {
        let plain = "Found 2 pods in namespace prod:\n  api-1 Running (3 restarts)\n  api-2 Pending\nCheck node_pool_a & retry at 10:30 - or not.\n\nThanks! 👍 — 漢字 café";
        assert_eq!(to_whatsapp(plain), plain);
        assert_eq!(
            to_whatsapp("  indented first line\nnext   \n\n"),
            "  indented first line\nnext"
        );
    }

    #[test]
    fn bullet_lists_use_dashes() {
        assert_eq!(
            to_whatsapp("* one\n* two\n+ three"),
            "- one\n- two\n\n- three"
        );
    }

    #[test]
    fn ordered_lists_respect_the_start_number() {
        assert_eq!(to_whatsapp("3. three\n4. four\n"), "3. three\n4. four");
        assert_eq!(to_whatsapp("1) one\n2) two"), "1) one\n2) two");
    }

    #[test]
    fn nested_lists_are_indented_two_spaces_per_level() {
        assert_eq!(
            to_whatsapp("- a\n  - b\n    - c\n- d\n\nafter"),
            "- a\n  - b\n    - c\n- d\n\nafter"
        );
        assert_eq!(to_whatsapp("1. a\n   - b\n2. c"), "1. a\n  - b\n2. c");
    }

    #[test]
    fn blocks_inside_a_tight_list_stay_compact() {
        assert_eq!(
            to_whatsapp("1. logs:\n   ```\n   kubectl logs\n   ```\n2. next\n   > quoted\n3. end"),
            "1. logs:\n  ```\n  kubectl logs\n  ```\n2. next\n  > quoted\n3. end"
        );
    }

    #[test]
    fn loose_lists_keep_blank_lines() {
        assert_eq!(to_whatsapp("- a\n\n  more\n- b"), "- a\n\n  more\n\n- b");
    }

    #[test]
    fn blockquotes_prefix_every_line() {
        assert_eq!(
            to_whatsapp("> one\n> two\n>\n> three\n\nafter"),
            "> one\n> two\n>\n> three\n\nafter"
        );
    }

    #[test]
    fn links_show_text_and_url() {
        assert_eq!(
            to_whatsapp("see [the runbook](https://wiki/x) now"),
            "see the runbook (https://wiki/x) now"
        );
    }

    #[test]
    fn autolinks_show_the_url_once() {
        assert_eq!(
            to_whatsapp("<https://x.y/z> [https://a.b](https://a.b) <ops@x.y> [](https://e.f)"),
            "https://x.y/z https://a.b ops@x.y https://e.f"
        );
    }

    #[test]
    fn images_show_alt_and_url() {
        assert_eq!(
            to_whatsapp("![graph](https://x/g.png) ![](https://x/h.png)"),
            "graph (https://x/g.png) https://x/h.png"
        );
    }

    #[test]
    fn tables_become_one_line_per_row() {
        assert_eq!(
            to_whatsapp("| Pod | Status |\n|---|---|\n| api-1 | **Running** |\n| | x |"),
            "*Pod* | *Status*\napi-1 | *Running*\n | x"
        );
    }

    #[test]
    fn horizontal_rule_becomes_em_dashes() {
        assert_eq!(to_whatsapp("a\n\n---\n\nb"), "a\n\n———\n\nb");
    }

    #[test]
    fn raw_html_is_kept_as_text() {
        assert_eq!(to_whatsapp("x <b>y</b>"), "x <b>y</b>");
        assert_eq!(
            to_whatsapp("<div>\nhi\n</div>\n\nafter"),
            "<div>\nhi\n</div>\n\nafter"
        );
    }

    #[test]
    fn code_in_a_list_item_is_indented() {
        assert_eq!(
            to_whatsapp("- step:\n\n  ```\n  ls\n  ```"),
            "- step:\n\n  ```\n  ls\n  ```"
        );
    }

    #[test]
    fn quotes_deeper_than_the_nesting_bound_are_flattened() {
        let deep = format!("{}deep\nlazy\n\nafter", "> ".repeat(MAX_NESTING + 4));
        let flat = "> ".repeat(MAX_NESTING);
        assert_eq!(
            to_whatsapp(&deep),
            format!("{flat}deep\n{flat}lazy\n\nafter")
        );
    }

    #[test]
    fn lists_deeper_than_the_nesting_bound_keep_their_markers_at_the_last_level() {
        let mut markdown = String::new();
        for level in 0..MAX_NESTING + 2 {
            markdown.push_str(&format!("{}- item {level}\n", "  ".repeat(level)));
        }
        markdown.push_str("- back");
        let mut expected = String::new();
        for level in 0..MAX_NESTING + 2 {
            let shown = level.min(MAX_NESTING);
            expected.push_str(&format!("{}- item {level}\n", "  ".repeat(shown)));
        }
        expected.push_str("- back");
        assert_eq!(to_whatsapp(&markdown), expected);
        // Items opened on one line beyond the bound still show their markers, once.
        let one_line = format!("{}x\ny", "- ".repeat(MAX_NESTING + 4));
        assert_eq!(
            to_whatsapp(&one_line),
            format!(
                "{}x\n{}y",
                "- ".repeat(MAX_NESTING + 4),
                INDENT.repeat(MAX_NESTING)
            )
        );
    }

    #[test]
    fn emphasis_deeper_than_the_nesting_bound_keeps_its_text() {
        let depth = MAX_NESTING + 4;
        let markdown = format!("{}x{}", "*a ".repeat(depth), " a*".repeat(depth));
        let expected = format!(
            "{}{}x{}{}",
            "_a ".repeat(MAX_NESTING),
            "a ".repeat(depth - MAX_NESTING),
            " a".repeat(depth - MAX_NESTING),
            " a_".repeat(MAX_NESTING)
        );
        assert_eq!(to_whatsapp(&markdown), expected);
    }

    #[test]
    fn a_marker_past_the_marker_column_is_text() {
        // Quotes at columns 0, 2, …, MAX_MARKER_COLUMN open containers (the outer
        // MAX_NESTING of them shown); from the next one on, the `>`s are the line's text.
        let containers = MAX_MARKER_COLUMN / 2 + 1;
        let markdown = format!("{}deep", "> ".repeat(containers + 7));
        assert_eq!(
            to_whatsapp(&markdown),
            format!("{}{}deep", "> ".repeat(MAX_NESTING), "> ".repeat(7))
        );
        let list = format!("{}1. deep", " ".repeat(MAX_MARKER_COLUMN + 1));
        assert_eq!(deep_marker(&list), Some(MAX_MARKER_COLUMN + 2));
        assert_eq!(deep_marker(&format!("{}x", " ".repeat(200))), None);
        assert_eq!(deep_marker(&format!("{}-x", " ".repeat(200))), None);
        assert_eq!(deep_marker(&format!("{}+", "\t".repeat(17))), Some(17));
    }

    #[test]
    fn tables_whose_rows_would_be_padded_past_their_size_stay_text() {
        let header = format!("{}|\n{}|\n", "|a".repeat(40), "|-".repeat(40));
        let markdown = format!("{header}{}", "x\n".repeat(40));
        assert_eq!(table_cells(&markdown), 40 * 40);
        let converted = to_whatsapp(&markdown);
        assert!(converted.starts_with("|a|a|a|"), "{converted}");
        assert!(!converted.contains(CELL_SEPARATOR));
        // Rows that fill their cells are a table.
        let full = format!("{header}{}", format!("{}|\n", "|x".repeat(40)).repeat(40));
        assert!(table_cells(&full) <= full.len());
        assert!(to_whatsapp(&full).contains("x | x"));
    }

    #[test]
    fn input_past_the_input_bound_is_cut_with_the_marker() {
        // Link reference definitions convert to nothing: only the input bound cuts here.
        let definitions = "[r]: https://x.y/z\n".repeat(MAX_INPUT_BYTES / 19 + 10);
        let markdown = format!("kept\n\n{definitions}lost");
        let converted = to_whatsapp(&markdown);
        assert!(
            converted.starts_with("kept\n\n… (reply truncated: "),
            "{converted}"
        );
        assert!(!converted.contains("lost"));
        let whole_lines = definitions[..MAX_INPUT_BYTES].rfind('\n').expect("lines");
        assert_eq!(to_whatsapp(&definitions[..=whole_lines]), "");
    }

    #[test]
    fn output_past_the_output_bound_is_cut_with_the_marker_and_the_fence_closed() {
        let markdown = format!("```\n{}", "x".repeat(MAX_OUTPUT_BYTES + 1000));
        let converted = to_whatsapp(&markdown);
        let (kept, marker) = converted
            .split_once("\n\n… (reply truncated: ")
            .expect("the marker");
        assert!(kept.len() <= MAX_OUTPUT_BYTES + FENCE.len() + 1);
        assert!(kept.ends_with("xxx\n```"));
        assert_eq!(marker, "1004 more characters)");
        // Quotes over lazy lines, the shape that grew as depth × lines: cut the same way.
        let bomb = format!("{}x\n{}", "> ".repeat(1000), "y\n".repeat(100_000));
        let converted = to_whatsapp(&bomb);
        assert!(converted.len() <= MAX_OUTPUT_BYTES + 100);
        assert!(converted.contains(" more characters)"));
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert_eq!(to_whatsapp(""), "");
        assert_eq!(to_whatsapp(" \n\n\t"), "");
    }
}
