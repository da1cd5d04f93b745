//! Binary classification metrics with FAKE as the positive class: confusion matrix, precision,
//! recall and F1 per class, accuracy, the ROC curve and its area, and the decision threshold.

use serde::{Deserialize, Serialize};

/// Counts at one threshold; `fake` is the positive class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub true_real: usize,
    pub false_fake: usize,
    pub false_real: usize,
    pub true_fake: usize,
}

impl Confusion {
    /// `p_fake[i]` scored against `is_fake[i]`, FAKE when p ≥ threshold.
    pub fn at(p_fake: &[f32], is_fake: &[bool], threshold: f32) -> Confusion {
        let mut c = Confusion::default();
        for (&p, &fake) in p_fake.iter().zip(is_fake) {
            match (fake, p >= threshold) {
                (false, false) => c.true_real += 1,
                (false, true) => c.false_fake += 1,
                (true, false) => c.false_real += 1,
                (true, true) => c.true_fake += 1,
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.true_real + self.false_fake + self.false_real + self.true_fake
    }

    /// The share of faces given their true label (0 without faces).
    pub fn accuracy(&self) -> f64 {
        ratio(self.true_real + self.true_fake, self.total())
    }
}

/// Precision, recall and F1 of one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn scores(tp: usize, fp: usize, fn_: usize) -> ClassScores {
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    ClassScores { precision, recall, f1, support: tp + fn_ }
}

/// Everything `metrics.json` holds for one set of predictions.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub accuracy: f64,
    /// Of the FAKE class (the positive one).
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub auc: f64,
    /// Its 95 % bootstrap interval ([`auc_interval`]); `None` without both classes.
    pub auc_interval: Option<(f64, f64)>,
    pub threshold: f32,
    pub confusion: Confusion,
    pub real: ClassScores,
    pub fake: ClassScores,
}

impl Metrics {
    pub fn new(p_fake: &[f32], is_fake: &[bool], threshold: f32) -> Metrics {
        let c = Confusion::at(p_fake, is_fake, threshold);
        let fake = scores(c.true_fake, c.false_fake, c.false_real);
        let real = scores(c.true_real, c.false_real, c.false_fake);
        Metrics {
            accuracy: c.accuracy(),
            precision: fake.precision,
            recall: fake.recall,
            f1: fake.f1,
            auc: auc(p_fake, is_fake),
            auc_interval: auc_interval(p_fake, is_fake, AUC_DRAWS),
            threshold,
            confusion: c,
            real,
            fake,
        }
    }
}

/// The ROC curve: (false positive rate, true positive rate, threshold) from the highest threshold
/// down, starting at (0, 0).
pub fn roc(p_fake: &[f32], is_fake: &[bool]) -> Vec<(f64, f64, f32)> {
    let mut order: Vec<usize> = (0..p_fake.len()).collect();
    order.sort_by(|&a, &b| p_fake[b].total_cmp(&p_fake[a]));
    let positives = is_fake.iter().filter(|&&f| f).count();
    let negatives = is_fake.len() - positives;
    let mut curve = vec![(0.0, 0.0, f32::INFINITY)];
    let (mut tp, mut fp) = (0, 0);
    for (i, &k) in order.iter().enumerate() {
        if is_fake[k] {
            tp += 1;
        } else {
            fp += 1;
        }
        // One point per distinct score, so ties are not split arbitrarily.
        if i + 1 == order.len() || p_fake[order[i + 1]] != p_fake[k] {
            curve.push((ratio(fp, negatives), ratio(tp, positives), p_fake[k]));
        }
    }
    curve
}

/// Area under the ROC curve (trapezoids; ties count half). 0.5 when a class is missing.
pub fn auc(p_fake: &[f32], is_fake: &[bool]) -> f64 {
    let positives = is_fake.iter().filter(|&&f| f).count();
    if positives == 0 || positives == is_fake.len() {
        return 0.5;
    }
    roc(p_fake, is_fake).windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum()
}

/// Bootstrap samples behind each AUC's interval: its ends move by about 0.005 between seeds.
pub const AUC_DRAWS: usize = 1000;

