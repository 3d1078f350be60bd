//! The `stylemap` command: z, w and ws for StyleGAN's mapping network.
//!
//! `main` only parses the command line, installs the Ctrl-C handler and maps
//! failures to exit codes: 0 success, 1 runtime error, 2 usage error (clap),
//! 130 interrupted. Every error is one line on stderr starting `error: `.

#![deny(unsafe_code)]

mod cli;
mod commands;
mod error;
mod interrupt;
mod npyio;
mod spec;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    interrupt::install();
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Help and version go to stdout as clap prints them; real usage errors are
/// condensed to one `error:` line (with clap's tip, if any) and exit code 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
        _ => {
            eprintln!("{}", condense_clap_error(&e.render().to_string()));
            ExitCode::from(2)
        }
    }
}

/// Turns clap's multi-paragraph error text into one line: the first
/// paragraph, plus any `tip:` paragraphs, plus a pointer to `--help`.
fn condense_clap_error(text: &str) -> String {
    let mut paragraphs = text
        .split("\n\n")
        .map(|p| error::one_line(p.trim()))
        .filter(|p| !p.is_empty());
    let mut line = paragraphs
        .next()
        .unwrap_or_else(|| "error: invalid usage".into());
    if !line.starts_with("error:") {
        line = format!("error: {line}");
    }
    for p in paragraphs {
        if p.starts_with("tip:") {
            line.push_str(&format!(" ({p})"));
        }
    }
    line.push_str(" (see --help)");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line() {
        let text = "error: unexpected argument '--sed' found\n\n  tip: a similar argument exists: '--seeds'\n\nUsage: stylemap z --seeds <SPEC> --out <FILE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            condense_clap_error(text),
            "error: unexpected argument '--sed' found (tip: a similar argument exists: '--seeds') (see --help)"
        );
        let text = "error: the following required arguments were not provided:\n  --out <FILE>\n\nUsage: x\n";
        assert_eq!(
            condense_clap_error(text),
            "error: the following required arguments were not provided: --out <FILE> (see --help)"
        );
    }
}
