//! The Cortex-M side shared by both firmwares: semihosting console and exit
//! status, panic and HardFault handlers that fail the run instead of hanging
//! QEMU, and the peak-stack reading.
//!
//! # Peak stack by painting
//!
//! cortex-m-rt's `paint-stack` feature (enabled by the firmware crates) fills
//! everything between `_stack_end` (the end of `.bss`) and `_stack_start`
//! (the top of RAM) with `0xCCCC_CCCC` in the reset handler, before `main`.
//! [`stack_report`] scans up from `_stack_end` for the first word the program
//! overwrote: everything above it was used at some point.

use core::fmt::Write;

use cortex_m_semihosting::{debug, hio};

/// The semihosting console (the host's stdout under QEMU). Output that
/// cannot be written is dropped: there is nowhere else to report it.
pub struct Console(Option<hio::HostStream>);

impl Console {
    /// Opens the host's stdout.
    pub fn stdout() -> Self {
        Console(hio::hstdout().ok())
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        match &mut self.0 {
            Some(h) => h.write_str(s),
            None => Ok(()),
        }
    }
}

/// Ends the QEMU run with exit status 0 (`ok`) or 1.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a semihosting host (real hardware, no debugger).
    loop {
        cortex_m::asm::bkpt();
    }
}

/// Ends a firmware run: prints `result`'s error if any, then the painted
/// peak stack, then exits with status 0 if `result` is `Ok`, else 1.
pub fn finish<T, E: core::fmt::Display>(out: &mut Console, result: Result<T, E>) -> ! {
    if let Err(e) = &result {
        let _ = writeln!(out, "error: {e}");
    }
    let stack = stack_report();
    let _ = writeln!(
        out,
        "stack: peak {} of {} bytes (painted)",
        stack.peak, stack.size
    );
    exit(result.is_ok())
}

/// The painted stack: its size and how much of it was ever used.
#[derive(Clone, Copy, Debug)]
pub struct StackReport {
    /// Bytes between `_stack_end` and `_stack_start`.
    pub size: usize,
    /// Bytes from `_stack_start` down to the deepest overwritten word.
    pub peak: usize,
}

/// The value cortex-m-rt paints the stack with.
const PAINT: u32 = 0xcccc_cccc;

#[allow(unsafe_code)]
mod symbols {
    // SAFETY: these are linker-script symbols defined by cortex-m-rt's
    // link.x; only their addresses are used, never their values.
    unsafe extern "C" {
        pub static _stack_start: u32;
        pub static _stack_end: u32;
    }

    /// `(bottom, top)` of the stack region: `_stack_end .. _stack_start`.
    pub fn bounds() -> (usize, usize) {
        (
            core::ptr::addr_of!(_stack_end) as usize,
            core::ptr::addr_of!(_stack_start) as usize,
        )
    }

    /// Reads the word at `addr`.
    ///
    /// Callers pass only word-aligned addresses inside `bounds()`.
    pub fn read_word(addr: usize) -> u32 {
        // SAFETY: `addr` is 4-aligned (both bounds are, see link.x's
        // ASSERTs) and lies in the stack region `_stack_end.._stack_start`,
        // which is RAM mapped for the whole run. Reading it races with
        // nothing (single core, no interrupts enabled) and the volatile read
        // keeps the compiler from assuming anything about its contents.
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }
}

/// Scans the painted stack (call it last, from `main`).
pub fn stack_report() -> StackReport {
    let (bottom, top) = symbols::bounds();
    let mut addr = bottom;
    while addr < top && symbols::read_word(addr) == PAINT {
        addr += 4;
    }
    StackReport {
        size: top - bottom,
        peak: top - addr,
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if let Ok(mut err) = hio::hstderr() {
        let _ = writeln!(err, "firmware panicked: {info}");
    }
    exit(false)
}

#[allow(unsafe_code)]
mod faults {
    use core::fmt::Write;

    use cortex_m_rt::{ExceptionFrame, exception};
    use cortex_m_semihosting::hio;

    // SAFETY: cortex-m-rt requires HardFault handlers to be `unsafe fn`; this
    // one only reads the stacked frame it is handed and exits.
    #[exception]
    unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
        if let Ok(mut err) = hio::hstderr() {
            let _ = writeln!(err, "HardFault at pc {:#010x}", ef.pc());
        }
        super::exit(false)
    }
}
