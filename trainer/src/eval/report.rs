//! The run's reports: `metrics.json`, `history.json`, `confusion.txt`, PNG charts (loss and
//! accuracy curves, ROC curve, confusion matrix) and `report.md` tying them together.

use crate::eval::metrics::{roc, Metrics, ThresholdRule};
use crate::eval::plot;
use crate::export::parity::Parity;
use crate::files;
use crate::train::Trained;
use anyhow::{Context, Result};
use std::path::Path;

pub fn write(
    out: &Path,
    trained: &Trained,
    m: &Metrics,
    rule: ThresholdRule,
    parity: &Parity,
    val_fake: &[bool],
) -> Result<()> {
    let save = |name: &str, img: image::RgbImage| -> Result<()> {
        img.save(out.join(name))
            .with_context(|| format!("cannot write {}", out.join(name).display()))
    };
    files::write(&out.join("metrics.json"), serde_json::to_string_pretty(m)?)?;
    files::write(&out.join("history.json"), serde_json::to_string_pretty(&trained.history)?)?;
    let c = m.confusion;
    let confusion = format!(
        "rows: true class, columns: predicted (threshold {:.4})\n\n            REAL   FAKE\nREAL  {:>8} {:>6}\nFAKE  {:>8} {:>6}\n",
        m.threshold, c.true_real, c.false_fake, c.false_real, c.true_fake
    );
    files::write(&out.join("confusion.txt"), &confusion)?;

    let epochs = trained.history.len() as f64;
    let series = |f: &dyn Fn(&crate::train::EpochStats) -> f64| -> Vec<(f64, f64)> {
        trained.history.iter().map(|s| (s.epoch as f64, f(s))).collect()
    };
    let max_loss = trained.history.iter().map(|s| s.train_loss.max(s.val_loss)).fold(0.1, f64::max);
    save(
        "loss.png",
        plot::lines(
            "Loss",
            "epoch",
            &[("train", series(&|s| s.train_loss)), ("validation", series(&|s| s.val_loss))],
            (1.0, epochs.max(2.0)),
            (0.0, max_loss),
        ),
    )?;
    save(
        "accuracy.png",
        plot::lines(
            "Accuracy and validation AUC",
            "epoch",
            &[
                ("train acc", series(&|s| s.train_accuracy)),
                ("val acc", series(&|s| s.val_accuracy)),
                ("val AUC", series(&|s| s.val_auc)),
            ],
            (1.0, epochs.max(2.0)),
            (0.0, 1.0),
        ),
    )?;
    let curve: Vec<(f64, f64)> =
        roc(&trained.val_p_fake, val_fake).iter().map(|&(f, t, _)| (f, t)).collect();
    save(
        "roc.png",
        plot::lines(
            &format!("ROC (AUC {:.3})", m.auc),
            "false positive rate",
            &[("model", curve), ("chance", vec![(0.0, 0.0), (1.0, 1.0)])],
            (0.0, 1.0),
            (0.0, 1.0),
        ),
    )?;
    save(
        "confusion.png",
        plot::confusion(
            [[c.true_real, c.false_fake], [c.false_real, c.true_fake]],
            ["REAL", "FAKE"],
        ),
    )?;

    let best = &trained.history[trained.best_epoch - 1];
    // A few dozen validation faces leave the AUC uncertain by several hundredths; say how much.
    let interval = m.auc_interval.map_or(String::new(), |(lo, hi)| {
        format!(" (95 % interval {lo:.2}–{hi:.2}, a bootstrap over the validation faces)")
    });
    // What the validation's real faces can promise about new ones (edge calibrate's bound).
    let (called, reals) = (c.false_fake, c.true_real + c.false_fake);
    let alarms = if reals > 0 {
        let bound = edge::infer::calibrate::false_alarm_bound(called, reals);
        format!(
            "It calls {called} of the {reals} REAL validation faces FAKE; on new faces like them \
             the share may be up to {:.1} % (the one-sided 95 % Clopper–Pearson bound), so set it \
             on your own real faces (`trainer calibrate`, `edge calibrate`) where false alarms \
             matter.",
            100.0 * bound
        )
    } else {
        String::new()
    };
    let report = format!(
        "# Training report\n\n\
         Best epoch {} of {} by validation ROC AUC ({:.4}); its model is the one exported.\n\n\
         ## Validation metrics (FAKE is the positive class)\n\n\
         | | precision | recall | F1 | support |\n| --- | ---: | ---: | ---: | ---: |\n\
         | REAL | {:.4} | {:.4} | {:.4} | {} |\n| FAKE | {:.4} | {:.4} | {:.4} | {} |\n\n\
         Accuracy {:.4}, ROC AUC {:.4}{}.\n\n\
         Decision threshold {:.4}: on the validation set, {}, halfway between the scores either side of \
         it; it is stored in the model's metadata and `edge` uses it unless \
         `--threshold` is given. {alarms}\n\n```\n{confusion}```\n\n\
         ![loss](loss.png) ![accuracy](accuracy.png)\n\n![ROC](roc.png) ![confusion](confusion.png)\n\n\
         ## Export\n\n`model.onnx` and `model.tflite` (metadata in `model.json` and in the ONNX file), loaded back through \
         `edge` on the {} validation images: largest |p(FAKE) − burn's| {:.2e} (ONNX), {:.2e} (TFLite).\n\n\
         Files: `config.json` (the run's full configuration), `split.json`, `history.json`, `metrics.json`, \
         `validation.csv` (every validation face with its p(FAKE) and the label it gets).\n",
        trained.best_epoch,
        trained.history.len(),
        best.val_auc,
        m.real.precision, m.real.recall, m.real.f1, m.real.support,
        m.fake.precision, m.fake.recall, m.fake.f1, m.fake.support,
        m.accuracy, m.auc, interval, m.threshold, rule.describe(),
        parity.images, parity.onnx_max_abs_diff, parity.tflite_max_abs_diff,
    );
    files::write(&out.join("report.md"), report)?;
    Ok(())
}
