//! The integration tests of `trainer`, one binary (one link of burn and tract) with a module per
//! area; `support` holds the helpers they share.

mod calibrate;
mod end_to_end;
mod eval;
mod fakes;
mod learning;
mod pretrained;
mod support;
mod wgpu;
