//! `stylemap inspect FILE`: what the library can tell about a weights file.

use std::io::Write;

use crate::cli::InspectArgs;
use crate::error::{Failure, Result};

pub fn run(args: &InspectArgs) -> Result<()> {
    let inspection = stylemap::inspect(&args.file)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{inspection}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::msg(format!("cannot write to stdout: {e}")))
}
