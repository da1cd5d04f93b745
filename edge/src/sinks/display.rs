//! The annotated frame on a Linux framebuffer (`--display /dev/fb0`): scaled to fit the screen
//! (letterboxed, centred, nearest neighbour), converted to the panel's pixel format and written
//! with `pwrite`.
//!
//! Two ioctls give the geometry and pixel layout; everything after them (layout, scaling,
//! packing) is a pure function of a [`Geometry`] and is tested on a regular file standing in for
//! the device ([`Framebuffer::from_parts`]). The `framebuffer` crate was not used: it wraps the
//! same two ioctls and an mmap (with memmap2 and errno), and neither scales nor converts pixels,
//! which is the part that needs care; `pwrite` needs no unsafe mapping and works on any file.

use super::annotate::annotated;
use crate::live::source::Frame;
use crate::live::{FrameResult, Sink};
use anyhow::{bail, ensure, Context, Result};
use image::RgbImage;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where one colour channel sits in a pixel: `length` bits from bit `offset` (counted from the
/// least significant bit of the pixel value, as the kernel's `fb_bitfield`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Channel {
    pub offset: u32,
    pub length: u32,
}

impl Channel {
    pub const fn new(offset: u32, length: u32) -> Self {
        Channel { offset, length }
    }
}

/// The visible screen and its pixel format, as `FBIOGET_VSCREENINFO` / `FBIOGET_FSCREENINFO`
/// report them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Visible pixels per row and rows (`xres`, `yres`).
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next, padding included.
    pub line_length: u32,
    pub bits_per_pixel: u32,
    pub red: Channel,
    pub green: Channel,
    pub blue: Channel,
    /// Alpha, if any (`length` 0 if none); written opaque.
    pub transp: Channel,
    /// The visible area's corner in the virtual screen (`xoffset`, `yoffset`; non-zero when a
    /// program pans a double-buffered screen).
    pub xoffset: u32,
    pub yoffset: u32,
}

impl Geometry {
    /// A packed-pixel screen with no offsets and rows of `width` × bytes per pixel.
    pub fn packed(width: u32, height: u32, bits_per_pixel: u32, rgb: [Channel; 3]) -> Self {
        Geometry {
            width,
            height,
            line_length: width * bits_per_pixel.div_ceil(8),
            bits_per_pixel,
            red: rgb[0],
            green: rgb[1],
            blue: rgb[2],
            transp: Channel::default(),
            xoffset: 0,
            yoffset: 0,
        }
    }

    /// Bytes per pixel.
    pub fn bytes_per_pixel(&self) -> usize {
        self.bits_per_pixel as usize / 8
    }

    /// Checks that edge can draw in this format: 16, 24 or 32 bits per pixel, channels of 1–8
    /// bits (alpha 0–8) inside the pixel, rows long enough for the visible width.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.width > 0 && self.height > 0, "empty screen {}×{}", self.width, self.height);
        ensure!(
            matches!(self.bits_per_pixel, 16 | 24 | 32),
            "unsupported pixel format: {} bits per pixel (16, 24 or 32 are drawn)",
            self.bits_per_pixel
        );
        for (name, c, min) in [
            ("red", self.red, 1),
            ("green", self.green, 1),
            ("blue", self.blue, 1),
            ("alpha", self.transp, 0),
        ] {
            ensure!(
                (min..=8).contains(&c.length) && c.offset + c.length <= self.bits_per_pixel,
                "unsupported pixel format: {name} channel of {} bits at bit {} in {}-bit pixels",
                c.length,
                c.offset,
                self.bits_per_pixel
            );
        }
        let row = (u64::from(self.xoffset) + u64::from(self.width)) * self.bytes_per_pixel() as u64;
        ensure!(
            u64::from(self.line_length) >= row,
            "line length {} bytes is shorter than a row of {}+{} pixels ({row} bytes)",
            self.line_length,
            self.xoffset,
            self.width
        );
        Ok(())
    }

    /// The format's usual name, most significant channel first (`RGB565`, `XRGB8888`,
    /// `BGR565`, `ARGB8888`, `RGB888`), or the channel layout if it has none.
    pub fn format_name(&self) -> String {
        let mut channels = vec![('R', self.red), ('G', self.green), ('B', self.blue)];
        let used = self.red.length + self.green.length + self.blue.length;
        let pad = self.bits_per_pixel.saturating_sub(used);
        if self.transp.length > 0 {
            channels.push(('A', self.transp));
        } else if pad > 0 {
            // The unused bits: above or below the colours.
            let top = channels.iter().map(|(_, c)| c.offset + c.length).max().unwrap_or(0);
            let offset = if top < self.bits_per_pixel { top } else { 0 };
            channels.push(('X', Channel::new(offset, pad)));
        }
        channels.sort_by_key(|(_, c)| std::cmp::Reverse(c.offset));
        let letters: String = channels.iter().map(|(l, _)| *l).collect();
        let lengths: String = channels.iter().map(|(_, c)| c.length.to_string()).collect();
        format!("{letters}{lengths}")
    }
}

