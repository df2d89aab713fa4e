//! WhatsApp's message limits, counted in Unicode scalar values (`char`s), and [`check`], which
//! also refuses what WhatsApp would show badly or not at all (see [`super::sanitize`]).
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages>
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages>

use super::sanitize::{is_control, is_visible, link_problem};
use crate::domain::OutgoingMessage;

/// Text message body.
pub const TEXT_BODY_MAX: usize = 4096;
/// Interactive message body.
pub const INTERACTIVE_BODY_MAX: usize = 1024;
/// Interactive text header.
pub const HEADER_MAX: usize = 60;
/// Interactive footer.
pub const FOOTER_MAX: usize = 60;
/// Reply buttons per message.
pub const BUTTONS_MAX: usize = 3;
/// Reply button title.
pub const BUTTON_TITLE_MAX: usize = 20;
/// Reply button id.
pub const BUTTON_ID_MAX: usize = 256;
/// List's menu button text.
pub const LIST_BUTTON_MAX: usize = 20;
/// Sections per list.
pub const LIST_SECTIONS_MAX: usize = 10;
/// Section title (required when a list has more than one section).
pub const SECTION_TITLE_MAX: usize = 24;
/// Rows in all sections together.
pub const LIST_ROWS_MAX: usize = 10;
/// Row title.
pub const ROW_TITLE_MAX: usize = 24;
/// Row description.
pub const ROW_DESCRIPTION_MAX: usize = 72;
/// Row id.
pub const ROW_ID_MAX: usize = 200;
/// Media caption.
pub const CAPTION_MAX: usize = 1024;
/// Our own bound, not WhatsApp's (Meta documents none): a document's file name. Long enough
/// for any real name, short enough for any file system once downloaded.
pub const FILENAME_MAX: usize = 240;
/// Our own bound, not WhatsApp's: media messages one reply may become, so that a runaway agent
/// listing hundreds of attachments cannot flood the chat (the rest are counted in the note).
pub const MAX_ATTACHMENTS: usize = 10;
/// Our own bound, not WhatsApp's: messages one reply's text may become (the interactive body
/// included) before it is cut with a marker, so a runaway agent cannot flood the chat.
pub const MAX_TEXT_PARTS: usize = 10;
/// Quick-reply buttons a template may have.
/// <https://developers.facebook.com/docs/whatsapp/business-management-api/message-templates/components>
pub const TEMPLATE_QUICK_REPLIES_MAX: usize = 10;
/// Our bound on one template body parameter (Meta refuses newlines, tabs and runs of more than
/// four spaces in them; the body as a whole is bounded by the template).
pub const TEMPLATE_PARAMETER_MAX: usize = 1024;

