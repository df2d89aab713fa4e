//! Template parameters cleaned to Meta's rules.
