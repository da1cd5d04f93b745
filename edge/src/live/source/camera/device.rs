//! The V4L2 device through nokhwa: listing cameras, choosing a mode, and reading frames as a
//! [`FrameSource`].

use super::convert::{decode_frame, FrameEncoding};
use crate::live::source::{Frame, FrameSource, SourceError};
use anyhow::{anyhow, bail, Context, Result};
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};
use nokhwa::Camera;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The frame formats a user may ask for (`--pixel-format`, `pixel_format` in a config file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Motion JPEG: the camera compresses, so high resolutions reach full rate over USB 2.
    Mjpeg,
    /// Uncompressed YUV 4:2:2: no decoding cost, but USB bandwidth limits size × rate.
    Yuyv,
    /// Uncompressed YUV 4:2:0 (CSI cameras through a converter, some UVC cameras).
    Nv12,
}

impl std::str::FromStr for PixelFormat {
    type Err = anyhow::Error;

    /// `mjpeg`, `yuyv` or `nv12`, in any case.
    fn from_str(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "mjpeg" => Ok(PixelFormat::Mjpeg),
            "yuyv" => Ok(PixelFormat::Yuyv),
            "nv12" => Ok(PixelFormat::Nv12),
            _ => bail!("unknown pixel format {name:?}: mjpeg, yuyv or nv12"),
        }
    }
}

impl PixelFormat {
    /// The encoding the camera sends in this format.
    pub fn encoding(self) -> FrameEncoding {
        match self {
            PixelFormat::Mjpeg => FrameEncoding::Mjpeg,
            PixelFormat::Yuyv => FrameEncoding::Yuyv,
            PixelFormat::Nv12 => FrameEncoding::Nv12,
        }
    }
}

/// What to open: the camera's index (`/dev/videoN`) and the wanted size, rate and format; the
/// camera's closest mode is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CameraConfig {
    pub index: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// `None`: any format the camera offers (the closest size and rate; at a tie, the one the
    /// camera lists first).
    pub format: Option<PixelFormat>,
}

/// One size, rate and encoding a camera offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CameraMode {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub encoding: FrameEncoding,
}

impl fmt::Display for CameraMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{} {}, {} fps", self.width, self.height, self.encoding, self.fps)
    }
}

/// The mode closest to `want`: among the modes in the wanted format (any, if none is given),
/// the nearest size (squared distance in pixels), then the nearest rate, preferring the faster
/// at equal distance, then the camera's own order. `None` when no mode has the wanted format.
pub fn choose_mode(modes: &[CameraMode], want: &CameraConfig) -> Option<CameraMode> {
    let wanted = want.format.map(PixelFormat::encoding);
    modes
        .iter()
        .enumerate()
        .filter(|(_, m)| wanted.is_none_or(|e| m.encoding == e))
        .min_by_key(|(order, m)| {
            let dx = i64::from(m.width) - i64::from(want.width);
            let dy = i64::from(m.height) - i64::from(want.height);
            let dfps = i64::from(m.fps) - i64::from(want.fps);
            (dx * dx + dy * dy, dfps.abs(), -dfps, *order)
        })
        .map(|(_, m)| *m)
}

/// The device node of camera `index`.
pub fn device_path(index: u32) -> PathBuf {
    PathBuf::from(format!("/dev/video{index}"))
}

/// A camera found by [`list_cameras`].
#[derive(Clone, Debug)]
pub struct CameraInfo {
    pub index: u32,
    pub path: PathBuf,
    pub name: String,
    /// The modes edge can decode; empty if the device could not be queried (see `error`).
    pub modes: Vec<CameraMode>,
    /// Why the device could not be opened (busy, no permission, not a capture device such as
    /// the metadata node UVC cameras add).
    pub error: Option<String>,
}

impl fmt::Display for CameraInfo {
    /// `0  /dev/video0  HD Webcam C270`, then one line per format listing sizes and rates.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}  {}", self.index, self.path.display(), self.name)?;
        if let Some(error) = &self.error {
            write!(f, "\n    not usable: {error}")?;
        }
        let mut encodings: Vec<FrameEncoding> = Vec::new();
        for m in &self.modes {
            if !encodings.contains(&m.encoding) {
                encodings.push(m.encoding);
            }
        }
        for encoding in encodings {
            write!(f, "\n    {encoding:<5}")?;
            for m in self.modes.iter().filter(|m| m.encoding == encoding) {
                write!(f, " {}×{}@{}", m.width, m.height, m.fps)?;
            }
        }
        Ok(())
    }
}