/// Where the frame goes on the screen: the largest rectangle of the frame's aspect ratio that
/// fits, centred; the rest is black.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Letterboxes a `src` (width, height) frame into a `dst` screen.
pub fn letterbox(src: (u32, u32), dst: (u32, u32)) -> Placement {
    let (sw, sh) = (u64::from(src.0.max(1)), u64::from(src.1.max(1)));
    let (dw, dh) = (u64::from(dst.0), u64::from(dst.1));
    // Compare dw/sw with dh/sh without floats: the tighter side sets the scale.
    let (width, height) = if dw * sh <= dh * sw {
        (dw, (sh * dw + sw / 2) / sw)
    } else {
        ((sw * dh + sh / 2) / sh, dh)
    };
    let (width, height) = (width.clamp(1, dw.max(1)), height.clamp(1, dh.max(1)));
    Placement {
        x: ((dw - width) / 2) as u32,
        y: ((dh - height) / 2) as u32,
        width: width as u32,
        height: height as u32,
    }
}

/// Packs 8-bit RGB into the screen's pixel value.
#[derive(Clone, Copy, Debug)]
struct Packer {
    shifts: [(u32, u32); 3],
    opaque: u32,
}

impl Packer {
    fn new(g: &Geometry) -> Self {
        let channel = |c: Channel| (8 - c.length, c.offset);
        let alpha = g.transp;
        Packer {
            shifts: [channel(g.red), channel(g.green), channel(g.blue)],
            opaque: if alpha.length == 0 { 0 } else { ((1 << alpha.length) - 1) << alpha.offset },
        }
    }

    #[inline]
    fn pack(&self, rgb: [u8; 3]) -> u32 {
        let mut v = self.opaque;
        for (c, (drop, offset)) in rgb.into_iter().zip(self.shifts) {
            v |= (u32::from(c) >> drop) << offset;
        }
        v
    }
}

/// Writes the pixels of one screen row: `row` receives `columns.len()` pixels of `B` bytes
/// (little-endian, as on every board edge targets), taken from `src` (RGB bytes) at the given
/// source columns.
#[inline]
fn pack_row<const B: usize>(packer: &Packer, src: &[u8], columns: &[u32], row: &mut [u8]) {
    for (out, &x) in row.chunks_exact_mut(B).zip(columns) {
        let i = x as usize * 3;
        let v = packer.pack([src[i], src[i + 1], src[i + 2]]);
        out.copy_from_slice(&v.to_le_bytes()[..B]);
    }
}

