//! The real-time loop on frames made from the test photos: a face that moves, leaves and comes
//! back; every frame or every k-th frame detected; the newest-frame and reconnecting sources.

use edge::infer::crop;
use edge::input::decode;
use edge::live::source::{
    Backoff, FolderSource, Frame, FrameSource, Newest, Reconnecting, SourceError,
};
use edge::live::track::TrackerConfig;
use edge::live::{run, Event, EventKind, FrameResult, Live, LiveConfig, Sink, StatsReport};
use edge::sinks::snapshots::Snapshots;
use edge::{Classifier, Detector, DetectorConfig, Label, Pipeline};
use image::{imageops, Rgb, RgbImage};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::{model, photo, Scratch, TestNet};

const W: u32 = 640;
const H: u32 = 480;
/// Where the astronaut's face starts, and how far it moves per frame.
const X0: i64 = 40;
const STEP: i64 = 8;

/// 640×480 frames: the astronaut (one face) sliding right for `moving` frames, then `away`
/// frames of the coffee cup (no face), then the astronaut again for `back` frames.
fn frames(dir: &Path, moving: usize, away: usize, back: usize) {
    let astronaut = decode::open(&photo("astronaut.png")).expect("astronaut");
    let astronaut = imageops::resize(&astronaut, 300, 300, imageops::FilterType::Triangle);
    let coffee = decode::open(&photo("coffee.png")).expect("coffee");
    let coffee = imageops::resize(&coffee, W, H, imageops::FilterType::Triangle);
    let mut n = 0;
    let mut save = |img: &RgbImage| {
        img.save(dir.join(format!("frame{n:04}.png"))).expect("write frame");
        n += 1;
    };
    let with_face = |i: usize| {
        let mut frame = RgbImage::from_pixel(W, H, Rgb([90, 90, 90]));
        imageops::overlay(&mut frame, &astronaut, X0 + STEP * i as i64, 90);
        frame
    };
    (0..moving).for_each(|i| save(&with_face(i)));
    (0..away).for_each(|_| save(&coffee));
    (0..back).for_each(|i| save(&with_face(i)));
}

fn pipeline(classifier: Option<Classifier>, threshold: Option<f32>) -> Pipeline {
    let detector =
        Detector::load(&model("face_detection_full_range.tflite"), DetectorConfig::default())
            .expect("detector");
    Pipeline { detector, classifier, margin: crop::DEFAULT_MARGIN, threshold }
}

/// Collects events, counts frames and keeps the reports `finish` was given (a shared cell, so
/// the test reads them while the loop owns the sink).
#[derive(Clone, Default)]
struct Collect(Rc<RefCell<Vec<Event>>>, Rc<RefCell<(u64, Vec<u64>)>>);

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.0.borrow_mut().push(event.clone());
        Ok(())
    }

    fn frame(&mut self, _: &Frame, _: &FrameResult) -> anyhow::Result<()> {
        self.1.borrow_mut().0 += 1;
        Ok(())
    }

    fn finish(&mut self, report: &StatsReport) -> anyhow::Result<()> {
        self.1.borrow_mut().1.push(report.processed);
        Ok(())
    }
}

fn kinds(events: &[Event]) -> Vec<(EventKind, u64, u64)> {
    events.iter().map(|e| (e.event, e.track, e.frame)).collect()
}

fn run_folder(dir: &Path, live: &mut Live) -> (Vec<Event>, StatsReport) {
    let mut source = FolderSource::open(dir, false, None).expect("frames");
    let collect = Collect::default();
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(collect.clone())];
    let report = run(live, &mut source, &AtomicBool::new(false), &mut sinks).expect("run");
    let events = collect.0.borrow().clone();
    (events, report)
}

