//! `ONCALL`: who is paged for an alert.
