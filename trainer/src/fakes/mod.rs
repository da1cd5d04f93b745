//! Fakes the trainer makes from real faces: the `kind`s by name, self-blended images (`sbi`),
//! up-sampling traces (`upsample`), blends of two people (`swap`), reconstructions by a small
//! generator (`reconstruct`), and a labelled folder of them written for inspection and
//! evaluation (`folder`, `trainer fakes`).

pub mod folder;
pub mod kind;
pub mod reconstruct;
pub mod sbi;
pub mod similarity;
pub mod swap;
pub mod upsample;