#[test]
fn a_face_appears_moves_leaves_and_a_new_one_comes() {
    let dir = Scratch::new("moves");
    frames(&dir, 10, 6, 4);
    let config = TrackerConfig { forget_after: 3, ..TrackerConfig::default() };
    // With two threads the next frame is detected while this one is classified: same events.
    for (detect_every, threads) in [(1, 1), (3, 1), (1, 2), (3, 2)] {
        let config = LiveConfig { detect_every, tracker: config, threads, ..LiveConfig::default() };
        let mut live = Live::new(pipeline(None, None), config);
        let (events, report) = run_folder(&dir, &mut live);
        // Appeared at frame 0; left once undetected for more than 3 frames (the first detection
        // pass after frame 9 + 3); back as a new track at 16; left when the folder ends (19).
        let left_at = (13..).find(|f| f % detect_every == 0).expect("a detection frame");
        let expected = [
            (EventKind::Appeared, 1, 0),
            (EventKind::Left, 1, left_at),
            (EventKind::Appeared, 2, (16..).find(|f| f % detect_every == 0).expect("frame")),
            (EventKind::Left, 2, 19),
        ];
        assert_eq!(kinds(&events), expected, "detect every {detect_every}, {threads} threads");
        assert_eq!((report.processed, report.captured, report.skipped), (20, 20, 0));
        assert_eq!(report.detect_passes, 20u64.div_ceil(detect_every));
        assert!(events.iter().all(|e| e.p_fake.is_none() && e.label.is_none()));
    }
}

#[test]
fn with_two_threads_max_frames_and_a_second_run_lose_no_frame() {
    let dir = Scratch::new("max-frames");
    frames(&dir, 6, 0, 0);
    let config = LiveConfig { threads: 2, max_frames: Some(4), ..LiveConfig::default() };
    let mut live = Live::new(pipeline(None, None), config);
    let mut source = FolderSource::open(&dir, false, None).expect("frames");
    let stop = AtomicBool::new(false);
    let collect = Collect::default();
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(collect.clone())];
    let report = run(&mut live, &mut source, &stop, &mut sinks).expect("run");
    assert_eq!((report.processed, report.captured), (4, 4));
    // The frame after the last processed one was not taken from the source: the next run starts
    // there.
    live.config.max_frames = None;
    let report = run(&mut live, &mut source, &stop, &mut sinks).expect("run");
    assert_eq!((report.processed, report.captured), (6, 6));
    drop(sinks);
    // Every processed frame reached the sink, and each run ended with its own `finish`.
    assert_eq!(*collect.1.borrow(), (6, vec![4, 6]));
    let expected = [
        (EventKind::Appeared, 1, 0),
        (EventKind::Left, 1, 3),
        (EventKind::Appeared, 2, 4),
        (EventKind::Left, 2, 5),
    ];
    assert_eq!(kinds(&collect.0.borrow()), expected);
}

#[test]
fn tracked_boxes_follow_the_face_between_detections() {
    let dir = Scratch::new("follow");
    frames(&dir, 12, 0, 0);
    let detector = pipeline(None, None).detector;
    let mut live =
        Live::new(pipeline(None, None), LiveConfig { detect_every: 4, ..LiveConfig::default() });
    let mut source = FolderSource::open(&dir, false, None).expect("frames");
    let mut worst: f32 = 0.0;
    while let Some(frame) = source.next_frame().expect("frame") {
        let result = live.process(&frame).expect("process");
        let truth = detector.detect(&frame.image).expect("detect");
        assert_eq!((result.faces.len(), truth.len()), (1, 1), "frame {}", frame.seq);
        let [x0, _, x1, _] = result.faces[0].1.bbox;
        let b = truth[0].bbox;
        // The motion is known once the face has been detected twice (frames 0 and 4).
        if frame.seq > 4 {
            worst = worst.max((x0 - b.x0).abs()).max((x1 - b.x1).abs());
        }
    }
    // Without prediction the box would lag up to 3 × 8 px behind.
    assert!(worst < 6.0, "tracked box off by {worst} px");
}

