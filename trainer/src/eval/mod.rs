//! Measuring a model: `metrics` (confusion, P/R/F1, ROC AUC, EER, AP, the threshold rules), `plot`
//! (PNG charts), the training run's `report`, and `evaluate` (`trainer eval`: a model scored on
//! labelled folders) with its `shortcuts` audit. `trainer calibrate` is the edge library's
//! (`edge::infer::calibrate`), shared with `edge calibrate` on the board.

pub mod evaluate;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod shortcuts;
