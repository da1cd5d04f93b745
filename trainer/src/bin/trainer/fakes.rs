//! `trainer fakes --data DIR... --out DIR [--kinds sbi,...]`: the real face crops of some folders
//! and the fakes the trainer makes from them, as a labelled folder (`trainer::fakes::folder`).

use crate::faces::{default_cache, DetectorArgs};
use anyhow::Result;
use clap::Args;
use edge::range::within;
use std::path::PathBuf;
use trainer::fakes::folder::{write_fakes, FakesConfig};
use trainer::fakes::kind::{FakeKind, FakeSettings};
use trainer::train::{MAX_INPUT, MIN_INPUT};

#[derive(Args, Debug)]
pub struct FakesArgs {
    /// A data folder as training takes it (training_real/ or real/ inside); only its real photos
    /// are used. Repeat for several.
    #[arg(long, required = true, value_name = "DIR")]
    data: Vec<PathBuf>,
    /// A new (or empty) folder: real/ gets each face crop, fake/<kind>/ its fakes.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The kinds of fake to make (sbi, upsample, swap, reconstruct, denoise) [default: those a
    /// bare training makes: sbi,upsample,swap,reconstruct].
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    kinds: Vec<FakeKind>,
    /// Fakes of each kind per real face.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = within(1usize, 100))]
    per_face: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Colour and brightness change of self-blended fakes (as in training).
    #[arg(long, default_value_t = 1.0, value_parser = within(0.0f32, 10.0))]
    sbi_strength: f32,
    /// Side of the crops written.
    #[arg(long, default_value_t = edge::infer::pipeline::DEFAULT_CROP_SIZE, value_name = "PX",
          value_parser = within(MIN_INPUT, MAX_INPUT))]
    size: u32,
    /// Cache of face crops [default: $XDG_CACHE_HOME/deepfake-edge/crops].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    #[command(flatten)]
    detector: DetectorArgs,
}

pub fn run_command(args: FakesArgs) -> Result<()> {
    let cfg = FakesConfig {
        data: args.data,
        out: args.out,
        kinds: if args.kinds.is_empty() { FakeKind::DEFAULT.to_vec() } else { args.kinds },
        settings: FakeSettings { sbi_strength: args.sbi_strength },
        per_face: args.per_face,
        seed: args.seed,
        size: args.size,
        detector: args.detector.path(),
        margin: args.detector.margin,
        min_score: args.detector.min_score,
        cache: args.cache.unwrap_or_else(default_cache),
    };
    let written = write_fakes(&cfg, |line| eprintln!("fakes: {line}"))?;
    for (path, cause) in &written.unreadable {
        eprintln!("fakes: skipped {}: {cause}", path.display());
    }
    for path in &written.no_face {
        eprintln!("fakes: no face in {}", path.display());
    }
    let kinds: Vec<String> =
        written.fakes.iter().map(|(kind, n)| format!("{n} {}", kind.name())).collect();
    println!(
        "{}: {} real faces, fakes: {}; {} photos without a face, {} unreadable",
        cfg.out.display(),
        written.real,
        kinds.join(", "),
        written.no_face.len(),
        written.unreadable.len()
    );
    Ok(())
}
