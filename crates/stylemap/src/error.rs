//! The crate's one error type.
//!
//! Every [`Error`] displays as a single line that names what went wrong and,
//! for file problems, the file: `weights.safetensors: tensor
//! \`mapping.fc3.bias\` is missing`. Nothing in this crate panics on bad input;
//! every problem with a file or an argument comes back as an `Error`.
//! Messages quote text from files (tensor names, paths), so `Display`
//! escapes control characters: a newline in a tensor name shows as `\n`.

use std::fmt::{self, Write as _};
use std::path::PathBuf;

/// Everything that can go wrong in this crate.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading a file failed at the operating-system level.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file is not a usable checkpoint: malformed safetensors, a missing or
    /// misshapen tensor, an unsupported dtype, NaN/Inf, dims that do not chain,
    /// bad metadata.
    Format {
        /// The file.
        path: PathBuf,
        /// The problem, one line, naming the tensor or metadata key.
        msg: String,
    },
    /// An error from the core crate (lengths, non-finite inputs, bad specs).
    Core(stylemap_core::Error),
    /// A bad argument: wrong buffer length, out-of-range layer, non-finite
    /// parameter, missing hyper-parameter.
    Invalid(String),
}

impl Error {
    /// A [`Error::Format`] for `path`.
    pub(crate) fn format(path: &std::path::Path, msg: impl Into<String>) -> Error {
        Error::Format {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    /// A [`Error::Invalid`].
    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = OneLine(f);
        match self {
            Error::Io { path, source } => write!(out, "{}: {source}", path.display()),
            Error::Format { path, msg } => write!(out, "{}: {msg}", path.display()),
            Error::Core(e) => write!(out, "{e}"),
            Error::Invalid(msg) => out.write_str(msg),
        }
    }
}

/// A writer that passes text through with control characters escaped
/// (`char::escape_default`: `\n`, `\t`, `\u{1b}`), so a message stays one
/// line whatever the file it quotes holds.
struct OneLine<'a, 'f>(&'a mut fmt::Formatter<'f>);

impl fmt::Write for OneLine<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(char::is_control) {
            let (plain, tail) = rest.split_at(i);
            self.0.write_str(plain)?;
            let c = tail.chars().next().expect("find returned a char boundary");
            write!(self.0, "{}", c.escape_default())?;
            rest = &tail[c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Core(e) => Some(e),
            _ => None,
        }
    }
}

impl From<stylemap_core::Error> for Error {
    fn from(e: stylemap_core::Error) -> Self {
        Error::Core(e)
    }
}

/// Checks `buf` is finite; the error names `what` and the first bad element.
pub(crate) fn check_finite(what: &str, buf: &[f32], row_len: usize) -> Result<(), Error> {
    match buf.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => {
            let kind = if buf[i].is_nan() {
                "NaN"
            } else {
                "an infinity"
            };
            Err(match i.checked_div(row_len) {
                Some(sample) => Error::invalid(format!(
                    "{what} holds {kind} at sample {sample}, element {}",
                    i % row_len
                )),
                None => Error::invalid(format!("{what} holds {kind} at element {i}")),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn display_escapes_control_characters_from_files() {
        let cases = [
            (
                Error::format(
                    Path::new("a\nb.safetensors"),
                    "tensor `fc0.bi\nas\t\u{1b}` bad",
                ),
                "a\\nb.safetensors: tensor `fc0.bi\\nas\\t\\u{1b}` bad",
            ),
            (Error::invalid("x\r\ny"), "x\\r\\ny"),
            (
                Error::Io {
                    path: "dir\n/f".into(),
                    source: std::io::Error::other("gone\n"),
                },
                "dir\\n/f: gone\\n",
            ),
            // Plain text, quotes and non-ASCII pass through unchanged.
            (Error::invalid("`w_avg` \"é\" ok"), "`w_avg` \"é\" ok"),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
