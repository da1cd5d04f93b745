//! Fakes the trainer makes from real faces: self-blended images (`sbi`).

pub mod sbi;
