//! Reading and writing `.npy` files (through [`stylemap::npy`]), and atomic
//! output.
//!
//! Inputs must be little-endian float32 (`<f4`) or float64 (`<f8`) in C
//! order; anything else is refused with a message naming the file. Every
//! number in a header is checked against the file size before it is used
//! (see [`stylemap::npy`]), so a corrupt header can neither make us allocate
//! gigabytes nor promise more data than the file holds. Data is then
//! streamed: a file of any size is read a batch at a time.
//!
//! Outputs are written to a hidden temporary file `.NAME.tmp-PID` in the
//! destination's directory and renamed over the destination only when
//! complete; the temporary file is deleted on every error path and on
//! Ctrl-C (see [`crate::interrupt`]). A destination that exists and is not
//! a regular file (a device such as `/dev/null`, a pipe, a socket) is
//! refused: renaming over it would replace it.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

pub use stylemap::npy::{Dtype, shape_str};
use stylemap::npy::{Element, Reader, Writer};

use crate::error::{Failure, Result};
use crate::interrupt;

/// An open `.npy` input: header validated, data streamed on demand.
pub struct NpyInput {
    name: String,
    reader: Reader<BufReader<File>>,
}

impl NpyInput {
    /// Opens `path`, validates the header and returns the stream of values.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let err = |what: String| Failure::msg(format!("{name}: {what}"));
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot open: {e}")))?;
        if meta.is_dir() {
            return Err(err("is a directory, not a .npy file".into()));
        }
        if !meta.is_file() {
            // Opening a FIFO would block until a writer appears.
            return Err(err(
                "not a regular file (a pipe, device or socket); save the array to a file".into(),
            ));
        }
        let file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let reader = Reader::new(BufReader::with_capacity(1 << 16, file), meta.len(), path)?;
        Ok(NpyInput { name, reader })
    }

    /// The file name as given on the command line.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The array's shape.
    pub fn shape(&self) -> &[u64] {
        self.reader.shape()
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.reader.dtype()
    }

    /// Reads the next `out.len()` values (float64 is rounded to float32),
    /// rejecting NaN and infinities. `row_len` only serves error messages
    /// ("row 3 holds NaN").
    pub fn read_f32(&mut self, out: &mut [f32], row_len: usize) -> Result<()> {
        Ok(self.reader.read_f32(out, row_len)?)
    }
}

/// An output file written atomically: data goes to `.NAME.tmp-PID` beside
/// the destination, which is renamed over the destination by
/// [`OutputFile::commit`]. Dropping it uncommitted deletes the temporary file.
pub struct OutputFile {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl OutputFile {
    /// Creates the temporary file for `path`. Fails early when the directory
    /// is missing or not writable, or when `path` is a directory.
    pub fn create(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let err = |what: String| Failure::msg(format!("{name}: {what}"));
        let file_name = path
            .file_name()
            .ok_or_else(|| err("not a file name".into()))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(err(format!(
                    "cannot write: '{}' is not a directory",
                    dir.display()
                )));
            }
            Err(_) => {
                return Err(err(format!(
                    "cannot write: directory '{}' does not exist",
                    dir.display()
                )));
            }
        }
        if let Ok(m) = std::fs::metadata(path) {
            if m.is_dir() {
                return Err(err("cannot write: is a directory".into()));
            }
            if !m.is_file() {
                return Err(err(
                    "cannot write: not a regular file (a device, pipe or socket); \
                     the output is written to a temporary file and renamed over the \
                     destination, which would replace it"
                        .into(),
                ));
            }
        }
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        // A leftover from an earlier process with our pid is stale.
        let _ = std::fs::remove_file(&tmp);
        interrupt::register_temp(tmp.clone());
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| {
                interrupt::unregister_temp(&tmp);
                err(format!("cannot write in '{}': {e}", dir.display()))
            })?;
        Ok(OutputFile {
            path: path.to_path_buf(),
            tmp,
            writer: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    fn io_err(&self, e: &std::io::Error) -> Failure {
        Failure::msg(format!("{}: cannot write: {e}", self.path.display()))
    }

    /// Starts an `.npy` array of `shape` (C order, little-endian `dtype`,
    /// which must be `T`'s).
    pub fn npy<T: Element>(&mut self, dtype: Dtype, shape: &[u64]) -> Result<NpyOut<'_, T>> {
        debug_assert_eq!(dtype, T::DTYPE);
        let path = self.path.display().to_string();
        let Some(w) = self.writer.as_mut() else {
            unreachable!("writer is present until commit")
        };
        let writer = Writer::new(w, shape).map_err(|e| Failure::msg(format!("{path}: {e}")))?;
        Ok(NpyOut { writer, path })
    }

    /// Appends raw bytes (a pack).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let Some(w) = self.writer.as_mut() else {
            unreachable!("writer is present until commit")
        };
        w.write_all(bytes)
            .map_err(|e| Failure::msg(format!("{}: cannot write: {e}", self.path.display())))
    }

    /// Flushes, syncs and renames the temporary file over the destination.
    pub fn commit(mut self) -> Result<()> {
        let Some(w) = self.writer.take() else {
            unreachable!("writer is present until commit")
        };
        let file = w.into_inner().map_err(|e| self.io_err(e.error()))?;
        file.sync_all().map_err(|e| self.io_err(&e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| self.io_err(&e))?;
        interrupt::unregister_temp(&self.tmp);
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            // Not committed: discard.
            drop(w);
            let _ = std::fs::remove_file(&self.tmp);
            interrupt::unregister_temp(&self.tmp);
        }
    }
}