/// Fills `screen` (the visible rows: `height` × `line_length` bytes) with `frame` letterboxed
/// and converted to the geometry's pixel format. Pure; `geometry` must be valid.
pub fn render(frame: &RgbImage, geometry: &Geometry, screen: &mut Vec<u8>) {
    let g = geometry;
    let line = g.line_length as usize;
    let bpp = g.bytes_per_pixel();
    let packer = Packer::new(g);
    let black = packer.pack([0, 0, 0]).to_le_bytes();
    screen.clear();
    screen.resize(line * g.height as usize, 0);
    let place = letterbox(frame.dimensions(), (g.width, g.height));

    // Nearest neighbour, sampling at pixel centres.
    let (sw, sh) = (u64::from(frame.width()), u64::from(frame.height()));
    let sample =
        |d: u32, dn: u32, sn: u64| ((2 * u64::from(d) + 1) * sn / (2 * u64::from(dn))) as u32;
    let columns: Vec<u32> = (0..place.width).map(|x| sample(x, place.width, sw)).collect();
    let left = (g.xoffset + place.x) as usize * bpp;
    let right = left + place.width as usize * bpp;
    let visible = g.xoffset as usize * bpp..(g.xoffset + g.width) as usize * bpp;
    for (y, row) in screen.chunks_exact_mut(line).enumerate() {
        let row = &mut row[visible.clone()];
        let picture = (y as u32).checked_sub(place.y).filter(|dy| *dy < place.height);
        let Some(dy) = picture else {
            fill(row, &black[..bpp]);
            continue;
        };
        let start = left - visible.start;
        fill(&mut row[..start], &black[..bpp]);
        fill(&mut row[right - visible.start..], &black[..bpp]);
        let sy = sample(dy, place.height, sh) as usize;
        let src = &frame.as_raw()[sy * sw as usize * 3..(sy + 1) * sw as usize * 3];
        let dst = &mut row[start..right - visible.start];
        match bpp {
            2 => pack_row::<2>(&packer, src, &columns, dst),
            3 => pack_row::<3>(&packer, src, &columns, dst),
            _ => pack_row::<4>(&packer, src, &columns, dst),
        }
    }
}

fn fill(row: &mut [u8], pixel: &[u8]) {
    if pixel.iter().all(|b| *b == 0) {
        row.fill(0);
    } else {
        for out in row.chunks_exact_mut(pixel.len()) {
            out.copy_from_slice(pixel);
        }
    }
}

/// A framebuffer device (or, for tests, any file laid out like one).
pub struct Framebuffer {
    file: File,
    path: PathBuf,
    geometry: Geometry,
    /// The visible rows, reused from frame to frame.
    screen: Vec<u8>,
}

impl Framebuffer {
    /// Opens a framebuffer device and reads its geometry. Fails with one line naming the path:
    /// `display /dev/null: not a framebuffer: Inappropriate ioctl for device (os error 25)`.
    pub fn open(path: &Path) -> Result<Self> {
        let fb = || -> Result<Self> {
            let file = OpenOptions::new().read(true).write(true).open(path)?;
            let geometry = query_geometry(&file)?;
            Self::from_parts(path, file, geometry)
        };
        fb().with_context(|| format!("display {}", path.display()))
    }

    /// A framebuffer from a file and a geometry given by the caller: a regular file in tests.
    pub fn from_parts(path: impl Into<PathBuf>, file: File, geometry: Geometry) -> Result<Self> {
        let path = path.into();
        geometry.validate().with_context(|| format!("display {}", path.display()))?;
        Ok(Framebuffer { file, path, geometry, screen: Vec::new() })
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Shows `frame`, letterboxed to the screen.
    pub fn show(&mut self, frame: &RgbImage) -> Result<()> {
        render(frame, &self.geometry, &mut self.screen);
        let offset = u64::from(self.geometry.yoffset) * u64::from(self.geometry.line_length);
        self.file
            .write_all_at(&self.screen, offset)
            .with_context(|| format!("display {}: cannot write the frame", self.path.display()))
    }

    /// `/dev/fb0 (800×480 RGB565)`, for logs.
    pub fn describe(&self) -> String {
        let g = &self.geometry;
        format!("{} ({}×{} {})", self.path.display(), g.width, g.height, g.format_name())
    }
}

/// The live loop's frames, annotated, on the screen.
impl Sink for Framebuffer {
    fn name(&self) -> &str {
        "display"
    }

