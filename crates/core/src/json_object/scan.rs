//! Where a JSON string's plain content ends: the vector pass that is most of a large
//! prompt's cost. [`plain_run`] is what the scanner in the parent module calls;
//! [`write_json_string`] uses the same steps to escape text into a JSON string (the access
//! log's bodies).

/// How far a string's content runs from its start as text and one-character escapes.
pub(super) struct PlainRun {
    /// Bytes up to the stop: a quote, a control character, or a backslash not stepped over
    /// (`\u`, a bad escape); the whole input when none.
    pub(super) len: usize,
    /// One-character escapes (`\n`, `\"`, ...) were stepped over.
    pub(super) escaped: bool,
    /// Some byte was not ASCII: the string must be checked as UTF-8.
    pub(super) non_ascii: bool,
}

/// Finds the [`PlainRun`] at the start of `s`. On a large prompt this pass is most of the
/// request's cost, and prose stops it every few words (quotes, newlines), so each 64-byte step
/// takes a mask of its stops from vector compares and steps from stop to stop within it: AVX2
/// where the CPU has it (checked at run time), SSE2 (every x86-64 CPU) otherwise, a byte at a
/// time on other CPUs.
pub(super) fn plain_run(s: &[u8]) -> PlainRun {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just found to have AVX2, all the function needs.
            return unsafe { simd::plain_run_avx2(s) };
        }
        // SAFETY: SSE2 is part of x86-64.
        unsafe { simd::plain_run_sse2(s) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    plain_run_scalar(s)
}

/// [`plain_run`] a byte at a time: other CPUs, and the reference in tests.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn plain_run_scalar(s: &[u8]) -> PlainRun {
    let mut high = false;
    let mut run = plain_run_with(s, |block| step_scalar(block, &mut high));
    run.non_ascii |= high;
    run
}

/// Whether a byte stops a plain run: a quote, a backslash or a control character.
fn stops_plain_run(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The stops among 64 bytes as bits (bit `i` for byte `i`), a byte at a time; `non_ascii` is
/// set when a byte is not ASCII.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn step_scalar(block: &[u8; 64], non_ascii: &mut bool) -> u64 {
    *non_ascii |= !block.is_ascii();
    block.iter().enumerate().fold(0, |mask, (i, &b)| mask | u64::from(stops_plain_run(b)) << i)
}

/// [`plain_run`] with `step` reading each 64 bytes (its stops as bits; it notes bytes that are
/// not ASCII in its own state, read by the caller after the run); inlined into each
/// CPU-specific version so their steps are computed with its instructions.
#[inline(always)]
fn plain_run_with(s: &[u8], mut step: impl FnMut(&[u8; 64]) -> u64) -> PlainRun {
    let simple_escape = |b: Option<&u8>| matches!(b, Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't'));
    let (mut escaped, mut non_ascii) = (false, false);
    let mut at = 0;
    while let Some(block) = s.get(at..at + 64) {
        let block_start = at;
        let mut mask = step(block.try_into().expect("64 bytes"));
        at = block_start + 64;
        while mask != 0 {
            let i = block_start + mask.trailing_zeros() as usize;
            if s[i] != b'\\' || !simple_escape(s.get(i + 1)) {
                return PlainRun { len: i, escaped, non_ascii };
            }
            escaped = true;
            // Past the escape: the escaped character is content whatever it is (`\"`).
            let next = i + 2;
            if next >= block_start + 64 {
                at = next;
                break;
            }
            mask &= !0u64 << (next - block_start);
        }
    }
    while let Some(&b) = s.get(at) {
        if b == b'\\' && simple_escape(s.get(at + 1)) {
            escaped = true;
            at += 2;
        } else if stops_plain_run(b) {
            return PlainRun { len: at, escaped, non_ascii };
        } else {
            non_ascii |= !b.is_ascii();
            at += 1;
        }
    }
    PlainRun { len: s.len(), escaped, non_ascii }
}