/// A 95 % interval of the ROC AUC: the 2.5th and 97.5th percentile of the AUC over `draws`
/// bootstrap samples, each drawing the real and the fake faces with replacement (each class keeps
/// its count), from a fixed seed so a report is reproducible. It covers which faces happened to be
/// scored, not faces that share a photo or a source (those vary together, so the truth is wider).
/// `None` when a class is missing.
pub fn auc_interval(p_fake: &[f32], is_fake: &[bool], draws: usize) -> Option<(f64, f64)> {
    use rand::{Rng, SeedableRng};
    let real: Vec<f32> = (p_fake.iter().zip(is_fake)).filter(|p| !p.1).map(|p| *p.0).collect();
    let fake: Vec<f32> = (p_fake.iter().zip(is_fake)).filter(|p| *p.1).map(|p| *p.0).collect();
    if real.is_empty() || fake.is_empty() || draws == 0 {
        return None;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0a0c);
    let labels: Vec<bool> = [vec![false; real.len()], vec![true; fake.len()]].concat();
    let mut areas: Vec<f64> = (0..draws)
        .map(|_| {
            let mut draw = |from: &[f32]| -> Vec<f32> {
                (0..from.len()).map(|_| from[rng.random_range(0..from.len())]).collect()
            };
            let p = [draw(&real), draw(&fake)].concat();
            auc(&p, &labels)
        })
        .collect();
    areas.sort_by(f64::total_cmp);
    let at = |q: f64| areas[((q * draws as f64) as usize).min(draws - 1)];
    Some((at(0.025), at(0.975)))
}

/// How the decision threshold is chosen on the validation predictions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdRule {
    /// The ROC point that maximises Youden's J (true positive rate − false positive rate).
    #[default]
    Youden,
    /// The ROC point with the most FAKE faces caught among those that call at most this share of
    /// the REAL faces FAKE (a false-alarm budget).
    MaxFalseAlarm(f64),
}

impl ThresholdRule {
    /// The rule in words, for the report.
    pub fn describe(&self) -> String {
        match self {
            ThresholdRule::Youden => {
                "the ROC point that maximises Youden's J (true positive rate − false positive rate)"
                    .into()
            }
            ThresholdRule::MaxFalseAlarm(rate) => format!(
                "the ROC point that catches the most FAKE faces while calling at most {:.1} % of \
                 the REAL faces FAKE",
                rate * 100.0
            ),
        }
    }
}

/// The decision threshold (FAKE when p ≥ it) of the ROC point `rule` picks on the given
/// (validation) predictions; 0.5 when a class is missing.
///
/// The threshold is set halfway between the lowest score called FAKE at that point and the
/// highest called REAL, so the validation set is split as at the point itself, with the widest
/// margin either side: a threshold equal to an observed score would flip that face (and any new
/// face scored a hair lower) on the slightest change.
pub fn threshold(p_fake: &[f32], is_fake: &[bool], rule: ThresholdRule) -> f32 {
    let positives = is_fake.iter().filter(|&&f| f).count();
    if positives == 0 || positives == is_fake.len() {
        return 0.5;
    }
    let curve = roc(p_fake, is_fake);
    let chosen = match rule {
        // The first point (threshold +∞, nothing called FAKE) has J = 0, which any useful
        // model beats.
        ThresholdRule::Youden => (1..curve.len())
            .max_by(|&a, &b| {
                let j = |i: usize| curve[i].1 - curve[i].0;
                j(a).total_cmp(&j(b))
            })
            .unwrap_or(0),
        // The false positive rate only grows along the curve.
        ThresholdRule::MaxFalseAlarm(rate) => {
            curve.iter().rposition(|&(fpr, _, _)| fpr <= rate + 1e-12).unwrap_or(0)
        }
    };
    // The scores either side of the chosen point: the highest one left REAL (if any) and the
    // lowest one called FAKE (above every score when nothing is).
    let called = if chosen == 0 { 1.0 } else { curve[chosen].2 };
    match curve.get(chosen + 1) {
        Some(&(_, _, below)) => (called + below) / 2.0,
        None => called,
    }
}

