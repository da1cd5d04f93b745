//! Weighted non-maximum suppression, as MediaPipe's `NonMaxSuppressionCalculator` does it with
//! `overlap_type: WEIGHTED`: each cluster of overlapping detections becomes one, its box and
//! keypoints averaged with the scores as weights, its score the cluster's best.

use super::face::Face;
use crate::geometry::iou;

/// Merges overlapping detections (IoU above `threshold`) into one each; best score first.
pub fn weighted_nms(mut faces: Vec<Face>, threshold: f32) -> Vec<Face> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = vec![];
    while let Some(top) = faces.first().cloned() {
        let (cluster, rest): (Vec<Face>, Vec<Face>) =
            faces.into_iter().partition(|f| iou(&top.bbox, &f.bbox) > threshold);
        faces = rest;
        let total: f32 = cluster.iter().map(|f| f.score).sum();
        let mut merged = Face { score: top.score, ..Face::default() };
        for f in &cluster {
            let w = f.score / total;
            merged.bbox.x0 += w * f.bbox.x0;
            merged.bbox.y0 += w * f.bbox.y0;
            merged.bbox.x1 += w * f.bbox.x1;
            merged.bbox.y1 += w * f.bbox.y1;
            for (m, k) in merged.keypoints.iter_mut().zip(&f.keypoints) {
                m[0] += w * k[0];
                m[1] += w * k[1];
            }
        }
        kept.push(merged);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;

    fn face(x0: f32, y0: f32, side: f32, score: f32) -> Face {
        Face {
            bbox: BBox { x0, y0, x1: x0 + side, y1: y0 + side },
            score,
            keypoints: [[x0, y0]; 6],
        }
    }

    #[test]
    fn overlapping_detections_merge_by_score_weight() {
        let out = weighted_nms(vec![face(0.0, 0.0, 10.0, 0.25), face(2.0, 0.0, 10.0, 0.75)], 0.3);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.75);
        assert!((out[0].bbox.x0 - 1.5).abs() < 1e-6, "{:?}", out[0].bbox);
        assert!((out[0].keypoints[3][0] - 1.5).abs() < 1e-6);
    }

    #[test]
    fn separate_detections_stay_apart_best_first() {
        let out = weighted_nms(vec![face(0.0, 0.0, 10.0, 0.6), face(50.0, 0.0, 10.0, 0.9)], 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[1].bbox.x0, 0.0);
    }
}