/// Appends `s` to `out` as a JSON string, quotes included, escaped as serde_json escapes it
/// (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control characters as `\u00XX`;
/// nothing else). A logged request or response body is JSON text, whose quotes must all be
/// escaped: serde_json looks each byte up in a table (~4.5 instructions a byte); here each
/// 64 bytes' stops come from the vector step of [`plain_run`] and the text between them is
/// copied whole.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just found to have AVX2, all the function needs.
            return unsafe { simd::escape_avx2(out, s.as_bytes()) };
        }
        // SAFETY: SSE2 is part of x86-64.
        unsafe { simd::escape_sse2(out, s.as_bytes()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    escape_with(out, s.as_bytes(), |block| step_scalar(block, &mut false))
}

/// [`write_json_string`] with `step` giving each 64 bytes' stops (as in [`plain_run_with`]).
/// The last bytes (fewer than 64) are stepped as a block padded with spaces.
#[inline(always)]
fn escape_with(out: &mut Vec<u8>, s: &[u8], mut step: impl FnMut(&[u8; 64]) -> u64) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut done = 0;
    let mut at = 0;
    while at < s.len() {
        let mut mask = match s.get(at..at + 64) {
            Some(block) => step(block.try_into().expect("64 bytes")),
            None => {
                let rest = s.len() - at;
                let mut block = [b' '; 64];
                block[..rest].copy_from_slice(&s[at..]);
                step(&block) & ((1u64 << rest) - 1)
            }
        };
        while mask != 0 {
            let i = at + mask.trailing_zeros() as usize;
            out.extend_from_slice(&s[done..i]);
            push_escape(out, s[i]);
            done = i + 1;
            mask &= mask - 1;
        }
        at += 64;
    }
    out.extend_from_slice(&s[done..]);
    out.push(b'"');
}

