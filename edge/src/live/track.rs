//! Faces followed across frames: detections matched to tracks by overlap, boxes carried forward
//! between detection passes, and each track's p(FAKE) smoothed so its label does not flicker.

use crate::geometry::{iou, BBox};
use crate::infer::classify::Label;
use crate::infer::detect::Face;

#[derive(Clone, Copy, Debug)]
pub struct TrackerConfig {
    /// Least overlap (IoU) between a detection and a track's box for them to be the same face.
    pub min_iou: f32,
    /// A track not detected for more than this many frames has left.
    pub forget_after: u64,
    /// Weight of the newest p(FAKE) in the running average (1 = no smoothing).
    pub smoothing: f32,
    /// The smoothed p(FAKE) must pass the threshold by this much to change a label.
    pub hysteresis: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig { min_iou: 0.3, forget_after: 15, smoothing: 0.3, hysteresis: 0.03 }
    }
}

/// One face followed over frames.
#[derive(Clone, Debug)]
pub struct Track {
    /// Unique for the life of the tracker, from 1.
    pub id: u64,
    /// The last detection, with its box moved to the current frame's prediction.
    pub face: Face,
    /// Smoothed p(FAKE); `None` until first classified.
    pub p_fake: Option<f32>,
    pub label: Option<Label>,
    /// Box centre motion in pixels per frame, from the last two detections.
    velocity: [f32; 2],
    /// Frame of the last detection, and of the current box.
    detected_at: u64,
    box_at: u64,
    hits: u64,
}

impl Track {
    /// The frame in which the face was last detected.
    pub fn detected_at(&self) -> u64 {
        self.detected_at
    }

    /// How many detections the track has had.
    pub fn hits(&self) -> u64 {
        self.hits
    }
}

/// What changed for a track when it was classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelChange {
    /// First classification of the track.
    First,
    /// The label flipped; here is the previous one.
    From(Label),
}

pub struct Tracker {
    pub config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
}