/// The equal error rate as DeepfakeBench reports it: on the ROC curve, the false positive rate at
/// the first point where it is closest to the false negative rate, with that point's threshold.
/// `None` when a class is missing.
pub fn eer(p_fake: &[f32], is_fake: &[bool]) -> Option<(f64, f32)> {
    let positives = is_fake.iter().filter(|&&f| f).count();
    if positives == 0 || positives == is_fake.len() {
        return None;
    }
    let gap = |&(fpr, tpr, _): &(f64, f64, f32)| ((1.0 - tpr) - fpr).abs();
    roc(p_fake, is_fake)
        .into_iter()
        .min_by(|a, b| gap(a).total_cmp(&gap(b)))
        .map(|(fpr, _, threshold)| (fpr, threshold))
}

/// Average precision of FAKE (the area under the precision-recall curve as scikit-learn sums it):
/// Σ (Rₖ − Rₖ₋₁)·Pₖ over the distinct scores from the highest down. `None` without a FAKE face.
pub fn average_precision(p_fake: &[f32], is_fake: &[bool]) -> Option<f64> {
    pr_curve(p_fake, is_fake).map(|curve| {
        let mut last_recall = 0.0;
        curve.into_iter().fold(0.0, |ap, (recall, precision)| {
            let step = recall - last_recall;
            last_recall = recall;
            ap + step * precision
        })
    })
}

