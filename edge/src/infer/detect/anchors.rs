//! SSD anchors for BlazeFace, generated as MediaPipe's `SsdAnchorsCalculator` does for the
//! face detection graphs (fixed anchor size, aspect ratio 1, anchor offset 0.5).

/// An anchor centre in input-relative coordinates ([0, 1] across the model input).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anchor {
    pub x: f32,
    pub y: f32,
}

/// The anchor layout of one BlazeFace variant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnchorSpec {
    pub input_size: usize,
    /// One entry per SSD layer; consecutive layers with the same stride share one grid.
    pub strides: &'static [usize],
    /// MediaPipe adds an anchor with an interpolated scale to each layer when this is > 0.
    pub interpolated_scale_aspect_ratio: f32,
}

/// `face_detection_short_range`: 128×128 input, 896 anchors.
pub const SHORT_RANGE: AnchorSpec =
    AnchorSpec { input_size: 128, strides: &[8, 16, 16, 16], interpolated_scale_aspect_ratio: 1.0 };
/// `face_detection_full_range`: 192×192 input, 2304 anchors.
pub const FULL_RANGE: AnchorSpec =
    AnchorSpec { input_size: 192, strides: &[4], interpolated_scale_aspect_ratio: 0.0 };

impl AnchorSpec {
    pub fn anchors(&self) -> Vec<Anchor> {
        let per_layer = 1 + usize::from(self.interpolated_scale_aspect_ratio > 0.0);
        let mut anchors = vec![];
        let mut layer = 0;
        while layer < self.strides.len() {
            let stride = self.strides[layer];
            let same = self.strides[layer..].iter().take_while(|&&s| s == stride).count();
            let grid = self.input_size.div_ceil(stride);
            for y in 0..grid {
                for x in 0..grid {
                    let centre = Anchor {
                        x: (x as f32 + 0.5) / grid as f32,
                        y: (y as f32 + 0.5) / grid as f32,
                    };
                    anchors.extend(std::iter::repeat_n(centre, same * per_layer));
                }
            }
            layer += same;
        }
        anchors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_counts_match_the_models_outputs() {
        assert_eq!(SHORT_RANGE.anchors().len(), 896);
        assert_eq!(FULL_RANGE.anchors().len(), 2304);
    }

    #[test]
    fn short_range_layout_is_grid16_then_grid8() {
        let a = SHORT_RANGE.anchors();
        // 16×16 cells of 2 anchors, then 8×8 cells of 6 anchors, row-major.
        assert_eq!(a[0], Anchor { x: 0.5 / 16.0, y: 0.5 / 16.0 });
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], Anchor { x: 1.5 / 16.0, y: 0.5 / 16.0 });
        assert_eq!(a[511], Anchor { x: 15.5 / 16.0, y: 15.5 / 16.0 });
        assert_eq!(a[512], Anchor { x: 0.5 / 8.0, y: 0.5 / 8.0 });
        assert_eq!(a[517], a[512]);
        assert_eq!(a[518], Anchor { x: 1.5 / 8.0, y: 0.5 / 8.0 });
        assert_eq!(a[895], Anchor { x: 7.5 / 8.0, y: 7.5 / 8.0 });
    }
}