/// The V4L2 cameras present (`edge --list-cameras`); empty when there is none. Each is opened
/// briefly to read its modes.
pub fn list_cameras() -> Result<Vec<CameraInfo>> {
    let found = nokhwa::query(ApiBackend::Video4Linux).context("cannot list V4L2 cameras")?;
    let mut cameras = Vec::new();
    for info in found {
        let Ok(index) = info.index().as_index() else { continue };
        let (modes, error) = match open_camera(index) {
            Ok(mut camera) => match camera_modes(&mut camera) {
                Ok(modes) => (modes, None),
                Err(e) => (Vec::new(), Some(format!("{e:#}"))),
            },
            Err(e) => (Vec::new(), Some(format!("{e:#}"))),
        };
        cameras.push(CameraInfo {
            index,
            path: device_path(index),
            name: info.human_name(),
            modes,
            error,
        });
    }
    cameras.sort_by_key(|c| c.index);
    Ok(cameras)
}

/// A V4L2 camera as a frame source.
pub struct CameraSource {
    camera: Camera,
    index: u32,
    name: String,
    mode: CameraMode,
    /// Frames dequeued so far. nokhwa does not pass on the driver's `sequence`, so frames the
    /// driver dropped leave no gap; frames that failed to decode do.
    seq: u64,
}

/// nokhwa's formats that edge decodes, as it asks for them.
const DECODABLE: [FrameFormat; 6] = [
    FrameFormat::MJPEG,
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::GRAY,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
];

fn encoding_of(format: FrameFormat) -> FrameEncoding {
    match format {
        FrameFormat::MJPEG => FrameEncoding::Mjpeg,
        FrameFormat::YUYV => FrameEncoding::Yuyv,
        FrameFormat::NV12 => FrameEncoding::Nv12,
        FrameFormat::GRAY => FrameEncoding::Gray,
        FrameFormat::RAWRGB => FrameEncoding::Rgb,
        FrameFormat::RAWBGR => FrameEncoding::Bgr,
    }
}

fn format_of(encoding: FrameEncoding) -> FrameFormat {
    match encoding {
        FrameEncoding::Mjpeg => FrameFormat::MJPEG,
        FrameEncoding::Yuyv => FrameFormat::YUYV,
        FrameEncoding::Nv12 => FrameFormat::NV12,
        FrameEncoding::Gray => FrameFormat::GRAY,
        FrameEncoding::Rgb => FrameFormat::RAWRGB,
        FrameEncoding::Bgr => FrameFormat::RAWBGR,
    }
}

fn mode_of(format: &CameraFormat) -> CameraMode {
    CameraMode {
        width: format.width(),
        height: format.height(),
        fps: format.frame_rate(),
        encoding: encoding_of(format.format()),
    }
}

/// Opens the device in whatever decodable format nokhwa finds first; the mode is set after.
fn open_camera(index: u32) -> Result<Camera> {
    let path = device_path(index);
    if !path.exists() {
        bail!("no such device; `edge --list-cameras` lists the cameras present");
    }
    let request = RequestedFormat::with_formats(RequestedFormatType::None, &DECODABLE);
    Camera::with_backend(CameraIndex::Index(index), request, ApiBackend::Video4Linux).map_err(|e| {
        let hint = if e.to_string().contains("Permission denied") {
            " (the user must be in group video)"
        } else {
            ""
        };
        anyhow!("{e}{hint}")
    })
}

fn camera_modes(camera: &mut Camera) -> Result<Vec<CameraMode>> {
    let formats = camera.compatible_camera_formats().map_err(|e| anyhow!("{e}"))?;
    Ok(formats.iter().map(mode_of).collect())
}

impl CameraSource {
    /// Opens camera `config.index` in its mode closest to the config and starts streaming.
    /// Fails with one line naming the device: `camera 0 (/dev/video0): no such device; …`.
    pub fn open(config: CameraConfig) -> Result<Self> {
        let index = config.index;
        Self::open_inner(config)
            .with_context(|| format!("camera {index} ({})", device_path(index).display()))
    }