#[test]
fn classified_faces_carry_smoothed_labels_and_fake_ones_leave_snapshots() {
    let dir = Scratch::new("labels");
    let frames_dir = dir.join("frames");
    std::fs::create_dir_all(&frames_dir).expect("frames dir");
    frames(&frames_dir, 5, 0, 0);
    let net = TestNet::new(64);
    let classifier_path = net.write_onnx(&dir);
    for (threshold, label) in [(0.0, Label::Fake), (1.0, Label::Real)] {
        let snapshots = dir.join(format!("snapshots-{threshold}"));
        let classifier = Classifier::load(&classifier_path).expect("classifier");
        let mut live =
            Live::new(pipeline(Some(classifier), Some(threshold)), LiveConfig::default());
        let mut source = FolderSource::open(&frames_dir, false, None).expect("frames");
        let collect = Collect::default();
        let mut sinks: Vec<Box<dyn Sink>> = vec![
            Box::new(collect.clone()),
            Box::new(Snapshots::new(snapshots.clone()).expect("snapshot folder")),
        ];
        run(&mut live, &mut source, &AtomicBool::new(false), &mut sinks).expect("run");
        let events = collect.0.borrow();
        assert_eq!(kinds(&events), [(EventKind::Appeared, 1, 0), (EventKind::Left, 1, 4)]);
        assert!(events.iter().all(|e| e.label == Some(label)), "{events:?}");
        // The first p(FAKE) is the network's own on the first frame's crop.
        let first = decode::open(&frames_dir.join("frame0000.png")).expect("frame");
        let face = &pipeline(None, None).detector.detect(&first).expect("detect")[0];
        let crop = crop::face(&first, &face.bbox, crop::DEFAULT_MARGIN, 64);
        let p = events[0].p_fake.expect("p_fake");
        assert!((p - net.reference_p_fake(&crop)).abs() < 1e-3, "{p}");
        let written: Vec<_> = std::fs::read_dir(&snapshots).expect("list").flatten().collect();
        if label == Label::Fake {
            assert_eq!(written.len(), 1, "one snapshot when the face turned FAKE");
            let img = decode::open(&written[0].path()).expect("snapshot decodes");
            assert_eq!(img.dimensions(), (W, H));
        } else {
            assert!(written.is_empty());
        }
    }
}

#[test]
fn a_corrupt_frame_is_counted_and_skipped() {
    let dir = Scratch::new("corrupt");
    frames(&dir, 3, 0, 0);
    std::fs::write(dir.join("frame0001b.png"), b"\x89PNG\r\n\x1a\nnot really").expect("write");
    let mut live = Live::new(pipeline(None, None), LiveConfig::default());
    let (events, report) = run_folder(&dir, &mut live);
    assert_eq!((report.processed, report.bad_frames), (3, 1));
    assert_eq!(kinds(&events), [(EventKind::Appeared, 1, 0), (EventKind::Left, 1, 3)]);
}

#[test]
fn a_slow_loop_gets_the_newest_frame_not_a_queue() {
    let dir = Scratch::new("newest");
    frames(&dir, 4, 0, 0);
    let stop = Arc::new(AtomicBool::new(false));
    let folder = FolderSource::open(&dir, true, Some(200.0)).expect("frames");
    let stall = Duration::from_secs(60);
    let mut newest = Newest::spawn(Box::new(folder), stop.clone(), stall).expect("spawn");
    let mut seqs = vec![];
    for _ in 0..8 {
        // Every frame read before this call is older than the one it returns, but for the one
        // the capture thread may have counted and not yet handed over. A queue would fall further
        // behind at each 40 ms step. Load-proof: a capture thread slowed by a busy machine reads
        // fewer frames, and the bound follows it.
        let before = newest.captured();
        let frame = newest.next_frame().expect("frame").expect("not ended");
        assert!(frame.seq + 2 >= before, "frame {} returned after {before} were read", frame.seq);
        seqs.push(frame.seq);
        std::thread::sleep(Duration::from_millis(40));
    }
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
}

/// Frames of one photo; lost after `lose_after` of them.
struct Flaky {
    image: RgbImage,
    seq: u64,
    lose_after: u64,
}

impl FrameSource for Flaky {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.seq == self.lose_after {
            return Err(SourceError::Lost(anyhow::anyhow!("No such device (os error 19)")));
        }
        self.seq += 1;
        let origin = "flaky camera".to_string();
        Ok(Some(Frame {
            image: self.image.clone(),
            seq: self.seq - 1,
            captured: Instant::now(),
            origin,
        }))
    }

    fn describe(&self) -> String {
        "flaky camera".into()
    }
}

