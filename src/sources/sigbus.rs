//! Survives a memory-mapped input file being truncated under weir. `finish` maps regular files
//! (no copy, no syscall per chunk), and touching a mapped page past the new end of a truncated
//! file raises SIGBUS, which killed weir without a word. A SIGBUS at an address inside a
//! registered mapping puts a page of zeros there instead and lets the read go on; the source
//! checks the file's size as it emits lines (`FileSource::shrunk_to`), so nothing read from
//! such a page becomes a record, and says how many bytes were lost. A SIGBUS anywhere else
//! keeps its default action.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

const SLOTS: usize = 64;
static START: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static END: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();

/// A registered mapping; dropping it takes the registration back.
pub struct Guard(usize);

impl Drop for Guard {
    fn drop(&mut self) {
        END[self.0].store(0, Ordering::SeqCst);
        START[self.0].store(0, Ordering::SeqCst);
    }
}

/// Registers `[ptr, ptr + len)` (a read-only file mapping); `None` when every slot is taken
/// (then a truncation there is fatal, as without this module).
pub fn protect(ptr: *const u8, len: usize) -> Option<Guard> {
    INSTALL.call_once(install);
    let start = ptr as usize;
    for i in 0..SLOTS {
        if START[i]
            .compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            END[i].store(start + len, Ordering::SeqCst);
            return Some(Guard(i));
        }
    }
    None
}

fn install() {
    // SAFETY: sysconf and sigaction with a handler that only reads atomics and calls
    // async-signal-safe functions (mmap, signal, raise).
    unsafe {
        let p = libc::sysconf(libc::_SC_PAGESIZE);
        if p > 0 {
            PAGE.store(p as usize, Ordering::SeqCst);
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for i in 0..SLOTS {
        let (s, e) = (
            START[i].load(Ordering::Relaxed),
            END[i].load(Ordering::Relaxed),
        );
        if s != 0 && addr >= s && addr < e {
            let at = addr & !(page - 1);
            // SAFETY: replaces one page of a registered read-only file mapping (whose file
            // shrank) with zeros; nothing else lives in that range.
            let r = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                return;
            }
        }
    }
    // Not a mapping of ours: what SIGBUS would have done.
    // SAFETY: async-signal-safe calls.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
        libc::raise(libc::SIGBUS);
    }
}
