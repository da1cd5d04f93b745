//! Annotated copies of frames: box, keypoints, label and p(FAKE) of each face, drawn with
//! embedded-graphics into the RGB image itself (the same drawing serves files and displays).

use crate::infer::classify::Label;
use crate::infer::pipeline::FaceReport;
use crate::live::FrameResult;
use embedded_graphics::mono_font::{ascii::FONT_10X20, MonoTextStyleBuilder};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};
use image::{Rgb, RgbImage};
use std::convert::Infallible;

/// An `RgbImage` as an embedded-graphics draw target; pixels outside the image are dropped.
pub struct Canvas<'a>(pub &'a mut RgbImage);

impl OriginDimensions for Canvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for Canvas<'_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        let (w, h) = self.0.dimensions();
        for Pixel(p, c) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y)) {
                if x < w && y < h {
                    self.0.put_pixel(x, y, Rgb([c.r(), c.g(), c.b()]));
                }
            }
        }
        Ok(())
    }
}

pub const REAL_COLOUR: Rgb888 = Rgb888::new(40, 220, 80);
pub const FAKE_COLOUR: Rgb888 = Rgb888::new(255, 40, 40);
/// Faces found without a classifier.
pub const FACE_COLOUR: Rgb888 = Rgb888::new(250, 200, 0);

/// Draws every face onto `img`.
pub fn draw(img: &mut RgbImage, faces: &[FaceReport]) {
    let stroke = (img.width().min(img.height()) / 200).max(2);
    let mut canvas = Canvas(img);
    for face in faces {
        let colour = match face.label {
            Some(Label::Real) => REAL_COLOUR,
            Some(Label::Fake) => FAKE_COLOUR,
            None => FACE_COLOUR,
        };
        let [x0, y0, x1, y1] = face.bbox.map(|v| v.round() as i32);
        let outline = PrimitiveStyle::with_stroke(colour, stroke);
        let size = Size::new((x1 - x0).max(1) as u32, (y1 - y0).max(1) as u32);
        let _ = Rectangle::new(Point::new(x0, y0), size).into_styled(outline).draw(&mut canvas);
        let dot = PrimitiveStyle::with_fill(colour);
        for [kx, ky] in &face.keypoints {
            let d = stroke * 2 + 1;
            let centre = Point::new(kx.round() as i32, ky.round() as i32);
            let _ = Circle::with_center(centre, d).into_styled(dot).draw(&mut canvas);
        }
        let text = match (face.label, face.p_fake) {
            (Some(label), Some(p)) => format!("{label} {p:.2}"),
            _ => format!("face {:.2}", face.score),
        };
        let style = MonoTextStyleBuilder::new()
            .font(&FONT_10X20)
            .text_color(Rgb888::WHITE)
            .background_color(colour)
            .build();
        // Above the box, or inside it when the box touches the top edge.
        let y = if y0 >= 20 { y0 - 20 } else { y0 };
        let _ =
            Text::with_baseline(&text, Point::new(x0, y), style, Baseline::Top).draw(&mut canvas);
    }
}

/// A copy of a live frame with its tracked faces drawn on it.
pub fn annotated(frame: &RgbImage, result: &FrameResult) -> RgbImage {
    let mut img = frame.clone();
    let faces: Vec<FaceReport> = result.faces.iter().map(|(_, f)| f.clone()).collect();
    draw(&mut img, &faces);
    img
}
