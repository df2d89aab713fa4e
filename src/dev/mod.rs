//! Development tools, compiled only with the cargo feature `dev` (the tests, `make demo`,
//! `make pipeline`, `make events` and the sample agent turn it on; the Lambda binaries are
//! built without it and link none of this): the sample events and their signing ([`events`]),
//! the sample agent ([`sample_agent`]), loopback servers for fakes ([`loopback`]), the moto
//! launcher ([`moto`]) and the creation of the paging templates ([`templates`],
//! `make templates`).

pub mod events;
pub mod loopback;
pub mod moto;
pub mod sample_agent;
pub mod templates;

pub use loopback::LoopbackServer;
