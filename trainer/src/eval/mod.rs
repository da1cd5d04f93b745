//! Measuring a model: `metrics` (confusion, P/R/F1, ROC AUC, EER, AP, the threshold rules), `plot`
//! (PNG charts), the training run's `report`, and `evaluate` (`trainer eval`: a model scored on
//! labelled folders) with its `shortcuts` audit, and `calibrate` (`trainer calibrate`: the threshold
//! set on a site's real faces).

pub mod calibrate;
pub mod evaluate;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod shortcuts;
