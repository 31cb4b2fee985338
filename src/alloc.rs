//! Counts the bytes each thread holds, so the evaluation of one record's expression can be
//! bounded by memory (`expr::limits`), not only by steps, stack and value sizes: jaq keeps a
//! recursion's pending generators on the heap (`def f: fromstream(...) | f` grew to 5 GB within
//! its step budget), and no probe of the values sees that.
//!
//! The binary wraps its allocator in [`Counting`]; without it (a library user's program),
//! [`live`] stays 0 and the memory limit never applies. The count is per thread and only its
//! difference over one evaluation is read: memory freed here but allocated by another thread
//! makes it smaller, never larger, than what the evaluation holds.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

thread_local! {
    // const, without Drop: readable from the allocator at any point of a thread's life.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Bytes allocated minus bytes freed by this thread so far.
#[inline]
pub fn live() -> isize {
    LIVE.with(Cell::get)
}

#[inline]
fn add(n: isize) {
    LIVE.with(|c| c.set(c.get().wrapping_add(n)));
}

/// A global allocator that counts, per thread, what `A` hands out.
pub struct Counting<A>(pub A);

// SAFETY: every call is forwarded to `A` unchanged; the count is a side effect only.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}
