//! `trainer --data DIR... --out RUN`: train the REAL/FAKE classifier on folders of face photos and
//! export it for `edge`; `--resume` continues a run.

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};
use edge::range::within;
use std::path::PathBuf;
use trainer::data::faces::NoFace;
use trainer::eval::metrics::ThresholdRule;
use trainer::fakes::kind::FakeKind;
use trainer::nets::{mobilenet_v2, Backbone};
use trainer::run::{resume, run, saved_config, RunConfig};
use trainer::train::{Adapter, Backend, TrainConfig, MAX_INPUT, MAX_XRAY, MIN_INPUT};

/// The training options (the command without a subcommand).
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A data folder: holding training_real/ and training_fake/ (the original project's layout,
    /// possibly nested) or real/ and fake/. Repeat to merge several.
    #[arg(long, required_unless_present = "resume", value_name = "DIR")]
    data: Vec<PathBuf>,
    /// Run folder: models, reports, configuration, split, checkpoints/.
    #[arg(long, required = true, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint, with its saved configuration; only
    /// --epochs (to train longer), --backend, --device, --cache and --max-false-alarm may be
    /// given anew.
    #[arg(long)]
    resume: bool,
    /// The backend: burn's Flex on the CPU, or (when built with its feature) NdArray or wgpu.
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
    /// The adapter of --backend wgpu: default (a high-performance GPU first), cpu (a software
    /// adapter such as lavapipe), or discrete, integrated or virtual, each with an optional :N.
    #[arg(long, default_value_t = Adapter::Default, value_name = "ADAPTER")]
    device: Adapter,
    /// The network to train (mobilenet-v2 from ImageNet weights beat every other variant measured
    /// here: models/SWEEP.md).
    #[arg(long, value_enum, default_value_t = Backbone::MobilenetV2)]
    backbone: Backbone,
    /// Width multiplier of mobilenet-v3-small (torchvision's rule: every channel count times W,
    /// rounded to a multiple of 8); not with --pretrained.
    #[arg(long, default_value_t = 1.0, value_name = "W", value_parser = within(0.05, 4.0))]
    width: f64,
    /// Start from torchvision ImageNet weights of the backbone (.pth: MobileNetV3-Small's
    /// `mobilenet_v3_small-047dcff4.pth`, or MobileNetV2's `mobilenet_v2-b0353104.pth`, which
    /// models/fetch fetches into models/) [default for mobilenet-v2: that file in --models].
    #[arg(long, value_name = "FILE", conflicts_with = "from_scratch")]
    pretrained: Option<PathBuf>,
    /// Start from random weights (mobilenet-v3-small always does without --pretrained).
    #[arg(long)]
    from_scratch: bool,
    /// Kinds of fake to make from every real face each epoch (enough to train with real photos
    /// only): sbi (self-blended images), upsample (generator up-sampling traces), swap (blends
    /// of two people), reconstruct (detail of a small generator's reconstructions), denoise
    /// (detail of a small denoiser's output); none trains on the --data folders' own fakes alone
    /// [default: sbi,upsample,swap,reconstruct, the set that best caught a kind left out of
    /// training: models/LOKO.md].
    #[arg(long, value_name = "KIND,...|none", value_parser = fake_list)]
    fakes: Option<FakeList>,
    /// Short for --fakes sbi (added to the kinds of --fakes, if given).
    #[arg(long)]
    sbi: bool,
    /// Add to mobilenet-v2 a second stem on the image's high-pass residual (the image minus its
    /// 3×3 blur), where generators leave their traces; it is part of the exported model.
    #[arg(long)]
    high_pass: bool,
    /// Keep mobilenet-v2's stem and first N of its 17 blocks at their pretrained weights and
    /// batch-norm statistics (0: train every layer).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        value_parser = within(0usize, mobilenet_v2::BLOCKS)
    )]
    freeze_blocks: usize,
    /// Weigh the loss so the real faces count as much as all the fakes made of them together
    /// (each class half the loss); without it each image counts once.
    #[arg(long)]
    balance_classes: bool,
    /// Also teach mobilenet-v2 to map where the blended kinds (sbi, swap) put their blend
    /// boundary (Face X-ray), this loss weighed W beside the classifier's (the data folders' own
    /// fakes, whose boundary no mask records, are left out of it); the map is for training only
    /// and is not exported (0: off; off by default: it caught no kind left out of training
    /// better, models/LOKO.md).
    #[arg(
        long,
        value_name = "W",
        default_value_t = 0.0,
        value_parser = within(0.0f32, MAX_XRAY)
    )]
    xray: f32,
    /// Colour and brightness change of self-blended fakes: 1 is the published range, larger
    /// makes them easier to tell.
    #[arg(long, default_value_t = 1.0, value_parser = within(0.0f32, 10.0))]
    sbi_strength: f32,
    #[arg(long, default_value_t = 20, value_parser = within(1usize, 100_000))]
    epochs: usize,
    #[arg(long, default_value_t = 16, value_parser = within(1usize, 4096))]
    batch_size: usize,
    #[arg(long, default_value_t = 3e-4, value_parser = within(1e-8, 1.0))]
    lr: f64,
    /// Side of the square face crops the model takes.
    #[arg(long, default_value_t = 160, value_parser = within(MIN_INPUT, MAX_INPUT))]
    input_size: u32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fraction of each class held out for validation.
    #[arg(long, default_value_t = 0.2, value_parser = within(0.0, 0.9))]
    val_fraction: f64,
    /// Train on the crops as they are, without augmentation.
    #[arg(long)]
    no_augment: bool,
    /// What to do with photos in which no face is found.
    #[arg(long, value_enum, default_value_t = NoFace::Skip)]
    no_face: NoFace,
    /// Face detector file [default: <models>/face_detection_full_range.tflite].
    #[arg(long, value_name = "PATH")]
    detector: Option<PathBuf>,
    /// Folder of the detector files.
    #[arg(long, env = "EDGE_MODELS", default_value = "models", value_name = "DIR")]
    models: PathBuf,
    /// Cache of face crops [default: $XDG_CACHE_HOME/deepfake-edge/crops].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    #[arg(long, default_value_t = edge::infer::crop::DEFAULT_MARGIN,
          value_parser = within(0.0f32, edge::infer::crop::MAX_MARGIN))]
    margin: f32,
    #[arg(long, default_value_t = edge::DetectorConfig::default().min_score,
          value_parser = within(0.0f32, 1.0))]
    min_score: f32,
    /// Choose the decision threshold so that at most this share of the REAL validation faces is
    /// called FAKE (e.g. 0.05), catching as many FAKE ones as that allows [default: the threshold
    /// maximising Youden's J]. May be changed with --resume.
    #[arg(long, value_name = "RATE", value_parser = false_alarm_rate)]
    max_false_alarm: Option<f64>,
}

