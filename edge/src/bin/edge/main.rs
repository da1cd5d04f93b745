//! `edge`: find the faces in images, or in the frames of a camera or a folder, and classify each
//! as REAL or FAKE. This file only wires: parse, dispatch to a module per mode, exit code.

mod bench;
mod calibrate;
mod cli;
mod config_file;
mod files;
mod live;
#[cfg(feature = "serve")]
mod serve;

use cli::Command;
use edge::error::one_line;
use std::process::ExitCode;

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    edge::infer::model::keep_freed_memory();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("edge: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    // The decoder's memory limit holds for the whole process, so it is set before any image.
    edge::input::decode::set_max_alloc(cli.model_options().max_image_mb << 20);
    // Start-up failures are errors (exit 2); `edge --file` makes single inputs that fail exit 1.
    let result = match &cli.command {
        Some(Command::Bench(options)) => bench::run(options),
        Some(Command::Calibrate(options)) => calibrate::run(options),
        #[cfg(feature = "serve")]
        Some(Command::Serve(options)) => serve::run(options),
        None if cli.list_cameras => live::list_cameras(),
        None if cli.live.dir.is_some() || cli.live.camera.is_some() => live::run(&cli),
        None => files::run(&cli),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edge: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}
