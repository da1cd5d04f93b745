//! The training data: class folders under each `--data` root merged (`folders`), faces cut by
//! edge's detector and cached (`faces`), and the augmentation of each epoch (`augment`).

pub mod augment;
pub mod faces;
pub mod folders;
