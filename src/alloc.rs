//! The process allocator: mimalloc, asked for plain blocks whenever a plain block is aligned
//! enough.
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it sends every allocation through
//! `mi_malloc_aligned`, whose fast path in mimalloc 3 works only while the size class's free
//! list has a block ready. When it is empty (mimalloc refills it from the blocks freed since
//! only on its generic path), a size that is not a power of two (24, 40, 48 bytes...) goes to
//! the over-allocating path instead: a larger block from another size class, marked as holding
//! an interior pointer. A completion request made ~120 allocations, ~24 of them that way:
//! ~8.7k of its ~81k instructions in the allocator (issue 14, bench/README.md).
//!
//! mimalloc's plain blocks are aligned to 16 bytes from 16 bytes up (two words on x86_64 and
//! aarch64: `MI_MAX_ALIGN_SIZE`), to 8 below, so a layout whose alignment is at most 16 and at
//! most its size can take `mi_malloc` (the rule std's `System` allocator uses with malloc).
//! Any other layout keeps `mi_malloc_aligned`. `mi_free` frees either.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The largest alignment every plain mimalloc block of at least that size has.
const PLAIN_ALIGN: usize = 16;

/// mimalloc as the global allocator (see the module's doc).
pub struct Mimalloc;

/// Whether a block of `size` bytes from `mi_malloc` satisfies `align`.
#[inline]
fn plain_is_enough(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: every pointer handed out comes from mimalloc with the layout's size and an
// alignment at least the layout's (see `plain_is_enough`), and goes back to mimalloc.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain_is_enough(layout.size(), layout.align()) {
            mi::mi_malloc(layout.size()) as *mut u8
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain_is_enough(layout.size(), layout.align()) {
            mi::mi_zalloc(layout.size()) as *mut u8
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain_is_enough(new_size, layout.align()) {
            mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
        } else {
            mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every alignment up to a page, at sizes around each size class's edges: the block is
    /// aligned, writable to its end, and keeps its bytes through a realloc either way.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let a = Mimalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1usize, 7, 8, 9, 15, 16, 17, 24, 31, 40, 48, 56, 64, 80, 100, 1000, 5000, 70_000] {
                let Ok(layout) = Layout::from_size_align(size, align) else { continue };
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    std::ptr::write_bytes(p, 0xa5, size);
                    let grown = a.realloc(p, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "realloc size {size} align {align}");
                    assert!(std::slice::from_raw_parts(grown, size).iter().all(|b| *b == 0xa5));
                    let grown_layout = Layout::from_size_align(size * 3, align).unwrap();
                    let shrunk = a.realloc(grown, grown_layout, size.div_ceil(2));
                    assert_eq!(shrunk as usize % align, 0, "shrink size {size} align {align}");
                    assert!(std::slice::from_raw_parts(shrunk, size.div_ceil(2)).iter().all(|b| *b == 0xa5));
                    a.dealloc(shrunk, Layout::from_size_align(size.div_ceil(2), align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|b| *b == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
