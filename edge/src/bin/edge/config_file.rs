//! `--config FILE`: settings from TOML files whose keys are the long names of the command-line
//! flags (`detector = "short"`, `detect-every = 3`, `json = true`). Board profiles in `boards/` are
//! such files. The files' settings are spliced in front of the command line's own arguments, so
//! the same parser checks them and a flag given on the command line overrides a file.

use anyhow::{bail, Context, Result};
use clap::Command;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `args` (program name first) with the settings of every `--config FILE` in it expanded in
/// place of the flag, ahead of the other arguments; later files override earlier ones. Settings
/// apply to the subcommand named on the command line, if any, else to `command` itself.
/// Also returns which file each spliced setting (by flag name) came from, so a bad value can be
/// blamed on its file.
pub fn expand(
    args: Vec<OsString>,
    command: &Command,
) -> Result<(Vec<OsString>, HashMap<String, PathBuf>)> {
    let mut files = vec![];
    let mut rest = vec![];
    let mut it = args.into_iter();
    let program = it.next().unwrap_or_else(|| OsString::from("edge"));
    while let Some(arg) = it.next() {
        if arg == "--" {
            rest.push(arg);
            rest.extend(it.by_ref());
        } else if arg == "--config" {
            match it.next() {
                Some(file) => files.push(PathBuf::from(file)),
                None => bail!("--config needs a file"),
            }
        } else if let Some(file) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            files.push(PathBuf::from(file));
        } else {
            rest.push(arg);
        }
    }
    let sub = rest
        .first()
        .and_then(|a| a.to_str())
        .and_then(|name| command.find_subcommand(name))
        .cloned();
    let (target, at) = match &sub {
        Some(sub) => (sub, 1),
        None => (command, 0),
    };
    // A setting comes from one place only: the command line wins over every file, a later file
    // over an earlier one, for lists (`file = [...]`) as for single values.
    let mut taken: HashSet<String> = rest
        .iter()
        .skip(at)
        .filter_map(|a| a.to_str()?.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect();
    let (mut settings, mut origins) = (vec![], HashMap::new());
    for file in files.iter().rev() {
        for (flag, args) in read(file, target)? {
            if taken.insert(flag.clone()) {
                settings.push(args);
                origins.insert(flag, file.clone());
            }
        }
    }
    let mut out = vec![program];
    out.extend(rest.iter().take(at).cloned());
    out.extend(settings.into_iter().rev().flatten());
    out.extend(rest.into_iter().skip(at));
    Ok((out, origins))
}

/// One file's settings as flags, checked against `command`'s arguments: (flag name, arguments).
fn read(file: &Path, command: &Command) -> Result<Vec<(String, Vec<OsString>)>> {
    let name = file.display();
    let text = std::fs::read_to_string(file).with_context(|| format!("config {name}"))?;
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| anyhow::anyhow!("config {name}: {e}"))?;
    let mut out = vec![];
    for (key, value) in table {
        let flag = key.replace('_', "-");
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()) && flag != "config")
        else {
            bail!("config {name}: unknown setting `{key}`");
        };
        let takes_value = arg.get_action().takes_values();
        let values = match value {
            toml::Value::Array(items) => items,
            single => vec![single],
        };
        let mut args = vec![];
        for value in values {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) if !takes_value => {
                    if b {
                        args.push(OsString::from(format!("--{flag}")));
                    }
                    continue;
                }
                other => bail!("config {name}: `{key}` cannot be {}", other.type_str()),
            };
            if !takes_value {
                bail!("config {name}: `{key}` is a switch: write `{key} = true`");
            }
            args.push(OsString::from(format!("--{flag}")));
            args.push(OsString::from(text));
        }
        out.push((flag, args));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn command() -> Command {
        Command::new("edge")
            .args_override_self(true)
            .arg(Arg::new("detector").long("detector").default_value("full"))
            .arg(
                Arg::new("detect-every")
                    .long("detect-every")
                    .value_parser(clap::value_parser!(u64)),
            )
            .arg(Arg::new("json").long("json").action(ArgAction::SetTrue))
            .arg(Arg::new("file").long("file").num_args(1..).action(ArgAction::Append))
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write config");
        path
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn files_set_defaults_and_flags_override_them() {
        let dir = std::env::temp_dir().join(format!("edge-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let board =
            write(&dir, "board.toml", "detector = \"short\"\ndetect_every = 3\njson = true\n");
        let site = write(&dir, "site.toml", "detect-every = 2\nfile = [\"a.jpg\", \"b.jpg\"]\n");
        let board = board.to_str().expect("utf-8 path");
        let site = site.to_str().expect("utf-8 path");

        let (expanded, origins) =
            expand(args(&["edge", "--config", board]), &command()).expect("expand");
        assert_eq!(origins.get("detect-every").and_then(|p| p.to_str()), Some(board));
        let m = command().try_get_matches_from(expanded).expect("parse");
        assert_eq!(m.get_one::<String>("detector").map(String::as_str), Some("short"));
        assert_eq!(m.get_one::<u64>("detect-every"), Some(&3));
        assert!(m.get_flag("json"));

        // Later files override earlier ones; the command line overrides both.
        let cli = ["edge", "--detector", "full", &format!("--config={site}"), "--config", board];
        let m = command().try_get_matches_from(expand(args(&cli), &command()).expect("expand").0);
        let m = m.expect("parse");
        assert_eq!(m.get_one::<String>("detector").map(String::as_str), Some("full"));
        assert_eq!(m.get_one::<u64>("detect-every"), Some(&3));
        let files: Vec<&String> = m.get_many::<String>("file").expect("files").collect();
        assert_eq!(files, ["a.jpg", "b.jpg"]);

        // A list too: `--file` on the command line replaces the file's `file = [...]`, and a
        // later file's setting replaces an earlier one's.
        let cli = ["edge", "--config", site, "--file", "c.jpg"];
        let m = command().try_get_matches_from(expand(args(&cli), &command()).expect("expand").0);
        let m = m.expect("parse");
        let files: Vec<&String> = m.get_many::<String>("file").expect("files").collect();
        assert_eq!(files, ["c.jpg"]);
        let other = write(&dir, "other.toml", "file = [\"d.jpg\"]\n");
        let other = other.to_str().expect("utf-8 path");
        let cli = ["edge", "--config", site, "--config", other];
        let m = command().try_get_matches_from(expand(args(&cli), &command()).expect("expand").0);
        let m = m.expect("parse");
        let files: Vec<&String> = m.get_many::<String>("file").expect("files").collect();
        assert_eq!(files, ["d.jpg"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_files_name_the_file_and_the_setting() {
        let dir = std::env::temp_dir().join(format!("edge-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cases = [
            ("unknown.toml", "detectr = \"short\"\n", "unknown setting `detectr`"),
            ("syntax.toml", "detector = short\n", "syntax.toml"),
            ("switch.toml", "json = \"yes\"\n", "`json` is a switch"),
            ("table.toml", "[detector]\nx = 1\n", "`detector` cannot be table"),
        ];
        for (name, text, expected) in cases {
            let path = write(&dir, name, text);
            let e = expand(args(&["edge", "--config", &path.to_string_lossy()]), &command())
                .expect_err(name);
            let message = format!("{e:#}");
            assert!(message.contains(expected) && message.contains(name), "{message}");
        }
        let missing = dir.join("missing.toml");
        let e = expand(args(&["edge", "--config", &missing.to_string_lossy()]), &command())
            .expect_err("missing file");
        assert!(format!("{e:#}").contains("missing.toml"), "{e:#}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