fn false_alarm_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("a share of the real faces, from 0 up to (not including) 1".into())
    }
}

/// The kinds `--fakes` names (none for `none`).
#[derive(Clone, Debug)]
struct FakeList(Vec<FakeKind>);

fn fake_list(s: &str) -> Result<FakeList, String> {
    if s == "none" {
        return Ok(FakeList(vec![]));
    }
    let kind = |name: &str| {
        FakeKind::from_str(name.trim(), false).map_err(|_| {
            let names: Vec<&str> = FakeKind::value_variants().iter().map(|k| k.name()).collect();
            format!("{name}: not a kind of fake ({}, or none)", names.join(", "))
        })
    };
    Ok(FakeList(s.split(',').map(kind).collect::<Result<_, _>>()?))
}

/// With `--resume`: the run's saved configuration, with the settings a resumed run may change
/// taken from the command line where given there (`trainer::resume`); any other setting given
/// there must agree.
fn resumed_config(cli: RunConfig, matches: &ArgMatches) -> Result<RunConfig> {
    // Argument ids are the settings' names, but for the flag that negates its setting and the
    // one that sets the threshold rule.
    let arg = |name: &str| match name {
        "augment" => "no_augment".to_string(),
        "threshold_rule" => "max_false_alarm".to_string(),
        name => name.to_string(),
    };
    let from_cli = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let given = |name: &str| match name {
        "fakes" => from_cli("fakes") || from_cli("sbi"),
        name => from_cli(&arg(name)),
    };
    let (cfg, conflicts) = trainer::resume::merge(&saved_config(&cli.out)?, &cli, given)?;
    if !conflicts.is_empty() {
        let flags: Vec<String> = conflicts
            .into_iter()
            .map(|(name, was, now)| {
                let flag = arg(&name).replace('_', "-");
                match now {
                    serde_json::Value::Bool(_) => format!("--{flag} (the run has {name} = {was})"),
                    now => format!("--{flag} {now} (the run has {was})"),
                }
            })
            .collect();
        bail!(
            "{}: cannot resume with {}; start a new run (another --out) to change them",
            cli.out.join("config.json").display(),
            flags.join(", ")
        );
    }
    Ok(cfg)
}

