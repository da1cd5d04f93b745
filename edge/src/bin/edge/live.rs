//! `edge --camera N` / `edge --dir DIR`: the real-time loop until the folder ends or a signal
//! stops it. Start-up failures (models, source, display, MQTT settings) are errors; a lost source
//! is reopened with back-off. Under systemd: READY once running, the watchdog fed from the loop,
//! STATUS with the statistics.

use crate::cli::{Cli, LiveOptions};
use anyhow::Result;
use edge::live::source::{Backoff, FolderSource, Newest, Opener, Reconnecting};
use edge::live::{Live, Sink};
use edge::service::{stop_on_signals, Notifier};
use edge::sinks::lines::{JsonLines, StatsLog, TextLines};
use edge::sinks::snapshots::Snapshots;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub fn run(cli: &Cli) -> Result<ExitCode> {
    let stop = stop_on_signals()?;
    let notifier = Notifier::from_env()?;
    let options = &cli.live;
    let config = options.config()?;
    let pipeline = cli.models.pipeline()?;
    let mut opener = opener(options, &stop)?;
    let first = opener()?;
    eprintln!("edge: reading {}", first.describe());
    let mut source = Reconnecting::new(first, opener, Backoff::default(), stop.clone());
    let mut sinks: Vec<Box<dyn Sink>> = vec![if cli.json {
        Box::new(JsonLines(std::io::stdout()))
    } else {
        Box::new(TextLines(std::io::stdout()))
    }];
    sinks.push(Box::new(StatsLog));
    if let Some(path) = &options.display {
        sinks.push(display(path)?);
    }
    if let Some(dir) = &options.snapshots {
        sinks.push(Box::new(Snapshots::new(dir.clone())?));
    }
    if let Some(address) = &options.mqtt {
        sinks.push(mqtt(address, options)?);
    }
    if let Some(notifier) = notifier {
        if let Err(e) = notifier.ready() {
            eprintln!("edge: {e:#}");
        }
        sinks.push(Box::new(notifier));
    }
    let mut live = Live::new(pipeline, config);
    let report = edge::live::run(&mut live, &mut source, &stop, &mut sinks)?;
    eprintln!("edge: done: {report}");
    Ok(ExitCode::SUCCESS)
}

/// Opens the frame source the options name, each time it is called (again after a loss). A
/// camera, or a paced folder, is read on its own thread and the loop takes the newest frame; an
/// unpaced folder is read frame by frame, so every frame is processed.
fn opener(options: &LiveOptions, stop: &Arc<AtomicBool>) -> Result<Opener> {
    let stop = stop.clone();
    if let Some(dir) = &options.dir {
        let (dir, looping, fps) = (dir.clone(), options.looping, options.fps);
        return Ok(Box::new(move || {
            let folder = Box::new(FolderSource::open(&dir, looping, fps)?);
            for (path, cause) in folder.skipped() {
                eprintln!("edge: skipped {}: {cause}", path.display());
            }
            Ok(match fps {
                Some(_) => Box::new(Newest::spawn(folder, stop.clone(), STALL)?),
                None => folder,
            })
        }));
    }
    let Some(index) = options.camera else {
        anyhow::bail!("no frame source: give --camera or --dir")
    };
    camera_opener(options, index, stop)
}

/// Events and statistics to an MQTT broker (`--mqtt`). A malformed address or unreadable
/// credentials fail at start-up; a broker that is down is retried in the background.
#[cfg(feature = "mqtt")]
fn mqtt(address: &str, options: &LiveOptions) -> Result<Box<dyn Sink>> {
    use edge::sinks::mqtt::{MqttConfig, MqttPublisher};
    let mut config = MqttConfig::new(address)?;
    if let Some(prefix) = &options.mqtt_topic {
        config.topic_prefix.clone_from(prefix);
    }
    if let Some(id) = &options.mqtt_client_id {
        config.client_id.clone_from(id);
    }
    config.credentials_file.clone_from(&options.mqtt_credentials);
    let publisher = MqttPublisher::start(config)?;
    eprintln!("edge: publishing events to {}", publisher.events_topic());
    Ok(Box::new(publisher))
}

#[cfg(not(feature = "mqtt"))]
fn mqtt(_: &str, _: &LiveOptions) -> Result<Box<dyn Sink>> {
    anyhow::bail!("this edge was built without the `mqtt` feature")
}

/// A camera that delivers nothing for this long is reopened.
const STALL: Duration = Duration::from_secs(10);

#[cfg(feature = "camera")]
fn camera_opener(options: &LiveOptions, index: u32, stop: Arc<AtomicBool>) -> Result<Opener> {
    use edge::live::source::camera::{CameraConfig, CameraSource};
    let format = options.pixel_format.as_deref().map(str::parse).transpose()?;
    let fps = options.fps.unwrap_or(30.0).round().clamp(1.0, 1000.0) as u32;
    let config = CameraConfig { index, width: options.width, height: options.height, fps, format };
    Ok(Box::new(move || {
        let camera = Box::new(CameraSource::open(config)?);
        Ok(Box::new(Newest::spawn(camera, stop.clone(), STALL)?)
            as Box<dyn edge::live::source::FrameSource>)
    }))
}

#[cfg(not(feature = "camera"))]
fn camera_opener(_: &LiveOptions, _: u32, _: Arc<AtomicBool>) -> Result<Opener> {
    anyhow::bail!("this edge was built without the `camera` feature")
}

#[cfg(feature = "camera")]
pub fn list_cameras() -> Result<ExitCode> {
    let cameras = edge::live::source::camera::list_cameras()?;
    if cameras.is_empty() {
        println!("no cameras (no /dev/video* device)");
    }
    for camera in cameras {
        println!("{camera}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "camera"))]
pub fn list_cameras() -> Result<ExitCode> {
    anyhow::bail!("this edge was built without the `camera` feature")
}

#[cfg(feature = "display")]
fn display(path: &std::path::Path) -> Result<Box<dyn Sink>> {
    let display = edge::sinks::display::Framebuffer::open(path)?;
    eprintln!("edge: showing frames on {}", display.describe());
    Ok(Box::new(display))
}

/// Without the display feature nothing can be shown; say so at start-up.
#[cfg(not(feature = "display"))]
fn display(_: &std::path::Path) -> Result<Box<dyn Sink>> {
    anyhow::bail!("this edge was built without the `display` feature")
}
