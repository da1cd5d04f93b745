//! The integration tests of `edge`, one binary (one link of tract) with a module per area. The
//! helpers they share are the `testkit` crate.

mod board;
#[cfg(feature = "serve")]
mod browser;
mod classify;
mod cli;
mod detect;
mod live;
mod mqtt;
#[cfg(feature = "serve")]
mod serve;
mod service;