/// Trains (or resumes) the run the options describe and prints its outcome.
pub fn run_command(cli: TrainArgs, matches: &ArgMatches) -> Result<()> {
    let resuming = cli.resume;
    let pretrained = match (cli.pretrained, cli.backbone) {
        (Some(path), _) => Some(path),
        (None, Backbone::MobilenetV2) if !cli.from_scratch => {
            let path = cli.models.join(mobilenet_v2::IMAGENET_WEIGHTS);
            if !resuming && !path.is_file() {
                bail!(
                    "{}: missing (the ImageNet start of mobilenet-v2): run models/fetch, or pass \
                     --from-scratch",
                    path.display()
                );
            }
            Some(path)
        }
        (None, _) => None,
    };
    let cfg = RunConfig {
        detector: cli
            .detector
            .unwrap_or_else(|| cli.models.join(edge::infer::model_files::FULL_RANGE_FILE)),
        cache: cli.cache.unwrap_or_else(crate::faces::default_cache),
        data: cli.data,
        out: cli.out.context("--out is required")?,
        no_face: cli.no_face,
        margin: cli.margin,
        min_score: cli.min_score,
        val_fraction: cli.val_fraction,
        threshold_rule: cli
            .max_false_alarm
            .map_or(ThresholdRule::Youden, ThresholdRule::MaxFalseAlarm),
        train: TrainConfig {
            input_size: cli.input_size,
            backbone: cli.backbone,
            width: cli.width,
            backend: cli.backend,
            device: cli.device,
            pretrained,
            epochs: cli.epochs,
            batch_size: cli.batch_size,
            lr: cli.lr,
            seed: cli.seed,
            fakes: FakeKind::chosen(cli.fakes.as_ref().map(|f| f.0.as_slice()), cli.sbi),
            high_pass: cli.high_pass,
            freeze_blocks: cli.freeze_blocks,
            balance_classes: cli.balance_classes,
            xray: cli.xray,
            sbi_strength: cli.sbi_strength,
            augment: !cli.no_augment,
        },
    };
    let log = |line: &str| eprintln!("{line}");
    let cfg = if resuming { resumed_config(cfg, matches)? } else { cfg };
    // A backend this build lacks, or a GPU that is not there, fails now rather than after the
    // face detection.
    cfg.train.backend.device(cfg.train.device)?;
    let summary = if resuming { resume(&cfg, log)? } else { run(&cfg, log)? };
    let m = &summary.metrics;
    println!(
        "best epoch {}: validation accuracy {:.3}, precision {:.3}, recall {:.3}, F1 {:.3}, AUC {:.3}, threshold {:.3}",
        summary.best_epoch, m.accuracy, m.precision, m.recall, m.f1, m.auc, m.threshold
    );
    println!("models: {} and {}", summary.onnx.display(), summary.tflite.display());
    Ok(())
}