/// The precision-recall curve of FAKE: (recall, precision) at each distinct score from the
/// highest down. `None` without a FAKE face.
pub fn pr_curve(p_fake: &[f32], is_fake: &[bool]) -> Option<Vec<(f64, f64)>> {
    let positives = is_fake.iter().filter(|&&f| f).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..p_fake.len()).collect();
    order.sort_by(|&a, &b| p_fake[b].total_cmp(&p_fake[a]));
    let (mut tp, mut curve) = (0, vec![]);
    for (i, &k) in order.iter().enumerate() {
        tp += usize::from(is_fake[k]);
        if i + 1 == order.len() || p_fake[order[i + 1]] != p_fake[k] {
            curve.push((ratio(tp, positives), ratio(tp, i + 1)));
        }
    }
    Some(curve)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The interval holds the AUC, is reproducible, narrows as the faces grow in number, and
    /// collapses on a perfect ranking.
    #[test]
    fn the_auc_interval_holds_the_auc_and_narrows_with_more_faces() {
        // Overlapping classes: fakes score higher on average, not always.
        let scores = |n: usize| -> (Vec<f32>, Vec<bool>) {
            let p = (0..n).map(|i| ((i * 37) % 101) as f32 / 100.0 + (i % 2) as f32 * 0.3);
            (p.collect(), (0..n).map(|i| i % 2 == 1).collect())
        };
        let (small, small_fake) = scores(40);
        let (large, large_fake) = scores(400);
        let a = auc(&small, &small_fake);
        let (lo, hi) = auc_interval(&small, &small_fake, 500).expect("both classes");
        assert!(lo < a && a < hi && hi - lo > 0.05, "{lo} {a} {hi}");
        assert_eq!(auc_interval(&small, &small_fake, 500), Some((lo, hi)));
        let (big_lo, big_hi) = auc_interval(&large, &large_fake, 500).expect("both classes");
        assert!(big_hi - big_lo < (hi - lo) / 2.0, "{big_lo}-{big_hi} against {lo}-{hi}");
        let perfect = [0.1, 0.2, 0.8, 0.9];
        let labels = [false, false, true, true];
        assert_eq!(auc_interval(&perfect, &labels, 100), Some((1.0, 1.0)));
        assert_eq!(auc_interval(&perfect, &[false; 4], 100), None);
    }

    #[test]
    fn confusion_and_scores_by_hand() {
        let p = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1];
        let y = [true, true, true, false, false, false];
        let m = Metrics::new(&p, &y, 0.5);
        assert_eq!(
            m.confusion,
            Confusion { true_real: 2, false_fake: 1, false_real: 1, true_fake: 2 }
        );
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.real.precision - 2.0 / 3.0).abs() < 1e-12);
        // Pairs (fake, real) ranked right: 8 of 9.
        assert!((m.auc - 8.0 / 9.0).abs() < 1e-12, "{}", m.auc);
    }

    #[test]
    fn auc_extremes_and_ties() {
        assert_eq!(auc(&[0.9, 0.8, 0.1], &[true, true, false]), 1.0);
        assert_eq!(auc(&[0.1, 0.2, 0.9], &[true, true, false]), 0.0);
        assert_eq!(auc(&[0.5, 0.5], &[true, false]), 0.5);
        assert_eq!(auc(&[0.3, 0.4], &[true, true]), 0.5);
    }

    fn assert_close(t: f32, want: f32) {
        assert!((t - want).abs() < 1e-6, "threshold {t}, expected {want}");
    }

    #[test]
    fn youden_splits_the_classes_halfway_between_their_nearest_scores() {
        let p = [0.95, 0.7, 0.65, 0.4, 0.3, 0.1];
        let y = [true, true, true, false, false, false];
        assert_close(threshold(&p, &y, ThresholdRule::Youden), 0.525);
        // Overlapping classes: J is 2/3 − 0 at 0.7 and 1 − 1/3 at 0.35, the last maximum taken.
        let p = [0.9, 0.7, 0.35, 0.5, 0.2, 0.1];
        let t = threshold(&p, &y, ThresholdRule::Youden);
        assert_close(t, 0.275);
        let m = Metrics::new(&p, &y, t);
        assert_eq!((m.confusion.true_fake, m.confusion.false_fake), (3, 1));
    }

    #[test]
    fn a_false_alarm_budget_calls_no_more_real_faces_fake_than_it_allows() {
        let p = [0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1];
        let y = [true, true, true, true, false, false, false, false];
        // No false alarm: only the two fakes above every real face.
        let t = threshold(&p, &y, ThresholdRule::MaxFalseAlarm(0.0));
        assert_close(t, 0.75);
        // One real face in four may be called FAKE: 0.7 is, and 0.6 is caught below it.
        let t = threshold(&p, &y, ThresholdRule::MaxFalseAlarm(0.25));
        assert_close(t, 0.55);
        let m = Metrics::new(&p, &y, t);
        assert_eq!((m.confusion.true_fake, m.confusion.false_fake), (3, 1));
        // A budget below the highest real score with no fake above it: nothing is called FAKE.
        let p = [0.6, 0.3, 0.9, 0.1];
        let y = [true, true, false, false];
        let t = threshold(&p, &y, ThresholdRule::MaxFalseAlarm(0.0));
        assert_close(t, 0.95);
        assert_eq!(Metrics::new(&p, &y, t).confusion.true_fake, 0);
        assert_eq!(threshold(&[0.2, 0.4], &[true, true], ThresholdRule::Youden), 0.5);
    }

    #[test]
    fn eer_and_average_precision_by_hand() {
        // Ranked: F(0.9) R(0.8) F(0.7) F(0.6) R(0.4) R(0.3) F(0.2) R(0.1); 4 FAKE, 4 REAL.
        let p = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1];
        let y = [true, false, true, true, false, false, true, false];
        // Precision at each FAKE: 1/1, 2/3, 3/4, 4/7; each adds a quarter of recall.
        let ap = average_precision(&p, &y).expect("has FAKE faces");
        assert!((ap - (1.0 + 2.0 / 3.0 + 0.75 + 4.0 / 7.0) / 4.0).abs() < 1e-12, "{ap}");
        // At 0.6: FPR 1/4, FNR 1/4, the first point where they meet.
        assert_eq!(eer(&p, &y), Some((0.25, 0.6)));
        // A perfect ranking: EER 0 and AP 1; one class only: undefined.
        let perfect = [true, true, false, false];
        assert_eq!(eer(&[0.9, 0.8, 0.2, 0.1], &perfect), Some((0.0, 0.8)));
        assert_eq!(average_precision(&[0.9, 0.8, 0.2, 0.1], &perfect), Some(1.0));
        assert_eq!(eer(&[0.9, 0.8], &[false, false]), None);
        assert_eq!(average_precision(&[0.9, 0.8], &[false, false]), None);
        // Ties are one point: the tied pair counts as precision 1/2 for its one FAKE.
        assert_eq!(average_precision(&[0.5, 0.5], &[true, false]), Some(0.5));
    }
}