    fn open_inner(config: CameraConfig) -> Result<Self> {
        let mut camera = open_camera(config.index)?;
        let modes = camera_modes(&mut camera)?;
        let Some(mode) = choose_mode(&modes, &config) else {
            let mut offered: Vec<&str> = modes.iter().map(|m| m.encoding.name()).collect();
            offered.dedup();
            match config.format {
                Some(f) => bail!(
                    "no {} mode (offers: {})",
                    f.encoding(),
                    if offered.is_empty() {
                        "nothing edge decodes".into()
                    } else {
                        offered.join(", ")
                    }
                ),
                None => {
                    bail!("offers no format edge decodes (MJPEG, YUYV, NV12, GRAY, RGB3, BGR3)")
                }
            }
        };
        let format = CameraFormat::new(
            Resolution::new(mode.width, mode.height),
            format_of(mode.encoding),
            mode.fps,
        );
        if camera.camera_format() != format {
            let exact = [format.format()];
            let request = RequestedFormat::with_formats(RequestedFormatType::Exact(format), &exact);
            camera.set_camera_requset(request).map_err(|e| anyhow!("cannot set {mode}: {e}"))?;
        }
        camera.open_stream().map_err(|e| anyhow!("cannot start streaming {mode}: {e}"))?;
        let name = camera.info().human_name();
        Ok(CameraSource { camera, index: config.index, name, mode, seq: 0 })
    }

    /// The mode in use (may differ from the one asked for).
    pub fn mode(&self) -> CameraMode {
        self.mode
    }

    /// The camera's name as the driver reports it (`HD Webcam C270`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// When a frame was captured, from the driver's wall-clock timestamp (nokhwa converts V4L2's
/// monotonic one), as an `Instant`; now, if the timestamp is missing or implausible.
fn capture_instant(timestamp: Option<Duration>) -> Instant {
    let now = Instant::now();
    let age = timestamp.and_then(|ts| {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        wall.checked_sub(ts).filter(|age| *age < Duration::from_secs(2))
    });
    age.and_then(|age| now.checked_sub(age)).unwrap_or(now)
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let origin = format!("camera {}", self.index);
        // Any read error means the device is gone or broken (ENODEV when unplugged): the loop
        // drops this source and reopens it.
        let buffer = self.camera.frame().map_err(|e| {
            SourceError::Lost(anyhow!("{origin} ({}): {e}", device_path(self.index).display()))
        })?;
        let seq = self.seq;
        self.seq += 1;
        let captured = capture_instant(buffer.capture_timestamp());
        let image =
            decode_frame(buffer.buffer(), self.mode.encoding, self.mode.width, self.mode.height)
                .map_err(|e| SourceError::Frame(e.context(format!("{origin} frame {seq}"))))?;
        Ok(Some(Frame { image, seq, captured, origin }))
    }