    fn frame(&mut self, frame: &Frame, result: &FrameResult) -> Result<()> {
        self.show(&annotated(&frame.image, result))
    }
}

// linux/fb.h
const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
const FBIOGET_FSCREENINFO: libc::c_ulong = 0x4602;
const FB_TYPE_PACKED_PIXELS: u32 = 0;
const FB_VISUAL_TRUECOLOR: u32 = 2;
const FB_VISUAL_DIRECTCOLOR: u32 = 4;

#[repr(C)]
#[derive(Default)]
struct FbBitfield {
    offset: u32,
    length: u32,
    msb_right: u32,
}

#[repr(C)]
#[derive(Default)]
struct FbVarScreeninfo {
    xres: u32,
    yres: u32,
    xres_virtual: u32,
    yres_virtual: u32,
    xoffset: u32,
    yoffset: u32,
    bits_per_pixel: u32,
    grayscale: u32,
    red: FbBitfield,
    green: FbBitfield,
    blue: FbBitfield,
    transp: FbBitfield,
    nonstd: u32,
    activate: u32,
    height: u32,
    width: u32,
    accel_flags: u32,
    pixclock: u32,
    left_margin: u32,
    right_margin: u32,
    upper_margin: u32,
    lower_margin: u32,
    hsync_len: u32,
    vsync_len: u32,
    sync: u32,
    vmode: u32,
    rotate: u32,
    colorspace: u32,
    reserved: [u32; 4],
}

#[repr(C)]
#[derive(Default)]
struct FbFixScreeninfo {
    id: [u8; 16],
    smem_start: libc::c_ulong,
    smem_len: u32,
    type_: u32,
    type_aux: u32,
    visual: u32,
    xpanstep: u16,
    ypanstep: u16,
    ywrapstep: u16,
    line_length: u32,
    mmio_start: libc::c_ulong,
    mmio_len: u32,
    accel: u32,
    capabilities: u16,
    reserved: [u16; 2],
}

/// Reads the geometry with the two ioctls and checks it is a packed true-colour screen whose
/// memory holds the visible area.
fn query_geometry(file: &File) -> Result<Geometry> {
    let mut var = FbVarScreeninfo::default();
    let mut fix = FbFixScreeninfo::default();
    // SAFETY: both ioctls write exactly one struct of the type passed (layout as linux/fb.h).
    let (rv, rf) = unsafe {
        (
            libc::ioctl(
                file.as_raw_fd(),
                FBIOGET_VSCREENINFO as _,
                &mut var as *mut FbVarScreeninfo,
            ),
            libc::ioctl(
                file.as_raw_fd(),
                FBIOGET_FSCREENINFO as _,
                &mut fix as *mut FbFixScreeninfo,
            ),
        )
    };
    if rv < 0 || rf < 0 {
        let cause = std::io::Error::last_os_error();
        bail!("not a framebuffer: {}", lowercase_first(&cause.to_string()));
    }
    if fix.type_ != FB_TYPE_PACKED_PIXELS
        || !(fix.visual == FB_VISUAL_TRUECOLOR || fix.visual == FB_VISUAL_DIRECTCOLOR)
        || var.grayscale != 0
    {
        bail!(
            "unsupported framebuffer: type {} visual {} grayscale {} (packed true colour is drawn)",
            fix.type_,
            fix.visual,
            var.grayscale
        );
    }
    if var.red.msb_right != 0 || var.green.msb_right != 0 || var.blue.msb_right != 0 {
        bail!("unsupported framebuffer: channels with the most significant bit on the right");
    }
    let channel = |b: &FbBitfield| Channel::new(b.offset, b.length);
    let geometry = Geometry {
        width: var.xres,
        height: var.yres,
        line_length: fix.line_length,
        bits_per_pixel: var.bits_per_pixel,
        red: channel(&var.red),
        green: channel(&var.green),
        blue: channel(&var.blue),
        transp: channel(&var.transp),
        xoffset: var.xoffset,
        yoffset: var.yoffset,
    };
    let end = (u64::from(var.yoffset) + u64::from(var.yres)) * u64::from(fix.line_length);
    ensure!(
        end <= u64::from(fix.smem_len),
        "visible area ends at byte {end}, beyond the {} bytes of screen memory",
        fix.smem_len
    );
    Ok(geometry)
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const RGB565: [Channel; 3] = [Channel::new(11, 5), Channel::new(5, 6), Channel::new(0, 5)];
    const BGR565: [Channel; 3] = [Channel::new(0, 5), Channel::new(5, 6), Channel::new(11, 5)];
    const XRGB8888: [Channel; 3] = [Channel::new(16, 8), Channel::new(8, 8), Channel::new(0, 8)];
    const XBGR8888: [Channel; 3] = [Channel::new(0, 8), Channel::new(8, 8), Channel::new(16, 8)];

    const RED: Rgb<u8> = Rgb([255, 0, 0]);
    const GREEN: Rgb<u8> = Rgb([0, 255, 0]);
    const BLUE: Rgb<u8> = Rgb([0, 0, 255]);
    const WHITE: Rgb<u8> = Rgb([255, 255, 255]);

    /// A regular file as the framebuffer; removed on drop.
    struct FakeFb {
        path: PathBuf,
        fb: Framebuffer,
    }

    impl FakeFb {
        fn new(geometry: Geometry) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let name =
                format!("edge-fb-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
            let path = std::env::temp_dir().join(name);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .expect("create fake framebuffer");
            let fb = Framebuffer::from_parts(&path, file, geometry).expect("valid geometry");
            FakeFb { path, fb }
        }

        fn bytes(&self) -> Vec<u8> {
            std::fs::read(&self.path).expect("read fake framebuffer")
        }
    }

    impl Drop for FakeFb {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// A 2×2 frame: red, green / blue, white.
    fn quad() -> RgbImage {
        RgbImage::from_fn(2, 2, |x, y| [[RED, GREEN], [BLUE, WHITE]][y as usize][x as usize])
    }

    #[test]
    fn rgb565_exact_bytes() {
        let mut fb = FakeFb::new(Geometry::packed(2, 2, 16, RGB565));
        fb.fb.show(&quad()).expect("show");
        // 0xF800, 0x07E0 / 0x001F, 0xFFFF, little-endian.
        assert_eq!(fb.bytes(), [0x00, 0xF8, 0xE0, 0x07, 0x1F, 0x00, 0xFF, 0xFF]);
        assert_eq!(fb.fb.geometry().format_name(), "RGB565");
    }

    #[test]
    fn bgr565_exact_bytes() {
        let mut fb = FakeFb::new(Geometry::packed(2, 2, 16, BGR565));
        fb.fb.show(&quad()).expect("show");
        assert_eq!(fb.bytes(), [0x1F, 0x00, 0xE0, 0x07, 0x00, 0xF8, 0xFF, 0xFF]);
        assert_eq!(fb.fb.geometry().format_name(), "BGR565");
    }

    #[test]
    fn xrgb8888_and_xbgr8888_and_argb_exact_bytes() {
        let mut fb = FakeFb::new(Geometry::packed(2, 1, 32, XRGB8888));
        fb.fb
            .show(&RgbImage::from_fn(2, 1, |x, _| [RED, Rgb([1, 2, 3])][x as usize]))
            .expect("show");
        // Memory order B G R X.
        assert_eq!(fb.bytes(), [0, 0, 255, 0, 3, 2, 1, 0]);
        assert_eq!(fb.fb.geometry().format_name(), "XRGB8888");

        let mut fb = FakeFb::new(Geometry::packed(2, 1, 32, XBGR8888));
        fb.fb
            .show(&RgbImage::from_fn(2, 1, |x, _| [RED, Rgb([1, 2, 3])][x as usize]))
            .expect("show");
        assert_eq!(fb.bytes(), [255, 0, 0, 0, 1, 2, 3, 0]);
        assert_eq!(fb.fb.geometry().format_name(), "XBGR8888");

        let argb = Geometry { transp: Channel::new(24, 8), ..Geometry::packed(1, 1, 32, XRGB8888) };
        let mut fb = FakeFb::new(argb);
        fb.fb.show(&RgbImage::from_pixel(1, 1, BLUE)).expect("show");
        assert_eq!(fb.bytes(), [255, 0, 0, 255], "alpha must be opaque");
        assert_eq!(fb.fb.geometry().format_name(), "ARGB8888");
    }

    #[test]
    fn rgb888_24_bit() {
        let mut fb = FakeFb::new(Geometry::packed(2, 1, 24, XRGB8888));
        fb.fb
            .show(&RgbImage::from_fn(2, 1, |x, _| [RED, Rgb([1, 2, 3])][x as usize]))
            .expect("show");
        assert_eq!(fb.bytes(), [0, 0, 255, 3, 2, 1]);
        assert_eq!(fb.fb.geometry().format_name(), "RGB888");
    }

    #[test]
    fn padded_lines_and_panned_screen() {
        // 2 pixels of 2 bytes, rows padded to 7 bytes; the visible area starts 1 row and 1 pixel in.
        let geometry = Geometry {
            line_length: 7,
            xoffset: 1,
            yoffset: 1,
            ..Geometry::packed(2, 2, 16, RGB565)
        };
        let mut fb = FakeFb::new(geometry);
        fb.fb.show(&quad()).expect("show");
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 0, 0, 0, 0, // row 0: above the visible area, untouched (file grows from 0)
            0, 0, 0x00, 0xF8, 0xE0, 0x07, 0,
            0, 0, 0x1F, 0x00, 0xFF, 0xFF, 0,
        ];
        assert_eq!(fb.bytes(), expected);
    }

    #[test]
    fn letterbox_layouts() {
        // The camera's 640×480 on an 800×480 panel: full height, bars left and right.
        assert_eq!(
            letterbox((640, 480), (800, 480)),
            Placement { x: 80, y: 0, width: 640, height: 480 }
        );
        // 1280×720 on 800×480: full width, bars above and below.
        assert_eq!(
            letterbox((1280, 720), (800, 480)),
            Placement { x: 0, y: 15, width: 800, height: 450 }
        );
        // Portrait.
        assert_eq!(
            letterbox((480, 640), (800, 480)),
            Placement { x: 220, y: 0, width: 360, height: 480 }
        );
        assert_eq!(
            letterbox((800, 480), (800, 480)),
            Placement { x: 0, y: 0, width: 800, height: 480 }
        );
    }

    #[test]
    fn scaled_frame_is_centred_between_black_bars() {
        // Left half red, right half blue, 4×2, on an 8×8 ARGB screen: rows 2–5 hold the frame.
        let frame = RgbImage::from_fn(4, 2, |x, _| if x < 2 { RED } else { BLUE });
        let argb = Geometry { transp: Channel::new(24, 8), ..Geometry::packed(8, 8, 32, XRGB8888) };
        let mut fb = FakeFb::new(argb);
        fb.fb.show(&frame).expect("show");
        let bytes = fb.bytes();
        let pixel = |x: usize, y: usize| &bytes[(y * 8 + x) * 4..(y * 8 + x) * 4 + 4];
        for y in 0..8 {
            for x in 0..8 {
                let want: [u8; 4] = match (y, x) {
                    (2..=5, 0..=3) => [0, 0, 255, 255],
                    (2..=5, _) => [255, 0, 0, 255],
                    _ => [0, 0, 0, 255],
                };
                assert_eq!(pixel(x, y), want, "pixel {x},{y}");
            }
        }
    }

    #[test]
    fn real_photo_on_a_wide_panel() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample1.jpg");
        let photo = image::open(&path).expect("run models/fetch: sample1.jpg").into_rgb8();
        let photo =
            image::imageops::resize(&photo, 640, 480, image::imageops::FilterType::Triangle);
        let mut fb = FakeFb::new(Geometry::packed(800, 480, 32, XRGB8888));
        fb.fb.show(&photo).expect("show");
        let bytes = fb.bytes();
        assert_eq!(bytes.len(), 800 * 480 * 4);
        // Same size vertically, so columns 80..720 are the photo pixel for pixel.
        for (x, y) in [(0, 0), (320, 240), (639, 479), (17, 401)] {
            let i = (y * 800 + x + 80) * 4;
            let p = photo.get_pixel(x as u32, y as u32).0;
            assert_eq!(&bytes[i..i + 3], &[p[2], p[1], p[0]], "pixel {x},{y}");
        }
        for y in [0, 240, 479] {
            assert!(bytes[y * 3200..y * 3200 + 320].iter().all(|b| *b == 0), "left bar, row {y}");
            assert!(
                bytes[y * 3200 + 2880..(y + 1) * 3200].iter().all(|b| *b == 0),
                "right bar, row {y}"
            );
        }
    }

