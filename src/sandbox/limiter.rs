//! Caps the total linear memory of a run across every memory of the instance.
//!
//! `StoreLimits::memory_size` caps each memory separately; a component (the Python guest) has
//! several, so the sum is what must be bounded. Refusing growth (rather than trapping) lets the
//! guest's allocator fail: QuickJS throws `InternalError: out of memory`, CPython raises
//! `MemoryError`. Whether growth was ever refused is remembered to tell `out_of_memory` apart.

use wasmtime::ResourceLimiter;

/// Tables hold function references; a guest has no reason for more than this many elements.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Enough for the Python component's core instances; far too few to matter as a resource.
const MAX_INSTANCES: usize = 32;

#[derive(Debug)]
pub struct TotalMemoryLimiter {
    cap: usize,
    total: usize,
    peak: usize,
    refused: bool,
}

impl TotalMemoryLimiter {
    pub fn new(cap: u64) -> Self {
        TotalMemoryLimiter {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            total: 0,
            peak: 0,
            refused: false,
        }
    }

    pub fn peak_bytes(&self) -> u64 {
        self.peak as u64
    }

    /// A new call on an instance kept between calls (a session) or made ahead of time (a
    /// spare): `cap` is that call's, memory already grown stays counted against it, the peak
    /// and the refusal are the call's.
    pub fn begin_call(&mut self, cap: u64) {
        self.cap = usize::try_from(cap).unwrap_or(usize::MAX);
        self.peak = self.total;
        self.refused = false;
    }

    /// Whether the memory the instance already holds is within `cap`.
    pub fn fits(&self, cap: u64) -> bool {
        u64::try_from(self.total).unwrap_or(u64::MAX) <= cap
    }

    /// Whether a memory growth was refused during the run.
    pub fn exhausted(&self) -> bool {
        self.refused
    }
}

impl ResourceLimiter for TotalMemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let within_declared = maximum.is_none_or(|m| desired <= m);
        if !within_declared || self.total.saturating_add(growth) > self.cap {
            self.refused = true;
            return Ok(false);
        }
        self.total += growth;
        self.peak = self.peak.max(self.total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|m| desired <= m))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }
    fn tables(&self) -> usize {
        MAX_INSTANCES
    }
    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_growth_across_memories() {
        let mut l = TotalMemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap()); // memory A
        assert!(l.memory_growing(0, 30, None).unwrap()); // memory B
        assert!(!l.memory_growing(60, 80, None).unwrap()); // A again: 80 + 30 > 100
        assert!(l.exhausted());
        assert!(l.memory_growing(30, 40, None).unwrap()); // B: 60 + 40 = 100
        assert_eq!(l.peak_bytes(), 100);
    }

    #[test]
    fn respects_the_declared_maximum() {
        let mut l = TotalMemoryLimiter::new(1000);
        assert!(!l.memory_growing(0, 20, Some(10)).unwrap());
        assert!(l.exhausted());
        assert_eq!(l.peak_bytes(), 0);
    }

    #[test]
    fn fresh_limiter_is_not_exhausted() {
        let mut l = TotalMemoryLimiter::new(10);
        assert!(l.memory_growing(0, 10, None).unwrap());
        assert!(!l.exhausted());
    }

    #[test]
    fn tables_are_capped() {
        let mut l = TotalMemoryLimiter::new(10);
        assert!(l.table_growing(0, 100, None).unwrap());
        assert!(!l.table_growing(0, MAX_TABLE_ELEMENTS + 1, None).unwrap());
    }
}