/// An `.npy` array being written into an [`OutputFile`].
pub struct NpyOut<'a, T: Element> {
    writer: Writer<&'a mut BufWriter<File>, T>,
    path: String,
}

impl<T: Element> NpyOut<'_, T> {
    /// Appends values in C order.
    pub fn write(&mut self, values: &[T]) -> Result<()> {
        self.writer
            .write(values)
            .map_err(|e| Failure::msg(format!("{}: {e}", self.path)))
    }

    /// Checks the element count against the shape and flushes.
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        self.writer
            .finish()
            .map(|_| ())
            .map_err(|e| Failure::msg(format!("{path}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn uncommitted_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ws.npy");
        let mut out = OutputFile::create(&path).unwrap();
        assert_eq!(
            names(dir.path()),
            [format!(".ws.npy.tmp-{}", std::process::id())]
        );
        let mut npy = out.npy::<f32>(Dtype::F32, &[2]).unwrap();
        npy.write(&[1.0]).unwrap();
        drop(npy);
        drop(out);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn round_trip_f64_to_f32() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.npy");
        let mut out = OutputFile::create(&path).unwrap();
        let mut npy = out.npy::<f64>(Dtype::F64, &[2, 2]).unwrap();
        npy.write(&[0.1, -2.0, 3.5, 1e-3]).unwrap();
        npy.finish().unwrap();
        out.commit().unwrap();
        assert_eq!(names(dir.path()), ["z.npy"]);

        let mut input = NpyInput::open(&path).unwrap();
        assert_eq!(input.shape(), [2, 2]);
        assert_eq!(input.dtype(), Dtype::F64);
        let mut got = [0.0f32; 4];
        input.read_f32(&mut got[..2], 2).unwrap();
        input.read_f32(&mut got[2..], 2).unwrap();
        assert_eq!(got, [0.1f64 as f32, -2.0, 3.5, 1e-3f64 as f32]);
        assert!(input.read_f32(&mut got[..1], 2).is_err(), "past the end");
    }

    #[test]
    fn short_element_count_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.npy");
        let mut out = OutputFile::create(&path).unwrap();
        let mut npy = out.npy::<f32>(Dtype::F32, &[3]).unwrap();
        npy.write(&[1.0, 2.0]).unwrap();
        assert!(npy.finish().is_err());
        drop(out);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn shapes_print_like_numpy() {
        assert_eq!(shape_str(&[3, 511]), "[3, 511]");
        assert_eq!(shape_str(&[16]), "[16]");
        assert_eq!(shape_str(&[]), "[]");
    }
}
