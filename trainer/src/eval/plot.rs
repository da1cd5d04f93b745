//! Small PNG charts (line plots and a confusion matrix), drawn with embedded-graphics into an
//! image through `edge::sinks::annotate::Canvas`.

use edge::sinks::annotate::Canvas;
use embedded_graphics::mono_font::{ascii::FONT_10X20, ascii::FONT_6X10, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Line, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Text};
use image::{Rgb, RgbImage};

pub const COLOURS: [Rgb888; 4] = [
    Rgb888::new(31, 119, 180),
    Rgb888::new(255, 127, 14),
    Rgb888::new(44, 160, 44),
    Rgb888::new(214, 39, 40),
];
const W: u32 = 640;
const H: u32 = 420;
const LEFT: i32 = 60;
const RIGHT: i32 = 20;
const TOP: i32 = 40;
const BOTTOM: i32 = 50;

/// A line chart of named series of (x, y) points, with axes from the given ranges.
pub fn lines(
    title: &str,
    x_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    x_range: (f64, f64),
    y_range: (f64, f64),
) -> RgbImage {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let mut canvas = Canvas(&mut img);
    let black = Rgb888::BLACK;
    let text = MonoTextStyle::new(&FONT_6X10, black);
    let (x0, y0, x1, y1) = (LEFT, H as i32 - BOTTOM, W as i32 - RIGHT, TOP);
    let span = |r: (f64, f64)| if r.1 > r.0 { r.1 - r.0 } else { 1.0 };
    let px = |x: f64, y: f64| {
        Point::new(
            x0 + ((x - x_range.0) / span(x_range) * (x1 - x0) as f64).round() as i32,
            y0 - ((y - y_range.0) / span(y_range) * (y0 - y1) as f64).round() as i32,
        )
    };
    let axis = PrimitiveStyle::with_stroke(black, 1);
    let _ = Line::new(Point::new(x0, y0), Point::new(x1, y0)).into_styled(axis).draw(&mut canvas);
    let _ = Line::new(Point::new(x0, y0), Point::new(x0, y1)).into_styled(axis).draw(&mut canvas);
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let (xv, yv) = (x_range.0 + f * span(x_range), y_range.0 + f * span(y_range));
        let (p, q) = (px(xv, y_range.0), px(x_range.0, yv));
        let _ = Text::with_alignment(
            &format!("{xv:.2}"),
            p + Point::new(0, 14),
            text,
            Alignment::Center,
        )
        .draw(&mut canvas);
        let _ = Text::with_alignment(
            &format!("{yv:.2}"),
            q + Point::new(-4, 3),
            text,
            Alignment::Right,
        )
        .draw(&mut canvas);
    }
    let title_style = MonoTextStyle::new(&FONT_10X20, black);
    let _ =
        Text::with_alignment(title, Point::new(W as i32 / 2, 24), title_style, Alignment::Center)
            .draw(&mut canvas);
    let _ = Text::with_alignment(
        x_label,
        Point::new((x0 + x1) / 2, H as i32 - 12),
        text,
        Alignment::Center,
    )
    .draw(&mut canvas);
    for (k, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let style = PrimitiveStyle::with_stroke(colour, 2);
        for w in points.windows(2) {
            let _ = Line::new(px(w[0].0, w[0].1), px(w[1].0, w[1].1))
                .into_styled(style)
                .draw(&mut canvas);
        }
        if let [only] = points.as_slice() {
            let _ = Rectangle::with_center(px(only.0, only.1), Size::new(5, 5))
                .into_styled(PrimitiveStyle::with_fill(colour))
                .draw(&mut canvas);
        }
        let at = Point::new(x1 - 150, TOP + 14 + 14 * k as i32);
        let _ = Line::new(at + Point::new(0, -3), at + Point::new(20, -3))
            .into_styled(style)
            .draw(&mut canvas);
        let _ = Text::new(name, at + Point::new(26, 0), text).draw(&mut canvas);
    }
    img
}

/// The 2×2 confusion matrix (rows: true class, columns: predicted), shaded by count.
pub fn confusion(counts: [[usize; 2]; 2], labels: [&str; 2]) -> RgbImage {
    let mut img = RgbImage::from_pixel(420, 360, Rgb([255, 255, 255]));
    let mut canvas = Canvas(&mut img);
    let big = MonoTextStyle::new(&FONT_10X20, Rgb888::BLACK);
    let small = MonoTextStyle::new(&FONT_6X10, Rgb888::BLACK);
    let max = counts.iter().flatten().copied().max().unwrap_or(0).max(1);
    let cell = 130;
    let (ox, oy) = (120, 70);
    let _ = Text::with_alignment("Confusion matrix", Point::new(210, 24), big, Alignment::Center)
        .draw(&mut canvas);
    let _ =
        Text::with_alignment("predicted", Point::new(ox + cell, oy - 28), small, Alignment::Center)
            .draw(&mut canvas);
    let _ = Text::new("true", Point::new(10, oy + cell), small).draw(&mut canvas);
    for (r, row) in counts.iter().enumerate() {
        let _ = Text::with_alignment(
            labels[r],
            Point::new(ox - 10, oy + cell * r as i32 + cell / 2),
            big,
            Alignment::Right,
        )
        .draw(&mut canvas);
        let _ = Text::with_alignment(
            labels[r],
            Point::new(ox + cell * r as i32 + cell / 2, oy - 8),
            big,
            Alignment::Center,
        )
        .draw(&mut canvas);
        for (c, &n) in row.iter().enumerate() {
            let shade = 255 - (180 * n / max) as u8;
            let corner = Point::new(ox + cell * c as i32, oy + cell * r as i32);
            let _ = Rectangle::new(corner, Size::new(cell as u32, cell as u32))
                .into_styled(PrimitiveStyle::with_fill(Rgb888::new(shade, shade, 255)))
                .draw(&mut canvas);
            let _ = Text::with_alignment(
                &n.to_string(),
                corner + Point::new(cell / 2, cell / 2 + 6),
                big,
                Alignment::Center,
            )
            .draw(&mut canvas);
        }
    }
    img
}