    #[test]
    fn unsupported_geometries_are_refused() {
        let dir = std::env::temp_dir();
        let file = || File::open(&dir).expect("open temp dir");
        let bad = [
            (Geometry::packed(2, 2, 8, RGB565), "8 bits per pixel"),
            (Geometry { line_length: 3, ..Geometry::packed(2, 2, 16, RGB565) }, "line length 3"),
            (Geometry::packed(2, 2, 16, XRGB8888), "red channel of 8 bits at bit 16"),
            (Geometry::packed(0, 2, 16, RGB565), "empty screen"),
        ];
        for (geometry, cause) in bad {
            let Err(err) = Framebuffer::from_parts("/dev/fb7", file(), geometry) else {
                panic!("{geometry:?} accepted");
            };
            let text = format!("{err:#}");
            assert!(text.starts_with("display /dev/fb7: ") && text.contains(cause), "{text}");
        }
    }

    #[test]
    fn ioctl_structs_match_linux_fb_h() {
        // sizeof / offsetof from a C program including <linux/fb.h>, built with gcc for x86_64
        // and arm-linux-gnueabihf-gcc for armv7 (`unsigned long` is 4 bytes there).
        let wide = std::mem::size_of::<libc::c_ulong>() == 8;
        assert_eq!(std::mem::size_of::<FbVarScreeninfo>(), 160);
        assert_eq!(std::mem::size_of::<FbFixScreeninfo>(), if wide { 80 } else { 68 });
        assert_eq!(std::mem::offset_of!(FbFixScreeninfo, line_length), if wide { 48 } else { 44 });
        assert_eq!(std::mem::offset_of!(FbFixScreeninfo, mmio_start), if wide { 56 } else { 48 });
        assert_eq!(std::mem::offset_of!(FbVarScreeninfo, red), 32);
    }

    #[test]
    fn opening_a_non_framebuffer_names_it() {
        let fake = FakeFb::new(Geometry::packed(1, 1, 16, RGB565));
        for path in [Path::new("/dev/null"), fake.path.as_path()] {
            let Err(err) = Framebuffer::open(path) else { panic!("{} opened", path.display()) };
            let text = format!("{err:#}");
            assert_eq!(
                text,
                format!(
                    "display {}: not a framebuffer: inappropriate ioctl for device (os error 25)",
                    path.display()
                )
            );
        }
        let missing = Path::new("/dev/fb-missing");
        let text =
            format!("{:#}", Framebuffer::open(missing).err().expect("missing device opened"));
        assert_eq!(text, "display /dev/fb-missing: No such file or directory (os error 2)");
    }
}
