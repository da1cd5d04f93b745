//! `trainer`: train the REAL/FAKE classifier on folders of face photos and export it for `edge`
//! (the command without a subcommand); score a model on labelled folders (`trainer eval`), set its
//! threshold (`trainer calibrate`), or write the fakes it trains on (`trainer fakes`).
//! This file only wires: parse, dispatch, exit code.

mod calibrate;
mod eval;
mod faces;
mod fakes;
mod train;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "trainer",
    version,
    about = "Train the deepfake-edge REAL/FAKE face classifier and export it as ONNX and TFLite",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: train::TrainArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Score a classifier on labelled folders: ROC AUC, EER, AP, accuracy and false alarms at its
    /// threshold, per folder and pooled, with every face's p(FAKE) in a CSV.
    Eval(eval::EvalArgs),
    /// Set a classifier's threshold on real faces of your own, so that at most the given share of
    /// them is called FAKE, and write it into the model's metadata (edge uses it with no flag).
    Calibrate(calibrate::CalibrateArgs),
    /// Write the real face crops of some folders and the fakes the trainer makes from them, as a
    /// labelled folder (real/, fake/<kind>/) for `trainer eval --crops` and for a look.
    Fakes(fakes::FakesArgs),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Some(Command::Eval(args)) => eval::run_command(args),
        Some(Command::Calibrate(args)) => calibrate::run_command(args),
        Some(Command::Fakes(args)) => fakes::run_command(args),
        None => train::run_command(cli.train, &matches),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trainer: {}", edge::error::one_line(&e));
            ExitCode::from(2)
        }
    }
}
