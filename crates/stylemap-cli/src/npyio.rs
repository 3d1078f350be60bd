//! Reading and writing `.npy` files (through the `npyz` crate), and atomic
//! output.
//!
//! Inputs must be little-endian float32 (`<f4`) or float64 (`<f8`) in C
//! order; anything else is refused with a message naming the file. Before
//! `npyz` sees a file, its preamble is checked against the file size, so a
//! corrupt header can neither make us allocate gigabytes nor promise more
//! data than the file holds. Data is then streamed: a file of any size is
//! read a batch at a time.
//!
//! Outputs are written to a hidden temporary file `.NAME.tmp-PID` in the
//! destination's directory and renamed over the destination only when
//! complete; the temporary file is deleted on every error path and on
//! Ctrl-C (see [`crate::interrupt`]).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, NpyHeader, NpyReader, NpyWriter, Order, TypeStr, WriterBuilder};

use crate::error::{Failure, Result};
use crate::interrupt;

/// Largest header (the Python dict after the preamble) we accept. numpy
/// itself refuses headers over 10 000 bytes by default.
const MAX_HEADER_LEN: u64 = 64 * 1024;

/// The float types we read and write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// Little-endian float32, `<f4`.
    F32,
    /// Little-endian float64, `<f8`.
    F64,
}

impl Dtype {
    fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
        }
    }

    fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }

    fn type_str(self) -> TypeStr {
        // Both strings are valid numpy type strings.
        self.descr()
            .parse()
            .unwrap_or_else(|_| unreachable!("valid type string"))
    }
}

/// Formats a shape like numpy's `[3, 512]`.
pub fn shape_str(shape: &[u64]) -> String {
    let items: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(", "))
}

enum Values {
    F32(NpyReader<f32, BufReader<File>>),
    F64(NpyReader<f64, BufReader<File>>),
}

/// An open `.npy` input: header validated, data streamed on demand.
pub struct NpyInput {
    name: String,
    shape: Vec<u64>,
    dtype: Dtype,
    values: Values,
    consumed: u64,
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
        let file_len = meta.len();
        if file_len == 0 {
            return Err(err("file is empty (0 bytes), not a .npy file".into()));
        }
        let mut file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let (header, data_start) = read_header(&mut file, file_len).map_err(err)?;

        let dtype = match header.dtype() {
            DType::Plain(ts) if ts.to_string() == "<f4" => Dtype::F32,
            DType::Plain(ts) if ts.to_string() == "<f8" => Dtype::F64,
            other => {
                return Err(err(format!(
                    "unsupported dtype '{}' (expected little-endian float32 '<f4' or float64 '<f8')",
                    other.descr().trim_matches('\'')
                )));
            }
        };
        let shape = header.shape().to_vec();
        if header.order() == Order::Fortran {
            return Err(err(format!(
                "array of shape {} is in Fortran order; save it in C order \
                 (np.ascontiguousarray) instead",
                shape_str(&shape)
            )));
        }
        let count = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| err(format!("shape {} is too large", shape_str(&shape))))?;
        let need = count
            .checked_mul(dtype.size())
            .ok_or_else(|| err(format!("shape {} is too large", shape_str(&shape))))?;
        let have = file_len - data_start;
        if have < need {
            return Err(err(format!(
                "truncated: shape {} needs {need} bytes of data but the file holds {have}",
                shape_str(&shape)
            )));
        }

        file.seek(SeekFrom::Start(data_start))
            .map_err(|e| err(format!("cannot read: {e}")))?;
        let npy = NpyFile::with_header(header, BufReader::with_capacity(1 << 16, file));
        let bad_dtype = |e: npyz::DTypeError| err(format!("cannot read values: {e}"));
        let values = match dtype {
            Dtype::F32 => Values::F32(npy.data::<f32>().map_err(bad_dtype)?),
            Dtype::F64 => Values::F64(npy.data::<f64>().map_err(bad_dtype)?),
        };
        Ok(NpyInput {
            name,
            shape,
            dtype,
            values,
            consumed: 0,
        })
    }

    /// The file name as given on the command line.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The array's shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Reads the next `out.len()` values (float64 is rounded to float32),
    /// rejecting NaN and infinities. `row_len` only serves error messages
    /// ("row 3 holds NaN").
    pub fn read_f32(&mut self, out: &mut [f32], row_len: usize) -> Result<()> {
        let start = self.consumed;
        let name = &self.name;
        let io_err = |e: io::Error| Failure::msg(format!("{name}: cannot read values: {e}"));
        let mut next = || -> Result<f32> {
            let v = match &mut self.values {
                Values::F32(r) => r.next().transpose().map_err(io_err)?,
                #[allow(clippy::cast_possible_truncation)]
                Values::F64(r) => r.next().transpose().map_err(io_err)?.map(|v| v as f32),
            };
            v.ok_or_else(|| Failure::msg(format!("{name}: unexpected end of data")))
        };
        for (i, slot) in out.iter_mut().enumerate() {
            let v = next()?;
            if !v.is_finite() {
                let flat = start + i as u64;
                let row = flat / row_len.max(1) as u64;
                let what = if v.is_nan() { "NaN" } else { "an infinity" };
                return Err(Failure::msg(format!(
                    "{name}: row {row} holds {what} (values must be finite)"
                )));
            }
            *slot = v;
        }
        self.consumed += out.len() as u64;
        Ok(())
    }
}