fn centre(b: &BBox) -> [f32; 2] {
    [(b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0]
}

fn shifted(b: &BBox, d: [f32; 2]) -> BBox {
    BBox { x0: b.x0 + d[0], y0: b.y0 + d[1], x1: b.x1 + d[0], y1: b.y1 + d[1] }
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Tracker { config, tracks: vec![], next_id: 1 }
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Moves every box to where its face should be at frame `seq` (constant velocity).
    pub fn predict(&mut self, seq: u64) {
        for t in &mut self.tracks {
            let dt = seq.saturating_sub(t.box_at) as f32;
            t.face.bbox = shifted(&t.face.bbox, [t.velocity[0] * dt, t.velocity[1] * dt]);
            for k in &mut t.face.keypoints {
                *k = [k[0] + t.velocity[0] * dt, k[1] + t.velocity[1] * dt];
            }
            t.box_at = seq;
        }
    }

    /// Matches the faces detected in frame `seq` to the tracks (greedily, best overlap first,
    /// against the predicted boxes); unmatched faces start tracks. Returns the tracks that have
    /// not been detected for more than `forget_after` frames, removed.
    pub fn update(&mut self, faces: Vec<Face>, seq: u64) -> Vec<Track> {
        self.predict(seq);
        let mut pairs = vec![];
        for (ti, t) in self.tracks.iter().enumerate() {
            for (fi, f) in faces.iter().enumerate() {
                if let Some(affinity) = affinity(&t.face.bbox, &f.bbox, self.config.min_iou) {
                    pairs.push((affinity, ti, fi));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_taken = vec![false; self.tracks.len()];
        let mut face_of = vec![None; faces.len()];
        for (_, ti, fi) in pairs {
            if !track_taken[ti] && face_of[fi].is_none() {
                track_taken[ti] = true;
                face_of[fi] = Some(ti);
            }
        }
        for (fi, face) in faces.into_iter().enumerate() {
            match face_of[fi] {
                Some(ti) => {
                    let t = &mut self.tracks[ti];
                    let dt = seq.saturating_sub(t.detected_at).max(1) as f32;
                    let (was, now) = (centre(&t.face.bbox), centre(&face.bbox));
                    // `was` is already the prediction: correct the velocity by the residual.
                    t.velocity = [
                        t.velocity[0] + (now[0] - was[0]) / dt,
                        t.velocity[1] + (now[1] - was[1]) / dt,
                    ];
                    t.face = face;
                    t.detected_at = seq;
                    t.hits += 1;
                }
                None => {
                    self.tracks.push(Track {
                        id: self.next_id,
                        face,
                        p_fake: None,
                        label: None,
                        velocity: [0.0; 2],
                        detected_at: seq,
                        box_at: seq,
                        hits: 1,
                    });
                    self.next_id += 1;
                }
            }
        }
        let forget = self.config.forget_after;
        let (gone, kept): (Vec<Track>, Vec<Track>) =
            self.tracks.drain(..).partition(|t| seq.saturating_sub(t.detected_at) > forget);
        self.tracks = kept;
        gone
    }

    /// Feeds a new p(FAKE) for track `index` into its running average and relabels it with
    /// hysteresis around `threshold`. Returns the change, if any.
    pub fn observe(&mut self, index: usize, p: f32, threshold: f32) -> Option<LabelChange> {
        let TrackerConfig { smoothing, hysteresis, .. } = self.config;
        let t = self.tracks.get_mut(index)?;
        let smoothed = match t.p_fake {
            Some(s) => s + smoothing * (p - s),
            None => p,
        };
        t.p_fake = Some(smoothed);
        let label = match t.label {
            None => label_at(smoothed, threshold),
            Some(Label::Real) if smoothed >= threshold + hysteresis => Label::Fake,
            Some(Label::Fake) if smoothed < threshold - hysteresis => Label::Real,
            Some(same) => same,
        };
        let change = match t.label {
            None => Some(LabelChange::First),
            Some(old) if old != label => Some(LabelChange::From(old)),
            Some(_) => None,
        };
        t.label = Some(label);
        change
    }

    /// Removes and returns every track (the source ended).
    pub fn clear(&mut self) -> Vec<Track> {
        std::mem::take(&mut self.tracks)
    }
}

/// How likely box `b` is the face last seen at `a`: their overlap when it is at least
/// `min_iou`; otherwise, for a face of about the same size whose centre moved less than its
/// side (fast motion, or several frames between detections), a small score that falls with the
/// distance; else `None`.
fn affinity(a: &BBox, b: &BBox, min_iou: f32) -> Option<f32> {
    let overlap = iou(a, b);
    if overlap >= min_iou {
        return Some(overlap);
    }
    let side = (a.width() + a.height()) / 2.0;
    let ratio = (b.width() + b.height()) / 2.0 / side.max(1e-3);
    let (ca, cb) = (centre(a), centre(b));
    let distance = (ca[0] - cb[0]).hypot(ca[1] - cb[1]);
    ((0.67..=1.5).contains(&ratio) && distance < side)
        .then(|| min_iou * 0.5 * (1.0 - distance / side))
}

fn label_at(p: f32, threshold: f32) -> Label {
    if p >= threshold {
        Label::Fake
    } else {
        Label::Real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, side: f32) -> Face {
        Face {
            bbox: BBox { x0: x, y0: y, x1: x + side, y1: y + side },
            score: 0.9,
            ..Face::default()
        }
    }

    #[test]
    fn the_same_face_keeps_its_track_as_it_moves() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        assert!(tracker.update(vec![face(100.0, 100.0, 80.0)], 0).is_empty());
        for seq in 1..=20u64 {
            let x = 100.0 + 6.0 * seq as f32;
            assert!(tracker.update(vec![face(x, 100.0, 80.0)], seq).is_empty());
        }
        assert_eq!(tracker.tracks().len(), 1);
        assert_eq!(tracker.tracks()[0].id, 1);
        // Carried forward between detections at the learnt 6 px/frame.
        tracker.predict(25);
        let b = tracker.tracks()[0].face.bbox;
        assert!((b.x0 - (100.0 + 6.0 * 25.0)).abs() < 1.0, "{b:?}");
    }

    #[test]
    fn two_faces_two_tracks_and_a_face_that_leaves_is_forgotten() {
        let config = TrackerConfig { forget_after: 3, ..TrackerConfig::default() };
        let mut tracker = Tracker::new(config);
        tracker.update(vec![face(0.0, 0.0, 50.0), face(300.0, 0.0, 50.0)], 0);
        assert_eq!(tracker.tracks().iter().map(|t| t.id).collect::<Vec<_>>(), [1, 2]);
        for seq in 1..=3 {
            assert!(tracker.update(vec![face(300.0, 2.0, 50.0)], seq).is_empty());
        }
        let gone = tracker.update(vec![face(301.0, 2.0, 50.0)], 4);
        assert_eq!(gone.iter().map(|t| t.id).collect::<Vec<_>>(), [1]);
        assert_eq!(tracker.tracks().iter().map(|t| t.id).collect::<Vec<_>>(), [2]);
        // A face that jumped by less than its size is still the same face.
        tracker.update(vec![face(335.0, 2.0, 50.0)], 5);
        assert_eq!(tracker.tracks().iter().map(|t| t.id).collect::<Vec<_>>(), [2]);
        // A face somewhere else is a new track, not the old one back.
        tracker.update(vec![face(336.0, 2.0, 50.0), face(0.0, 0.0, 50.0)], 6);
        assert_eq!(tracker.tracks().iter().map(|t| t.id).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn labels_do_not_flicker_around_the_threshold() {
        let config = TrackerConfig { smoothing: 0.3, hysteresis: 0.05, ..TrackerConfig::default() };
        let mut tracker = Tracker::new(config);
        tracker.update(vec![face(0.0, 0.0, 50.0)], 0);
        assert_eq!(tracker.observe(0, 0.2, 0.5), Some(LabelChange::First));
        assert_eq!(tracker.tracks()[0].label, Some(Label::Real));
        // Single frames far above the threshold, between real ones, do not flip the label.
        let mut changes = 0;
        for p in [0.9, 0.2, 0.2, 0.9, 0.2, 0.2, 0.9, 0.2] {
            changes += usize::from(tracker.observe(0, p, 0.5).is_some());
        }
        assert_eq!(changes, 0);
        // Nor does a smoothed value sitting just above the threshold, inside the band.
        for _ in 0..30 {
            changes += usize::from(tracker.observe(0, 0.53, 0.5).is_some());
        }
        assert_eq!(changes, 0);
        // A face that stays fake flips it once, within a few frames.
        let flipped_after = (1..=10).find(|_| tracker.observe(0, 0.95, 0.5).is_some());
        assert!(matches!(flipped_after, Some(1..=4)), "{flipped_after:?}");
        assert_eq!(tracker.tracks()[0].label, Some(Label::Fake));
        assert_eq!(tracker.observe(0, 0.1, 0.5), None);
        assert_eq!(tracker.observe(0, 0.1, 0.5), Some(LabelChange::From(Label::Fake)));
    }
}
