//! Jittered exponential backoff, one helper for both places that wait before trying again:
//! the Graph API client between two attempts of a send, and the worker when it sets an SQS
//! message's visibility before its redelivery.
//!
//! Both double a base wait per retry up to a cap; they spread it differently on purpose
//! ([`Spread`]): a Graph retry must never come at once and may come early ("equal jitter", the
//! upper half of the wait randomised), while an SQS redelivery never comes earlier than the
//! documented schedule (20 s doubling per receive) and only later by up to a quarter. The jitter
//! itself is a fraction in `[0, 1]`, from [`random`] (Graph: parallel senders spread out) or
//! from [`keyed`] (the worker: one record's redeliveries keep their place in the spread).

use std::time::Duration;

/// Most doublings of the base wait: beyond this every wait has long reached its cap.
const MAX_DOUBLINGS: u32 = 31;

/// How a capped wait is spread by its jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// "Equal jitter": half the wait is kept and the other half scaled by the jitter, so the
    /// wait lies in `[wait / 2, wait]`.
    UpperHalf,
    /// Up to `percent` % of the wait is added (whole percents), and the result capped again:
    /// the wait lies in `[wait, wait · (1 + percent / 100)]`.
    AddUpTo { percent: u32 },
}

/// The wait before retry number `retry` (1 = the first): `base · 2^(retry-1)`, at most `cap`,
/// spread by `jitter` (clamped to `[0, 1]`) as `spread` says.
pub fn delay(base: Duration, retry: u32, cap: Duration, spread: Spread, jitter: f64) -> Duration {
    let doublings = retry.saturating_sub(1).min(MAX_DOUBLINGS);
    let full = base.saturating_mul(1 << doublings).min(cap);
    let jitter = jitter.clamp(0.0, 1.0);
    match spread {
        Spread::UpperHalf => full / 2 + full.mul_f64(jitter) / 2,
        Spread::AddUpTo { percent } => {
            // Whole percents, in integers: the wait is exact to the nanosecond.
            let added = (jitter * f64::from(percent)).round() as u32;
            (full + full * added / 100).min(cap)
        }
    }
}

/// A number in `[0, 1)`, without a random-number dependency: std's `RandomState` is seeded per
/// process and advanced per instance.
pub fn random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A fraction in `[0, 1]` taken from `key`, always the same for the same key, in `steps + 1`
/// even steps (`0, 1/steps, …, 1`; `steps` at least 1).
pub fn keyed(key: &str, steps: u32) -> f64 {
    let steps = steps.max(1);
    let hash = key
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    f64::from(hash % (steps + 1)) / f64::from(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(250);
    const CAP: Duration = Duration::from_secs(4);

    #[test]
    fn equal_jitter_keeps_the_lower_half_and_scales_the_upper() {
        let spread = Spread::UpperHalf;
        assert_eq!(delay(BASE, 1, CAP, spread, 0.0), BASE / 2);
        assert_eq!(delay(BASE, 1, CAP, spread, 1.0), BASE);
        assert_eq!(delay(BASE, 3, CAP, spread, 0.5), Duration::from_millis(750));
        assert_eq!(delay(BASE, 10, CAP, spread, 1.0), CAP);
        assert_eq!(delay(BASE, u32::MAX, CAP, spread, -3.0), CAP / 2);
    }

    #[test]
    fn added_jitter_never_shortens_the_wait_and_stays_under_the_cap() {
        let spread = Spread::AddUpTo { percent: 25 };
        assert_eq!(delay(BASE, 1, CAP, spread, 0.0), BASE);
        assert_eq!(delay(BASE, 1, CAP, spread, 1.0), BASE * 5 / 4);
        // 5 of 25 steps: exactly 5 % more, not a float's rounding of it.
        assert_eq!(
            delay(
                Duration::from_secs(20),
                1,
                CAP * 1000,
                spread,
                keyed_fraction(5, 25)
            ),
            Duration::from_secs(21)
        );
        assert_eq!(delay(BASE, 5, CAP, spread, 1.0), CAP);
        assert_eq!(delay(BASE, 2, CAP, spread, 9.0), BASE * 5 / 2);
    }

    fn keyed_fraction(step: u32, steps: u32) -> f64 {
        f64::from(step) / f64::from(steps)
    }

    #[test]
    fn keyed_jitter_is_stable_per_key_and_within_its_steps() {
        assert_eq!(keyed("record-1", 25), keyed("record-1", 25));
        let mut seen = std::collections::HashSet::new();
        for n in 0..500 {
            let j = keyed(&format!("record-{n}"), 25);
            assert!((0.0..=1.0).contains(&j), "{j}");
            let step = j * 25.0;
            assert!((step - step.round()).abs() < 1e-9, "{j}");
            seen.insert(step.round() as u32);
        }
        assert!(seen.len() > 20, "{seen:?}");
    }

    #[test]
    fn random_jitter_is_a_fraction_below_one() {
        for _ in 0..100 {
            let j = random();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
