//! Large, long-lived buffers of plain data (network weights, packs) placed
//! on transparent huge pages where the OS allows it.
//!
//! Why: the weights of an 8 x 512 network are 8 MiB streamed once per
//! batch. On 4 KiB pages that is 2048 pages, more than the second-level TLB
//! keeps next to everything else, so every page costs a page walk. On the
//! project's AVX-512 machine eight distinct 512 x 512 layers chained at
//! B = 64 ran 9% faster from 2 MiB pages (`examples/gemm_probe.rs`, "8
//! distinct layers", interleaved runs).
//!
//! How: on Linux a buffer of at least [`HUGE_MIN_BYTES`] is an anonymous
//! mapping (zero-filled, via `memmap2`) with `madvise(MADV_HUGEPAGE)` on its
//! 2 MiB-aligned part, and the data starts on a 2 MiB boundary. The advice
//! is a hint: a kernel without THP, or a failed mapping, leaves an ordinary
//! buffer with identical contents. Elsewhere (other systems, miri, small
//! buffers) it is a `Vec`. No unsafe: the mapping's bytes are viewed as `T`
//! through `bytemuck`, whose alignment check the 2 MiB boundary satisfies.
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;

/// Size of a transparent huge page on x86-64 and aarch64 (4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Buffers at least this large get a huge-page mapping (smaller ones gain
/// nothing: they span few pages).
pub const HUGE_MIN_BYTES: usize = 1 << 20;

/// Every buffer's data starts on this boundary at least (a cache line:
/// what [`stylemap_core::pack::Pack::parse`] and SIMD loads want).
pub const MIN_ALIGN: usize = 64;

/// An owned `[T]` starting on a [`MIN_ALIGN`] boundary, huge-page backed
/// when large (see the [module docs](self)).
pub struct BigBuf<T: Pod> {
    store: Store,
    len: usize,
    _t: PhantomData<T>,
}

enum Store {
    /// `off`: where the aligned data starts in `v` (fixed: `v` never grows).
    Heap { v: Vec<u8>, off: usize },
    #[cfg(all(target_os = "linux", not(miri)))]
    Mapped { map: memmap2::MmapMut, off: usize },
}

impl<T: Pod> BigBuf<T> {
    /// `len` zero values. `None` if the size overflows or memory is short.
    pub fn try_zeroed(len: usize) -> Option<BigBuf<T>> {
        let bytes = len.checked_mul(size_of::<T>())?;
        #[cfg(all(target_os = "linux", not(miri)))]
        if bytes >= HUGE_MIN_BYTES
            && let Some(store) = mapped(bytes)
        {
            return Some(BigBuf {
                store,
                len,
                _t: PhantomData,
            });
        }
        // Over-allocate so the data can start on a MIN_ALIGN boundary (a
        // Vec<u8> is only byte-aligned; no Pod type needs more than 64).
        let cap = bytes.checked_add(MIN_ALIGN)?;
        let mut v = Vec::new();
        v.try_reserve_exact(cap).ok()?;
        v.resize(cap, 0);
        let off = v.as_ptr().align_offset(MIN_ALIGN).min(MIN_ALIGN);
        Some(BigBuf {
            store: Store::Heap { v, off },
            len,
            _t: PhantomData,
        })
    }

    /// `len` zero values; panics only where `Vec` would (capacity overflow,
    /// out of memory).
    pub fn zeroed(len: usize) -> BigBuf<T> {
        BigBuf::try_zeroed(len)
            .unwrap_or_else(|| panic!("cannot allocate {len} values of {} bytes", size_of::<T>()))
    }

    /// A copy of `data`.
    pub fn copy_from(data: &[T]) -> BigBuf<T> {
        let mut b = BigBuf::zeroed(data.len());
        b.copy_from_slice(data);
        b
    }

    /// Whether the data lies in a mapping advised for huge pages (whether
    /// the OS granted them is its business: see `AnonHugePages` in
    /// `/proc/meminfo`).
    pub fn is_mapped(&self) -> bool {
        !matches!(self.store, Store::Heap { .. })
    }

