//! `edge serve [--listen ADDR:PORT] [--token-file FILE]`: the HTTP API on the board (`edge::serve`).

use crate::cli::ServeOptions;
use anyhow::Result;
use edge::serve::auth::Token;
use edge::serve::Limits;
use std::process::ExitCode;

pub fn run(options: &ServeOptions) -> Result<ExitCode> {
    let limits = Limits {
        workers: options.workers,
        queue: options.queue,
        max_upload: options.max_upload_mb << 20,
        ..Limits::default()
    };
    let token = options.token_file.as_deref().map(Token::read).transpose()?;
    let models = options.models.clone();
    edge::serve::run(
        options.listen,
        limits,
        token,
        move || models.pipeline(),
        |addr| eprintln!("edge: serving on http://{addr}"),
    )?;
    eprintln!("edge: stopped");
    Ok(ExitCode::SUCCESS)
}