/// The escape of a byte that stops a plain run.
fn push_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short: &[u8] = match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x08 => b"\\b",
        0x0c => b"\\f",
        _ => return out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]),
    };
    out.extend_from_slice(short);
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{escape_with, plain_run_with, PlainRun};
    use std::arch::x86_64::*;

    /// The AVX2 step (two 32-byte compares): a closure taking 64 bytes to their stops as
    /// bits, OR-ing the bytes into `$high` (its lanes' top bits say some byte was not ASCII).
    /// A macro, so that the closure is defined inside each `avx2` function and compiled with
    /// its instructions.
    macro_rules! avx2_step {
        ($high:ident) => {
            |block: &[u8; 64]| {
                let (quote, backslash, space) = (_mm256_set1_epi8(b'"' as i8), _mm256_set1_epi8(b'\\' as i8), _mm256_set1_epi8(0x20));
                // SAFETY: offsets 0 and 32, so each unaligned load reads within the 64 bytes.
                let (lo, hi) = unsafe { (_mm256_loadu_si256(block.as_ptr().cast()), _mm256_loadu_si256(block.as_ptr().add(32).cast())) };
                // A lane's top bit says whether it stops the run; only top bits are read. Below
                // 0x20 signed but not negative: a control character, not part of a multi-byte one.
                let stops = |v: __m256i| {
                    let special = _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash));
                    _mm256_or_si256(special, _mm256_andnot_si256(v, _mm256_cmpgt_epi8(space, v)))
                };
                $high = _mm256_or_si256($high, _mm256_or_si256(lo, hi));
                u64::from(_mm256_movemask_epi8(stops(lo)) as u32) | u64::from(_mm256_movemask_epi8(stops(hi)) as u32) << 32
            }
        };
    }

    /// The SSE2 step (four 16-byte compares), as [`avx2_step`].
    macro_rules! sse2_step {
        ($high:ident) => {
            |block: &[u8; 64]| {
                let (quote, backslash, space) = (_mm_set1_epi8(b'"' as i8), _mm_set1_epi8(b'\\' as i8), _mm_set1_epi8(0x20));
                let mut mask = 0u64;
                for quarter in 0..4 {
                    // SAFETY: offsets 0, 16, 32 and 48, so each unaligned load reads within the 64 bytes.
                    let v = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * quarter).cast()) };
                    let special = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
                    let stops = _mm_or_si128(special, _mm_andnot_si128(v, _mm_cmpgt_epi8(space, v)));
                    mask |= u64::from(_mm_movemask_epi8(stops) as u16) << (16 * quarter);
                    $high = _mm_or_si128($high, v);
                }
                mask
            }
        };
    }

    /// [`plain_run`](super::plain_run) with AVX2. Bytes that are not ASCII are gathered in one
    /// register and looked at once, after the run: a byte past the run's end in its last step
    /// may set it, which only asks for a UTF-8 check that finds nothing wrong.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn plain_run_avx2(s: &[u8]) -> PlainRun {
        let mut high = _mm256_setzero_si256();
        let mut run = plain_run_with(s, avx2_step!(high));
        run.non_ascii |= _mm256_movemask_epi8(high) != 0;
        run
    }

    /// [`write_json_string`](super::write_json_string)'s body with AVX2 (the step's non-ASCII
    /// register is not needed here; the optimiser drops it).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn escape_avx2(out: &mut Vec<u8>, s: &[u8]) {
        let mut high = _mm256_setzero_si256();
        escape_with(out, s, avx2_step!(high));
    }

    /// The same with SSE2.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn escape_sse2(out: &mut Vec<u8>, s: &[u8]) {
        let mut high = _mm_setzero_si128();
        escape_with(out, s, sse2_step!(high));
    }

    /// Four 16-byte compares a step.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn plain_run_sse2(s: &[u8]) -> PlainRun {
        let mut high = _mm_setzero_si128();
        let mut run = plain_run_with(s, sse2_step!(high));
        run.non_ascii |= _mm_movemask_epi8(high) != 0;
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_object::JsonObject;

    /// Every version of [`plain_run`] on `s`, as (length, escaped), each checked for its
    /// non-ASCII flag: set when the run has a byte that is not ASCII (and possibly when only
    /// bytes past the run's end are not), clear when `s` is all ASCII.
    fn plain_runs(s: &[u8]) -> Vec<(usize, bool)> {
        let mut all = vec![plain_run(s), plain_run_scalar(s)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of x86-64.
        all.push(unsafe { simd::plain_run_sse2(s) });
        for r in &all {
            assert!(r.non_ascii || s[..r.len].is_ascii(), "a multi-byte character missed in {s:?}");
            assert!(!r.non_ascii || !s.is_ascii(), "non-ASCII flagged in ASCII {s:?}");
        }
        all.into_iter().map(|r| (r.len, r.escaped)).collect()
    }

    /// The same, byte by byte, as the JSON grammar says.
    fn plain_run_by_the_book(s: &[u8]) -> (usize, bool) {
        let (mut at, mut escaped) = (0, false);
        while at < s.len() {
            match (s[at], s.get(at + 1)) {
                (b'\\', Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')) => {
                    escaped = true;
                    at += 2;
                }
                (b, _) if b == b'"' || b == b'\\' || b < 0x20 => break,
                _ => at += 1,
            }
        }
        (at.min(s.len()), escaped)
    }

    #[test]
    fn plain_runs_stop_where_the_grammar_says_wherever_stops_fall_in_a_step() {
        for len in [0, 1, 31, 32, 63, 64, 65, 127, 128, 200] {
            let plain = vec![b'a'; len];
            assert!(plain_runs(&plain).iter().all(|&r| r == (len, false)));
            for stop in [b'"', b'\\', b'\n', 0x00, 0x1f, 0x80, 0xff] {
                for at in [0, len / 2, len.saturating_sub(1)] {
                    let mut s = plain.clone();
                    s.resize(len.max(1), b'a');
                    let last = s.len() - 1;
                    s[at.min(last)] = stop;
                    let want = plain_run_by_the_book(&s);
                    assert!(plain_runs(&s).iter().all(|&r| r == want), "len {len}, {stop:#x} at {at}: {:?} vs {want:?}", plain_runs(&s));
                }
            }
        }
        // Escapes stepped over anywhere in a step, across its end, and at the very end;
        // multi-byte characters gone through.
        let pieces: [&[u8]; 9] = [br#"\n"#, br#"\""#, br#"\\"#, br#"\u0041"#, br#"\x"#, "é".as_bytes(), "文字".as_bytes(), b"\t", b"\\"];
        let mut seed = 7u64;
        for _ in 0..3000 {
            let mut s = Vec::new();
            while s.len() < 150 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if seed >> 61 == 0 {
                    s.extend_from_slice(pieces[(seed >> 32) as usize % pieces.len()]);
                } else {
                    s.extend(std::iter::repeat_n(b'w', (seed >> 40) as usize % 70));
                }
            }
            s.truncate((seed >> 20) as usize % 150);
            let want = plain_run_by_the_book(&s);
            assert!(plain_runs(&s).iter().all(|&r| r == want), "{:?}: {:?} vs {want:?}", String::from_utf8_lossy(&s), plain_runs(&s));
        }
        // Printable ASCII goes through, 0x7f included (JSON allows DEL in strings).
        assert_eq!(plain_runs(b" ~\x7f!\""), vec![(4, false); plain_runs(b"").len()]);
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them_wherever_stops_fall() {
        let check = |s: &str| {
            let want = serde_json::to_vec(s).unwrap();
            let mut got = b"x".to_vec();
            write_json_string(&mut got, s);
            assert_eq!(String::from_utf8_lossy(&got[1..]), String::from_utf8_lossy(&want), "{s:?}");
            #[cfg(target_arch = "x86_64")]
            {
                let mut sse2 = Vec::new();
                // SAFETY: SSE2 is part of x86-64.
                unsafe { simd::escape_sse2(&mut sse2, s.as_bytes()) };
                assert_eq!(sse2, want, "{s:?} (SSE2)");
            }
            let mut scalar = Vec::new();
            escape_with(&mut scalar, s.as_bytes(), |block| step_scalar(block, &mut false));
            assert_eq!(scalar, want, "{s:?} (scalar)");
        };
        for len in [0, 1, 31, 32, 63, 64, 65, 127, 128, 200] {
            let plain = "a".repeat(len);
            check(&plain);
            for stop in ['"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\0', '\u{1f}', '\u{7f}', '/', 'é', '文'] {
                for at in [0, len / 2, len.saturating_sub(1), len] {
                    let mut s = plain.clone();
                    s.insert(at.min(s.len()), stop);
                    check(&s);
                }
            }
        }
        let mut seed = 11u64;
        let pieces = ["\"", "\\", "\n", "{\"role\":\"user\"}", "é", "文字", "\u{1}", " "];
        for _ in 0..2000 {
            let mut s = String::new();
            while s.len() < 300 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if seed >> 62 == 0 {
                    s.push_str(pieces[(seed >> 32) as usize % pieces.len()]);
                } else {
                    s.push_str(&"w".repeat((seed >> 40) as usize % 80));
                }
            }
            check(&s);
        }
    }

    #[test]
    fn strings_with_multi_byte_characters_are_checked_as_utf8_whole() {
        let ok = |text: &[u8]| JsonObject::parse(text).is_ok();
        let long = "敏捷的棕色狐狸".repeat(40);
        assert!(ok(format!(r#"{{"content":"{long}\n{long}\"{long}"}}"#).as_bytes()));
        // A character cut by an escape, a stray continuation byte, a truncated one at the end,
        // an overlong encoding: refused wherever they fall in a step.
        for bad in [&b"\xe6\\n\x95\x8f"[..], b"\x95", b"\xe6\x95", b"\xc0\xaf"] {
            for pad in [0, 30, 63, 64, 100] {
                let mut text = format!(r#"{{"content":"{}"#, "a".repeat(pad)).into_bytes();
                text.extend_from_slice(bad);
                text.extend_from_slice(format!(r#"{}"}}"#, long).as_bytes());
                assert!(!ok(&text), "{bad:?} after {pad}");
            }
        }
        // A control character among multi-byte ones.
        assert!(!ok(format!("{{\"content\":\"{long}\u{1f}{long}\"}}").as_bytes()));
    }
}
