//! Training: the run's settings (`config`), the backend it runs on (`backend`), the loop
//! (`fit`) and the checkpoints it saves and resumes from (`checkpoint`).

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod fit;

pub use backend::{Adapter, Backend};
pub use config::{EpochStats, TrainConfig, MAX_INPUT, MAX_XRAY, MIN_INPUT};
pub use fit::{train, Item, Trained};