#[test]
fn a_lost_source_is_reopened_with_back_off_and_numbering_goes_on() {
    let image = decode::open(&photo("astronaut.png")).expect("astronaut");
    let attempts = Arc::new(std::sync::Mutex::new(vec![]));
    let (img, log) = (image.clone(), attempts.clone());
    let opener = Box::new(move || {
        let mut log = log.lock().expect("lock");
        log.push(Instant::now());
        // Unplugged for the first two attempts, then back.
        anyhow::ensure!(log.len() > 2, "No such file or directory (os error 2)");
        Ok(Box::new(Flaky { image: img.clone(), seq: 0, lose_after: 100 }) as Box<dyn FrameSource>)
    });
    let first = Box::new(Flaky { image, seq: 0, lose_after: 3 });
    let backoff = Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(60) };
    let mut source = Reconnecting::new(first, opener, backoff, Arc::new(AtomicBool::new(false)));
    let mut seqs = vec![];
    while seqs.len() < 6 {
        match source.next_frame() {
            Ok(Some(frame)) => seqs.push(frame.seq),
            Err(SourceError::Idle) => {}
            other => panic!("unexpected {:?}", other.map(|f| f.map(|f| f.seq))),
        }
    }
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
    assert_eq!(source.losses, 1);
    let attempts = attempts.lock().expect("lock");
    assert_eq!(attempts.len(), 3);
    // Waits double between attempts: 20 ms, then 40 ms.
    assert!(attempts[1] - attempts[0] >= Duration::from_millis(20));
    assert!(attempts[2] - attempts[1] >= Duration::from_millis(40));
}

#[test]
fn stopping_while_the_source_is_away_ends_the_wait() {
    let image = decode::open(&photo("astronaut.png")).expect("astronaut");
    let opener = Box::new(|| -> anyhow::Result<Box<dyn FrameSource>> {
        anyhow::bail!("No such file or directory (os error 2)")
    });
    let stop = Arc::new(AtomicBool::new(false));
    let backoff = Backoff { initial: Duration::from_secs(3600), max: Duration::from_secs(3600) };
    let first = Box::new(Flaky { image, seq: 0, lose_after: 1 });
    let mut source = Reconnecting::new(first, opener, backoff, stop.clone());
    assert!(source.next_frame().expect("frame").is_some());
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let t = Instant::now();
    let mut idle = 0;
    let end = loop {
        match source.next_frame() {
            Err(SourceError::Idle) => idle += 1,
            other => break other,
        }
    };
    assert!(matches!(end, Ok(None)), "ends cleanly");
    assert!(idle >= 1, "the wait is cut into idle returns");
    assert!(t.elapsed() < Duration::from_secs(60));
    setter.join().expect("join");
}

/// One frame, then a read that never returns (a camera that hangs without going away).
struct Hangs(u64);

impl FrameSource for Hangs {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.0 > 0 {
            std::thread::sleep(Duration::from_secs(3600));
        }
        self.0 += 1;
        let image = RgbImage::new(8, 8);
        Ok(Some(Frame { image, seq: 0, captured: Instant::now(), origin: "hangs".into() }))
    }

    fn describe(&self) -> String {
        "hangs".into()
    }
}

#[test]
fn a_source_that_hangs_is_reported_lost_and_the_loop_stays_responsive() {
    let stop = Arc::new(AtomicBool::new(false));
    let stall = Duration::from_millis(1500);
    let mut newest = Newest::spawn(Box::new(Hangs(0)), stop, stall).expect("spawn");
    assert!(newest.next_frame().expect("first frame").is_some());
    let t = Instant::now();
    let mut idle = vec![];
    let lost = loop {
        match newest.next_frame() {
            Err(SourceError::Idle) => idle.push(t.elapsed()),
            Err(SourceError::Lost(e)) => break e,
            other => panic!("unexpected {:?}", other.map(|f| f.map(|f| f.seq))),
        }
    };
    assert!(format!("{lost}").contains("no frame for"), "{lost}");
    assert!(t.elapsed() >= stall);
    // While waiting, control came back at least once a second.
    assert!(!idle.is_empty() && idle[0] <= Duration::from_millis(1500), "{idle:?}");
}