    fn bytes(&self) -> &[u8] {
        let n = self.len * size_of::<T>();
        match &self.store {
            Store::Heap { v, off } => &v[*off..*off + n],
            #[cfg(all(target_os = "linux", not(miri)))]
            Store::Mapped { map, off } => &map[*off..*off + n],
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.len * size_of::<T>();
        match &mut self.store {
            Store::Heap { v, off } => &mut v[*off..*off + n],
            #[cfg(all(target_os = "linux", not(miri)))]
            Store::Mapped { map, off } => &mut map[*off..*off + n],
        }
    }
}

/// An anonymous mapping of `bytes` plus one huge page of slack, advised
/// for huge pages from its first 2 MiB boundary, where the data starts.
#[cfg(all(target_os = "linux", not(miri)))]
fn mapped(bytes: usize) -> Option<Store> {
    let total = bytes.checked_add(HUGE_PAGE)?;
    let map = memmap2::MmapOptions::new().len(total).map_anon().ok()?;
    let off = map.as_ptr().align_offset(HUGE_PAGE);
    if off >= HUGE_PAGE {
        return None;
    }
    let span = (total - off) / HUGE_PAGE * HUGE_PAGE;
    // A hint only: without THP the mapping works the same on small pages.
    let _ = map.advise_range(memmap2::Advice::HugePage, off, span);
    Some(Store::Mapped { map, off })
}

impl<T: Pod> Deref for BigBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        bytemuck::cast_slice(self.bytes())
    }
}

impl<T: Pod> DerefMut for BigBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        bytemuck::cast_slice_mut(self.bytes_mut())
    }
}

impl<T: Pod> AsRef<[T]> for BigBuf<T> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T: Pod> AsMut<[T]> for BigBuf<T> {
    fn as_mut(&mut self) -> &mut [T] {
        self
    }
}

impl<T: Pod> Clone for BigBuf<T> {
    fn clone(&self) -> BigBuf<T> {
        BigBuf::copy_from(self)
    }
}

impl<T: Pod> From<&[T]> for BigBuf<T> {
    fn from(data: &[T]) -> BigBuf<T> {
        BigBuf::copy_from(data)
    }
}

impl<T: Pod> fmt::Debug for BigBuf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BigBuf({} x {} bytes{})",
            self.len,
            size_of::<T>(),
            if self.is_mapped() {
                ", huge-page mapping"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_buffers_hold_what_was_written() {
        // Miri: the heap path only (no mappings there), at sizes it runs fast.
        let lens: &[usize] = if cfg!(miri) {
            &[0, 1, 7, 100]
        } else {
            &[0, 1, 7, 1000, HUGE_MIN_BYTES / 4 + 3, 3 * HUGE_PAGE / 4]
        };
        for &len in lens {
            let src: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b = BigBuf::copy_from(&src);
            assert_eq!(&*b, &src[..], "len {len}");
            assert_eq!(b.as_ptr().align_offset(MIN_ALIGN), 0, "len {len}");
            let c = b.clone();
            assert_eq!(&*c, &src[..]);
            assert_ne!(c.as_ptr(), b.as_ptr(), "a clone is a copy");
        }
    }

    #[test]
    fn zeroed_is_zero_and_writable() {
        let lens: &[usize] = if cfg!(miri) {
            &[5, 300]
        } else {
            &[5, HUGE_MIN_BYTES + 1]
        };
        for &len in lens {
            let mut b = BigBuf::<u8>::zeroed(len);
            assert!(b.iter().all(|&v| v == 0));
            b[len - 1] = 9;
            assert_eq!(b[len - 1], 9);
            assert_eq!(b.len(), len);
        }
    }

    #[test]
    #[cfg(all(target_os = "linux", not(miri)))]
    fn large_buffers_start_on_a_huge_page_boundary() {
        let b = BigBuf::<f32>::zeroed(HUGE_MIN_BYTES);
        assert!(b.is_mapped());
        assert_eq!(b.as_ptr().align_offset(HUGE_PAGE), 0);
        let small = BigBuf::<f32>::zeroed(16);
        assert!(!small.is_mapped());
    }

    #[test]
    fn impossible_sizes_are_none() {
        assert!(BigBuf::<f32>::try_zeroed(usize::MAX).is_none());
        assert!(BigBuf::<u64>::try_zeroed(usize::MAX / 4).is_none());
    }
}
