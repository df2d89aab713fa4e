//! Markdown from the agent → WhatsApp's own formatting, through a real Markdown parser.
//!
//! WhatsApp knows `*bold*`, `_italic_`, `~strike~`, `` `code` ``, ```` ``` ```` blocks, `- `
//! and `1. ` lists and `> ` quotes, and nothing else; everything else becomes readable text.
//! <https://faq.whatsapp.com/539178204879377>

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
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

/// Converts the agent's Markdown into WhatsApp-formatted text, trailing whitespace trimmed.
///
/// Plain text without Markdown comes out unchanged, apart from trailing whitespace and runs
/// of blank lines (paragraphs are separated by exactly one blank line).
pub fn to_whatsapp(markdown: &str) -> String {
    // Windows line ends would otherwise survive verbatim inside code blocks.
    let source = markdown.replace("\r\n", "\n");
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    let mut writer = Writer::new(&source);
    for (event, range) in Parser::new_ext(&source, options).into_offset_iter() {
        writer.event(event, range);
    }
    writer.finish()
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
}

impl<'s> Writer<'s> {
    fn new(source: &'s str) -> Self {
        Self {
            source,
            out: String::with_capacity(source.len()),
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
        }
    }

    fn finish(mut self) -> String {
        let len = self.out.trim_end().len();
        self.out.truncate(len);
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
                    let line_start = self.source[..range.start].rfind('\n').map_or(0, |i| i + 1);
                    let indent = &self.source[line_start..range.start];
                    if !indent.is_empty() && indent.chars().all(|c| c == ' ' || c == '\t') {
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
            Tag::Emphasis => self.write(ITALIC),
            Tag::Strong => {
                if self.bold == 0 {
                    self.write(BOLD);
                }
                self.bold += 1;
            }
            Tag::Strikethrough => self.write(STRIKE),
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
                self.containers.pop();
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
                self.containers.pop();
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
            TagEnd::Emphasis => self.write(ITALIC),
            TagEnd::Strong => {
                self.bold = self.bold.saturating_sub(1);
                if self.bold == 0 {
                    self.write(BOLD);
                }
            }
            TagEnd::Strikethrough => self.write(STRIKE),
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
            self.out.push_str(&prefix);
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
                    self.out.push_str(prefix.trim_end());
                }
                self.newline();
            }
            if line.is_empty() {
                continue;
            }
            self.write_prefix_if_line_start();
            self.out.push_str(line);
        }
    }

    fn write_prefix_if_line_start(&mut self) {
        if self.at_line_start {
            let prefix = self.line_prefix();
            self.out.push_str(&prefix);
            self.at_line_start = false;
        }
    }

    /// Ends the line; trailing spaces go, except in code blocks, which stay verbatim.
    fn newline(&mut self) {
        if !self.in_code_block {
            let len = self.out.trim_end_matches([' ', '\t']).len();
            self.out.truncate(len);
        }
        self.out.push('\n');
        self.at_line_start = true;
    }

    /// The prefix of a new line: quote markers, list indentation, an item's marker once.
    fn line_prefix(&mut self) -> String {
        let mut prefix = String::new();
        for container in &mut self.containers {
            match container {
                Container::Quote => prefix.push_str(QUOTE),
                Container::Item { marker } => match marker.take() {
                    Some(marker) => prefix.push_str(&marker),
                    None => prefix.push_str(INDENT),
                },
            }
        }
        prefix
    }

    /// A blank line inside quotes keeps the `>` so the quote reads as one block.
    fn blank_line_prefix(&self) -> String {
        let mut prefix = String::new();
        for container in &self.containers {
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
    use super::to_whatsapp;

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
    fn empty_input_gives_empty_output() {
        assert_eq!(to_whatsapp(""), "");
        assert_eq!(to_whatsapp(" \n\n\t"), "");
    }
}