/// Reads and checks the preamble, then lets `npyz` parse the header dict.
/// Returns the header and the offset of the data.
fn read_header(file: &mut File, file_len: u64) -> std::result::Result<(NpyHeader, u64), String> {
    let mut magic = [0u8; 8];
    if file_len < 10 {
        return Err(format!("not a .npy file (only {file_len} bytes)"));
    }
    file.read_exact(&mut magic)
        .map_err(|e| format!("cannot read: {e}"))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic bytes)".into());
    }
    let (len_bytes, header_len) = match (magic[6], magic[7]) {
        (1, 0) => {
            let mut b = [0u8; 2];
            file.read_exact(&mut b)
                .map_err(|e| format!("cannot read header: {e}"))?;
            (2u64, u64::from(u16::from_le_bytes(b)))
        }
        (2 | 3, 0) => {
            let mut b = [0u8; 4];
            file.read_exact(&mut b)
                .map_err(|_| "truncated .npy header".to_string())?;
            (4u64, u64::from(u32::from_le_bytes(b)))
        }
        (major, minor) => return Err(format!("unsupported .npy format version {major}.{minor}")),
    };
    let data_start = 8 + len_bytes + header_len;
    if data_start > file_len {
        return Err(format!(
            "truncated .npy header ({header_len} bytes announced, {} present)",
            file_len - 8 - len_bytes
        ));
    }
    if header_len > MAX_HEADER_LEN {
        return Err(format!(
            ".npy header of {header_len} bytes is larger than the {MAX_HEADER_LEN} allowed"
        ));
    }
    // Hand npyz the whole preamble + header from memory (bounded above).
    let mut buf = vec![0u8; usize::try_from(data_start).map_err(|_| "header too large")?];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(|e| format!("cannot read header: {e}"))?;
    let header = parse_header_quietly(&buf).map_err(|e| format!("malformed .npy header: {e}"))?;
    Ok((header, data_start))
}

/// `npyz` computes the element count with a plain product, which panics on
/// overflow in debug builds; a hostile shape must give an error instead.
fn parse_header_quietly(bytes: &[u8]) -> io::Result<NpyHeader> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| NpyHeader::from_reader(bytes));
    std::panic::set_hook(previous);
    result.unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "shape is too large",
        ))
    })
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
        if !dir.is_dir() {
            return Err(err(format!(
                "cannot write: directory '{}' does not exist",
                dir.display()
            )));
        }
        if path.is_dir() {
            return Err(err("cannot write: is a directory".into()));
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

    fn io_err(&self, e: &io::Error) -> Failure {
        Failure::msg(format!("{}: cannot write: {e}", self.path.display()))
    }

    /// Starts an `.npy` array of `shape` (C order, little-endian `dtype`).
    pub fn npy<T: npyz::Serialize + ?Sized>(
        &mut self,
        dtype: Dtype,
        shape: &[u64],
    ) -> Result<NpyOut<'_, T>> {
        let path = self.path.display().to_string();
        // npyz multiplies the shape out; an overflow must be an error.
        shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| {
                Failure::msg(format!(
                    "{path}: an output of shape {} is too large",
                    shape_str(shape)
                ))
            })?;
        let Some(w) = self.writer.as_mut() else {
            unreachable!("writer is present until commit")
        };
        let writer = npyz::WriteOptions::new()
            .dtype(DType::Plain(dtype.type_str()))
            .shape(shape)
            .writer(w)
            .begin_nd()
            .map_err(|e| Failure::msg(format!("{path}: cannot write: {e}")))?;
        Ok(NpyOut { writer, path })
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
pub struct NpyOut<'a, T: npyz::Serialize + ?Sized> {
    writer: NpyWriter<T, &'a mut BufWriter<File>>,
    path: String,
}

impl<T: npyz::Serialize + Copy> NpyOut<'_, T> {
    /// Appends values in C order.
    pub fn write(&mut self, values: &[T]) -> Result<()> {
        for v in values {
            self.writer
                .push(v)
                .map_err(|e| Failure::msg(format!("{}: cannot write: {e}", self.path)))?;
        }
        Ok(())
    }

    /// Checks the element count against the shape and flushes.
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        self.writer
            .finish()
            .map_err(|e| Failure::msg(format!("{path}: cannot write: {e}")))
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
