//! WhatsApp's message limits, counted in Unicode scalar values (`char`s).
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages>
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages>

use crate::graph::OutgoingMessage;

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
/// Our own bound, not WhatsApp's: messages one reply's text may become (the interactive body
/// included) before it is cut with a marker, so a runaway agent cannot flood the chat.
pub const MAX_TEXT_PARTS: usize = 10;

/// Checks one outgoing message against every limit above; `Err` names the first broken rule.
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
    match message {
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
                within("header", header, HEADER_MAX)?;
            }
            if let Some(footer) = footer {
                within("footer", footer, FOOTER_MAX)?;
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
                not_blank("button title", &button.title)?;
                within("button title", &button.title, BUTTON_TITLE_MAX)?;
                not_blank("button id", &button.id)?;
                within("button id", &button.id, BUTTON_ID_MAX)?;
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
                within("header", header, HEADER_MAX)?;
            }
            if let Some(footer) = footer {
                within("footer", footer, FOOTER_MAX)?;
            }
            not_blank("list button", button)?;
            within("list button", button, LIST_BUTTON_MAX)?;
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
                    Some(title) => {
                        not_blank("section title", title)?;
                        within("section title", title, SECTION_TITLE_MAX)?;
                    }
                    None if sections.len() > 1 => {
                        return Err("section title missing in a multi-section list".into());
                    }
                    None => {}
                }
                if section.rows.is_empty() {
                    return Err("empty section".into());
                }
                for row in &section.rows {
                    not_blank("row id", &row.id)?;
                    within("row id", &row.id, ROW_ID_MAX)?;
                    not_blank("row title", &row.title)?;
                    within("row title", &row.title, ROW_TITLE_MAX)?;
                    if let Some(description) = &row.description {
                        within("row description", description, ROW_DESCRIPTION_MAX)?;
                    }
                    if !ids.insert(row.id.as_str()) {
                        return Err(format!("duplicate row id {:?}", row.id));
                    }
                }
            }
            Ok(())
        }
        OutgoingMessage::Image { link, caption } => {
            not_blank("image link", link)?;
            caption
                .as_deref()
                .map_or(Ok(()), |c| within("caption", c, CAPTION_MAX))
        }
        OutgoingMessage::Document { link, caption, .. } => {
            not_blank("document link", link)?;
            caption
                .as_deref()
                .map_or(Ok(()), |c| within("caption", c, CAPTION_MAX))
        }
    }
}
