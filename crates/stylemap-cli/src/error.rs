//! The command's failure type: a one-line message, or an interruption.

use std::fmt;

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// A runtime error (exit code 1), with a one-line message.
    Error(String),
    /// SIGINT / Ctrl-C arrived (exit code 130).
    Interrupted,
}

impl Failure {
    /// A runtime error with `msg`.
    pub fn msg(msg: impl Into<String>) -> Self {
        Failure::Error(msg.into())
    }

    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Error(_) => 1,
            Failure::Interrupted => 130,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never let a stray newline from a lower layer break the
            // one-line contract.
            Failure::Error(m) => f.write_str(&one_line(m)),
            Failure::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl From<stylemap::Error> for Failure {
    fn from(e: stylemap::Error) -> Self {
        Failure::Error(e.to_string())
    }
}

/// Collapses every run of whitespace containing a newline into a single space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Shorthand for results of commands.
pub type Result<T, E = Failure> = std::result::Result<T, E>;
