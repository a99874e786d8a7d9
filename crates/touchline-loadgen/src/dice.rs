//! The generator's only source of randomness.
//!
//! ChaCha8 seeded from the scenario's seed, and only draws whose results do
//! not depend on the platform: integer ranges over `u64`/`i64` (never
//! `usize`), Bernoulli trials, and a Fisher-Yates shuffle written here. No
//! floating-point function whose last bits could differ between C libraries
//! (`ln`, `exp`, ...) is used, so a seed gives the same bytes everywhere.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded, portable random source.
pub(crate) struct Dice(ChaCha8Rng);

impl Dice {
    pub(crate) fn new(seed: u64) -> Self {
        Dice(ChaCha8Rng::seed_from_u64(seed))
    }

    /// True with probability `p` (clamped to 0..=1).
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        if p.is_nan() || p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.0.gen_bool(p)
        }
    }

    /// A uniform integer in `lo..=hi` (`lo` when the range is empty).
    pub(crate) fn int(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            self.0.gen_range(lo..=hi)
        }
    }

    /// A uniform index below `len` (0 when `len` is 0).
    pub(crate) fn index(&mut self, len: usize) -> usize {
        let len = len as u64;
        if len <= 1 {
            0
        } else {
            // Fits: the result is below `len`, which came from a usize.
            self.0.gen_range(0..len) as usize
        }
    }

    /// One item of a non-empty slice; `None` when it is empty.
    pub(crate) fn choose<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.index(items.len()))
        }
    }

    /// One item of a constant, non-empty list.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        debug_assert!(!items.is_empty(), "pick needs a non-empty list");
        let i = self.index(items.len());
        items[i.min(items.len().saturating_sub(1))]
    }

    /// One value of a weighted list; the first when all weights are zero.
    pub(crate) fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: i64 = items.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut roll = self.int(0, total - 1);
        for (item, weight) in items {
            if roll < i64::from(*weight) {
                return *item;
            }
            roll -= i64::from(*weight);
        }
        items[0].0
    }

    /// `n` lower-case hexadecimal digits.
    pub(crate) fn hex(&mut self, n: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        (0..n).map(|_| char::from(DIGITS[self.index(16)])).collect()
    }

    /// `n` decimal digits, the first not zero.
    pub(crate) fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|i| {
                let lo = if i == 0 { 1 } else { 0 };
                char::from(b'0' + self.int(lo, 9) as u8)
            })
            .collect()
    }

    /// A random (version 4) UUID in its canonical text form.
    pub(crate) fn uuid(&mut self) -> String {
        let hex = self.hex(30);
        let variant = self.pick(&['8', '9', 'a', 'b']);
        format!(
            "{}-{}-4{}-{}{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..15],
            variant,
            &hex[15..18],
            &hex[18..30]
        )
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_the_canonical_form() {
        let mut dice = Dice::new(7);
        for _ in 0..100 {
            let uuid = dice.uuid();
            let parts: Vec<&str> = uuid.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{uuid}"
            );
            assert!(parts[2].starts_with('4'), "{uuid}");
        }
    }

    #[test]
    fn weighted_respects_zero_weights() {
        let mut dice = Dice::new(1);
        for _ in 0..1000 {
            assert_ne!(dice.weighted(&[("a", 0), ("b", 3), ("c", 0)]), "a");
        }
    }
}