/// Checks one outgoing message against every limit above, and against what [`super::sanitize`]
/// keeps out: a title, id, header, footer, button text or file name with a control character
/// or with nothing visible, a caption with a control character other than a line break, a link
/// WhatsApp cannot fetch. `Err` names the first broken rule.
pub fn check(message: &OutgoingMessage) -> Result<(), String> {
    let within = |what: &str, value: &str, max: usize| {
        let count = value.chars().count();
        if count > max {
            Err(format!("{what} has {count} chars, limit {max}"))
        } else {
            Ok(())
        }
    };
    let not_blank = |what: &str, value: &str| {
        if value.trim().is_empty() {
            Err(format!("{what} is empty"))
        } else {
            Ok(())
        }
    };
    // A short field: shown on one line, so no control character; and something to see.
    let field = |what: &str, value: &str, max: usize| {
        if value.chars().any(is_control) {
            return Err(format!("{what} {value:?} has a control character"));
        }
        if !is_visible(value) {
            return Err(format!("{what} {value:?} shows nothing"));
        }
        within(what, value, max)
    };
    let caption = |caption: &Option<String>| match caption {
        Some(caption) if caption.chars().any(|c| c != '\n' && is_control(c)) => {
            Err(format!("caption {caption:?} has a control character"))
        }
        Some(caption) => {
            not_blank("caption", caption)?;
            within("caption", caption, CAPTION_MAX)
        }
        None => Ok(()),
    };
    let link = |what: &str, link: &str| match link_problem(link) {
        Some(problem) => Err(format!("{what} {link:?}: {problem}")),
        None => Ok(()),
    };
    match message {
        OutgoingMessage::Template {
            template,
            body,
            quick_replies,
        } => {
            not_blank("template name", &template.name)?;
            for parameter in body {
                not_blank("template parameter", parameter)?;
                within("template parameter", parameter, TEMPLATE_PARAMETER_MAX)?;
                if parameter.contains(['\n', '\t']) || parameter.contains("     ") {
                    return Err(format!(
                        "template parameter {parameter:?} has a newline, a tab or more than four spaces in a row"
                    ));
                }
            }
            if quick_replies.len() > TEMPLATE_QUICK_REPLIES_MAX {
                return Err(format!(
                    "{} quick replies, allowed at most {TEMPLATE_QUICK_REPLIES_MAX}",
                    quick_replies.len()
                ));
            }
            for payload in quick_replies {
                field("quick reply payload", payload, BUTTON_ID_MAX)?;
            }
            Ok(())
        }
        OutgoingMessage::Reaction { message_id, emoji } => {
            not_blank("reaction message id", message_id)?;
            not_blank("reaction emoji", emoji)
        }
        OutgoingMessage::Text { body } => {
            not_blank("text body", body)?;
            within("text body", body, TEXT_BODY_MAX)
        }
        OutgoingMessage::Buttons {
            header,
            body,
            footer,
            buttons,
        } => {
            not_blank("button body", body)?;
            within("button body", body, INTERACTIVE_BODY_MAX)?;
            if let Some(header) = header {
                field("header", header, HEADER_MAX)?;
            }
            if let Some(footer) = footer {
                field("footer", footer, FOOTER_MAX)?;
            }
            if buttons.is_empty() || buttons.len() > BUTTONS_MAX {
                return Err(format!(
                    "{} buttons, allowed 1-{BUTTONS_MAX}",
                    buttons.len()
                ));
            }
            let mut titles = std::collections::HashSet::new();
            let mut ids = std::collections::HashSet::new();
            for button in buttons {
                field("button title", &button.title, BUTTON_TITLE_MAX)?;
                field("button id", &button.id, BUTTON_ID_MAX)?;
                if button.id.trim() != button.id {
                    return Err(format!("button id {:?} has surrounding spaces", button.id));
                }
                if !titles.insert(button.title.as_str()) {
                    return Err(format!("duplicate button title {:?}", button.title));
                }
                if !ids.insert(button.id.as_str()) {
                    return Err(format!("duplicate button id {:?}", button.id));
                }
            }
            Ok(())
        }
        OutgoingMessage::List {
            header,
            body,
            footer,
            button,
            sections,
        } => {
            not_blank("list body", body)?;
            within("list body", body, INTERACTIVE_BODY_MAX)?;
            if let Some(header) = header {
                field("header", header, HEADER_MAX)?;
            }
            if let Some(footer) = footer {
                field("footer", footer, FOOTER_MAX)?;
            }
            field("list button", button, LIST_BUTTON_MAX)?;
            if sections.is_empty() || sections.len() > LIST_SECTIONS_MAX {
                return Err(format!(
                    "{} sections, allowed 1-{LIST_SECTIONS_MAX}",
                    sections.len()
                ));
            }
            let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
            if rows == 0 || rows > LIST_ROWS_MAX {
                return Err(format!("{rows} rows, allowed 1-{LIST_ROWS_MAX}"));
            }
            let mut ids = std::collections::HashSet::new();
            for section in sections {
                match &section.title {
                    Some(title) => field("section title", title, SECTION_TITLE_MAX)?,
                    None if sections.len() > 1 => {
                        return Err("section title missing in a multi-section list".into());
                    }
                    None => {}
                }
                if section.rows.is_empty() {
                    return Err("empty section".into());
                }
                for row in &section.rows {
                    field("row id", &row.id, ROW_ID_MAX)?;
                    field("row title", &row.title, ROW_TITLE_MAX)?;
                    if let Some(description) = &row.description {
                        field("row description", description, ROW_DESCRIPTION_MAX)?;
                    }
                    if !ids.insert(row.id.as_str()) {
                        return Err(format!("duplicate row id {:?}", row.id));
                    }
                }
            }
            Ok(())
        }
        OutgoingMessage::Image {
            link: url,
            caption: text,
        }
        | OutgoingMessage::Video {
            link: url,
            caption: text,
        } => {
            link("media link", url)?;
            caption(text)
        }
        OutgoingMessage::Document {
            link: url,
            filename,
            caption: text,
        } => {
            link("document link", url)?;
            if let Some(filename) = filename {
                field("file name", filename, FILENAME_MAX)?;
            }
            caption(text)
        }
        OutgoingMessage::Audio { link: url } | OutgoingMessage::Sticker { link: url } => {
            link("media link", url)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ReplyButton;

    #[test]
    fn template_parameters_and_quick_replies_are_bounded() {
        let template = |body: Vec<&str>, replies: usize| OutgoingMessage::Template {
            template: crate::domain::TemplateRef::parse("answer_ready:en").unwrap(),
            body: body.into_iter().map(Into::into).collect(),
            quick_replies: (0..replies).map(|n| format!("wal:window:{n}")).collect(),
        };
        assert!(check(&template(vec!["k8s"], 1)).is_ok());
        assert!(check(&template(Vec::new(), 0)).is_ok());
        for bad in ["", "two\nlines", "tab\there", "wide     gap"] {
            assert!(check(&template(vec![bad], 1)).is_err(), "{bad:?}");
        }
        let long = "x".repeat(TEMPLATE_PARAMETER_MAX + 1);
        assert!(check(&template(vec![long.as_str()], 1)).is_err());
        assert!(check(&template(Vec::new(), TEMPLATE_QUICK_REPLIES_MAX + 1)).is_err());
    }

    fn button(title: &str) -> OutgoingMessage {
        OutgoingMessage::Buttons {
            header: None,
            body: "Pick".into(),
            footer: None,
            buttons: vec![ReplyButton {
                id: "a".into(),
                title: title.into(),
            }],
        }
    }

    #[test]
    fn rejects_invisible_titles_and_control_characters_in_short_fields() {
        assert!(check(&button("OK")).is_ok());
        for title in [
            "\u{200B}",
            "\u{2800}\u{2800}",
            "\u{3164}",
            "O\nK",
            "\u{202E}OK",
        ] {
            assert!(check(&button(title)).is_err(), "{title:?}");
        }
        let document = |filename: &str, caption: &str| OutgoingMessage::Document {
            link: "https://x.y/r.pdf".into(),
            filename: Some(filename.into()),
            caption: Some(caption.into()),
        };
        assert!(check(&document("r.pdf", "line\nline")).is_ok());
        assert!(check(&document("r\n.pdf", "ok")).is_err());
        assert!(check(&document("r.pdf", "bell\u{7}")).is_err());
    }

    #[test]
    fn rejects_links_whatsapp_cannot_fetch() {
        for link in ["ftp://x.y/a", "https://x.y/a b", "/a.png", "", "https://"] {
            let audio = OutgoingMessage::Audio { link: link.into() };
            assert!(check(&audio).is_err(), "{link:?}");
        }
        let audio = OutgoingMessage::Audio {
            link: "https://x.y/a.ogg".into(),
        };
        assert!(check(&audio).is_ok());
    }
}