    fn describe(&self) -> String {
        format!(
            "camera {} ({}×{} {}, {} fps, {})",
            self.index,
            self.mode.width,
            self.mode.height,
            self.mode.encoding,
            self.mode.fps,
            self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(width: u32, height: u32, fps: u32, encoding: FrameEncoding) -> CameraMode {
        CameraMode { width, height, fps, encoding }
    }

    fn want(width: u32, height: u32, fps: u32, format: Option<PixelFormat>) -> CameraConfig {
        CameraConfig { index: 0, width, height, fps, format }
    }

    /// The modes of a typical UVC webcam (a Logitech C270's list, abridged): MJPEG reaches
    /// 30 fps at every size, YUYV only at small ones.
    fn webcam() -> Vec<CameraMode> {
        use FrameEncoding::{Mjpeg, Yuyv};
        vec![
            mode(640, 480, 30, Mjpeg),
            mode(640, 480, 15, Mjpeg),
            mode(1280, 720, 30, Mjpeg),
            mode(800, 600, 30, Mjpeg),
            mode(640, 480, 30, Yuyv),
            mode(1280, 720, 10, Yuyv),
            mode(1280, 720, 5, Yuyv),
            mode(320, 240, 30, Yuyv),
        ]
    }

    #[test]
    fn exact_mode_is_chosen() {
        let m = choose_mode(&webcam(), &want(640, 480, 30, Some(PixelFormat::Yuyv)));
        assert_eq!(m, Some(mode(640, 480, 30, FrameEncoding::Yuyv)));
        let m = choose_mode(&webcam(), &want(640, 480, 15, None));
        assert_eq!(m, Some(mode(640, 480, 15, FrameEncoding::Mjpeg)));
    }

    #[test]
    fn closest_size_then_rate() {
        // 1280×720 at 30 fps with any format: MJPEG, since YUYV gives only 10 at that size.
        let m = choose_mode(&webcam(), &want(1280, 720, 30, None));
        assert_eq!(m, Some(mode(1280, 720, 30, FrameEncoding::Mjpeg)));
        // YUYV forced: the size wins over the rate.
        let m = choose_mode(&webcam(), &want(1280, 720, 30, Some(PixelFormat::Yuyv)));
        assert_eq!(m, Some(mode(1280, 720, 10, FrameEncoding::Yuyv)));
        // Sizes the camera lacks: the nearest in pixels (nokhwa's own `Closest` fails here).
        let m = choose_mode(&webcam(), &want(1920, 1080, 25, Some(PixelFormat::Mjpeg)));
        assert_eq!(m, Some(mode(1280, 720, 30, FrameEncoding::Mjpeg)));
        let m = choose_mode(&webcam(), &want(800, 640, 30, None));
        assert_eq!(m, Some(mode(800, 600, 30, FrameEncoding::Mjpeg)));
        let m = choose_mode(&webcam(), &want(300, 200, 30, None));
        assert_eq!(m, Some(mode(320, 240, 30, FrameEncoding::Yuyv)));
        // Equal distance in rate: the faster.
        let modes =
            [mode(640, 480, 20, FrameEncoding::Yuyv), mode(640, 480, 30, FrameEncoding::Yuyv)];
        assert_eq!(choose_mode(&modes, &want(640, 480, 25, None)), Some(modes[1]));
        // Equal in every way: the camera's first.
        let m = choose_mode(&webcam(), &want(640, 480, 30, None));
        assert_eq!(m, Some(mode(640, 480, 30, FrameEncoding::Mjpeg)));
    }

    #[test]
    fn missing_format_gives_none() {
        assert_eq!(choose_mode(&webcam(), &want(640, 480, 30, Some(PixelFormat::Nv12))), None);
        assert_eq!(choose_mode(&[], &want(640, 480, 30, None)), None);
    }

    #[test]
    fn absent_camera_fails_with_one_line_naming_it() {
        // No test machine here has a camera at index 99.
        let Err(err) = CameraSource::open(want(640, 480, 30, None).with_index(99)) else {
            panic!("camera 99 opened");
        };
        let text = format!("{err:#}");
        assert!(text.starts_with("camera 99 (/dev/video99): no such device"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn listing_shows_formats_and_problems() {
        let info = CameraInfo {
            index: 0,
            path: device_path(0),
            name: "HD Webcam C270".into(),
            modes: webcam()[..5].to_vec(),
            error: None,
        };
        assert_eq!(
            info.to_string(),
            "0  /dev/video0  HD Webcam C270\n    MJPEG 640×480@30 640×480@15 1280×720@30 800×600@30\
             \n    YUYV  640×480@30"
        );
        let busy =
            CameraInfo { modes: vec![], error: Some("Device or resource busy".into()), ..info };
        assert_eq!(
            busy.to_string(),
            "0  /dev/video0  HD Webcam C270\n    not usable: Device or resource busy"
        );
        // Whatever this machine has, listing does not fail.
        let cameras = list_cameras().expect("list cameras");
        let nodes = std::fs::read_dir("/dev")
            .map(|d| {
                d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("video")).count()
            })
            .unwrap_or(0);
        assert_eq!(cameras.len(), nodes);
    }

    #[test]
    fn capture_time_from_the_driver_timestamp() {
        // Only orderings that hold however long the machine stalls between two statements, so a
        // busy machine cannot fail the test; `slack` covers the two clocks' rounding.
        let slack = Duration::from_millis(1);
        let forty = Duration::from_millis(40);
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
        let read = Instant::now();
        // A timestamp 40 ms old is believed: the frame was captured at least 40 ms before the
        // timestamp was read (a disbelieved one would give the time of the call, after `read`).
        assert!(capture_instant(Some(wall - forty)) + forty <= read + slack);
        // No timestamp, or one from another clock (years off): the time of the call.
        for timestamp in [None, Some(Duration::from_secs(5))] {
            let before = Instant::now();
            let captured = capture_instant(timestamp);
            let after = Instant::now();
            assert!(captured >= before && captured <= after, "{timestamp:?}");
        }
    }

    impl CameraConfig {
        fn with_index(self, index: u32) -> Self {
            CameraConfig { index, ..self }
        }
    }
}
