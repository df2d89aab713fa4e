//! Template parameters cleaned to Meta's rules, and the start time as pages show it.
//!
//! Meta refuses a template message whose body parameter holds a new line (`\n`, `\r`), a tab,
//! or more than four consecutive spaces (Graph API error 132018), and one that makes the body
//! longer than its 1024 characters. [`template_param`] turns any text into a parameter Meta
//! accepts: control characters go (line breaks and tabs become spaces, so two words stay two
//! words), every run of whitespace becomes one space, the ends are trimmed, the length is
//! capped (the caller chooses the cap so that the body stays within 1024 characters), and an
//! empty result becomes `-` (Meta refuses empty parameters too).

use crate::reply::sanitize::{is_control, is_visible};

/// What an empty parameter becomes.
pub const EMPTY_PARAM: &str = "-";
/// What ends a parameter that was cut.
const ELLIPSIS: char = '…';

/// `text` as a template body parameter: one line, no tab, no control character, no run of
/// spaces (every run of whitespace becomes one space), trimmed, at most `max_chars`
/// characters (cut on a character boundary and ended with `…` when cut; a `max_chars` of 0
/// counts as 1), never empty (`-`).
pub fn template_param(text: &str, max_chars: usize) -> String {
    let max_chars = max_chars.max(1);
    let mut line = String::with_capacity(text.len().min(max_chars * 4));
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() || matches!(c, '\u{2028}' | '\u{2029}') {
            pending_space = true;
        } else if is_control(c) {
            // Removed, not a word break: `a\u{7}b` was one word.
        } else {
            if pending_space && !line.is_empty() {
                line.push(' ');
            }
            pending_space = false;
            line.push(c);
        }
    }
    if !is_visible(&line) {
        return EMPTY_PARAM.to_owned();
    }
    if line.chars().count() <= max_chars {
        return line;
    }
    let mut cut: String = line.chars().take(max_chars - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push(ELLIPSIS);
    cut
}

/// `unix_seconds` as pages show a start time: `2026-12-05 03:12 UTC`.
pub fn start_time(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        second_of_day / 3600,
        second_of_day % 3600 / 60
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), exact for every day an `i64` of seconds can name.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // `day` is 1..=31 and `month` 1..=12 by construction.
    (year, month as u32, day as u32)
}

/// A duration in minutes as notices show it: "23 min", "2 h 5 min", "3 d 4 h".
pub fn duration_words(minutes: i64) -> String {
    if minutes < 60 {
        format!("{minutes} min")
    } else if minutes < 1440 {
        format!("{} h {} min", minutes / 60, minutes % 60)
    } else {
        format!("{} d {} h", minutes / 1440, minutes % 1440 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn line_breaks_tabs_and_space_runs_become_single_spaces() {
        assert_eq!(
            template_param("disk  full\non\tdb-1\r\n     now", 100),
            "disk full on db-1 now"
        );
        assert_eq!(template_param("a\u{2028}b\u{2029}c", 100), "a b c");
        assert_eq!(
            template_param("a\u{a0}\u{a0}\u{a0}\u{a0}\u{a0}b", 100),
            "a b"
        );
    }

    #[test]
    fn control_characters_are_removed_and_the_ends_trimmed() {
        assert_eq!(
            template_param("  \u{7}pods\u{1b} crash\u{202e}ing  ", 100),
            "pods crashing"
        );
    }

    #[test]
    fn an_empty_or_invisible_parameter_becomes_a_dash() {
        for text in ["", "   ", "\n\t\r", "\u{200b}\u{200b}", "\u{7}"] {
            assert_eq!(template_param(text, 10), "-", "{text:?}");
        }
    }

    #[test]
    fn long_text_is_cut_on_a_character_and_ends_with_an_ellipsis() {
        assert_eq!(template_param("abcdef", 6), "abcdef");
        assert_eq!(template_param("abcdefg", 6), "abcde…");
        assert_eq!(template_param("ééééééé", 4), "ééé…");
        assert_eq!(
            template_param("abc def", 5),
            "abc…",
            "no space before the ellipsis"
        );
        assert_eq!(template_param("abc", 0), "…");
        assert_eq!(template_param("a", 0), "a");
    }

    #[test]
    fn start_times_are_minutes_in_utc() {
        assert_eq!(start_time(0), "1970-01-01 00:00 UTC");
        // 2026-12-05T03:12:45Z
        assert_eq!(start_time(1_796_440_365), "2026-12-05 03:12 UTC");
        // Leap day, and the last minute of a year.
        assert_eq!(start_time(1_709_208_000), "2024-02-29 12:00 UTC");
        assert_eq!(start_time(1_735_689_599), "2024-12-31 23:59 UTC");
        assert_eq!(start_time(-60), "1969-12-31 23:59 UTC");
    }

    proptest! {
        #[test]
        fn every_parameter_keeps_metas_rules(text in any::<String>(), max in 0usize..300) {
            let param = template_param(&text, max);
            prop_assert!(!param.is_empty());
            prop_assert!(param.chars().count() <= max.max(1));
            prop_assert!(!param.contains(['\n', '\r', '\t']));
            prop_assert!(!param.contains("     "));
            prop_assert!(!param.chars().any(is_control));
            prop_assert_eq!(param.trim(), param.as_str());
        }

        #[test]
        fn every_start_time_is_formatted(seconds in any::<i64>()) {
            let shown = start_time(seconds);
            prop_assert!(shown.ends_with(" UTC"));
        }
    }
}
