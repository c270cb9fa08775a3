//! Bounded top-N selection.
//!
//! Order: higher score first; equal scores go to the lower item index, so results are
//! deterministic and equal to a stable descending sort (`np.lexsort((idx, -score))`).

/// `a` ranks strictly before `b`.
#[inline]
fn better(a: (f32, u32), b: (f32, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Rank order: `Less` when `a` ranks before `b`.
fn order(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    if better(*a, *b) {
        std::cmp::Ordering::Less
    } else if better(*b, *a) {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

/// A min-heap (by rank) of at most `n` (score, item) pairs: the root is the worst kept entry.
pub struct TopK {
    n: usize,
    heap: Vec<(f32, u32)>,
    /// [`TopK::scan`]'s waiting entries (kept for its next call).
    buf: Vec<(f32, u32)>,
}

impl TopK {
    /// A heap keeping `n` entries out of at most `universe` candidates (the allocation is
    /// bounded by the smaller of the two, so a huge `n` costs nothing extra).
    pub fn new(n: usize, universe: usize) -> Self {
        Self {
            n,
            heap: Vec::with_capacity(n.min(universe)),
            buf: Vec::new(),
        }
    }

    /// Offers one candidate. NaN scores are never kept (they mark masked items).
    #[inline]
    pub fn push(&mut self, score: f32, item: u32) {
        if score.is_nan() || self.n == 0 {
            return;
        }
        if self.heap.len() < self.n {
            self.heap.push((score, item));
            self.sift_up(self.heap.len() - 1);
        } else if better((score, item), self.heap[0]) {
            self.heap[0] = (score, item);
            self.sift_down(0);
        }
    }

    /// The worst kept score once `n` entries are kept (no later candidate scoring below it
    /// can enter); None before.
    #[inline]
    pub fn threshold(&self) -> Option<f32> {
        (self.n > 0 && self.heap.len() == self.n).then(|| self.heap[0].0)
    }

    /// Scans a row of scores for items `first..first + scores.len()`, in increasing item order.
    ///
    /// Because items arrive in increasing order, a later item with a score equal to the current
    /// threshold can never displace an earlier one, so a strict `>` test is exact and skips
    /// almost every item without touching the heap.
    #[inline]
    pub fn scan(&mut self, scores: &[f32], first: u32) {
        let mut i = 0;
        while self.heap.len() < self.n && i < scores.len() {
            self.push(scores[i], first + i as u32);
            i += 1;
        }
        if self.n == 0 || self.heap.len() < self.n {
            return; // n == 0, or the row ran out (or held only NaN) before the heap filled
        }
        // Entries above the threshold wait in a buffer, and the heap takes them in batches
        // (a selection and a heapify, linear): a sift per entry costs more. Blocks of 16 are
        // tested at once (one vector compare): almost none holds a score above the threshold.
        let mut thr = self.heap[0].0;
        let cap = self.n.max(64);
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut j = i;
        while j < scores.len() {
            let end = (j + 16).min(scores.len());
            let block = &scores[j..end];
            if block.len() < 16 || block.iter().fold(false, |any, &s| any | (s > thr)) {
                for (t, &s) in block.iter().enumerate() {
                    if s > thr {
                        buf.push((s, first + (j + t) as u32));
                    }
                }
                if buf.len() >= cap {
                    thr = self.take(&mut buf);
                }
            }
            j = end;
        }
        if buf.len() >= self.n / 8 {
            self.take(&mut buf);
        } else {
            // A few late entries: a sift each costs less than rebuilding the heap.
            for &(s, i) in &buf {
                self.push(s, i);
            }
        }
        self.buf = buf;
    }

    /// Keeps the best `n` of the heap and `buf` (emptied), as a heap; returns its threshold.
    fn take(&mut self, buf: &mut Vec<(f32, u32)>) -> f32 {
        self.heap.append(buf);
        let n = self.n;
        self.heap.select_nth_unstable_by(n - 1, order);
        self.heap.truncate(n);
        for i in (0..n / 2).rev() {
            self.sift_down(i);
        }
        self.heap[0].0
    }

    /// Writes the kept entries best-first into `ids`/`scores` (length `n`), padding with
    /// id -1 and score -inf when fewer than `n` were kept.
    pub fn drain_into(&mut self, ids: &mut [i64], scores: &mut [f32]) {
        self.heap.sort_unstable_by(order);
        for k in 0..ids.len() {
            match self.heap.get(k) {
                Some(&(s, i)) => {
                    ids[k] = i as i64;
                    scores[k] = s;
                }
                None => {
                    ids[k] = -1;
                    scores[k] = f32::NEG_INFINITY;
                }
            }
        }
        self.heap.clear();
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let p = (i - 1) / 2;
            // The parent must rank at or below the child (worst at the root).
            if better(self.heap[p], self.heap[i]) {
                self.heap.swap(p, i);
                i = p;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let len = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut worst = i;
            if l < len && better(self.heap[worst], self.heap[l]) {
                worst = l;
            }
            if r < len && better(self.heap[worst], self.heap[r]) {
                worst = r;
            }
            if worst == i {
                break;
            }
            self.heap.swap(i, worst);
            i = worst;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(scores: &[f32], n: usize) -> Vec<(i64, f32)> {
        let mut idx: Vec<usize> = (0..scores.len()).filter(|&i| !scores[i].is_nan()).collect();
        idx.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap().then(a.cmp(&b)));
        let mut out: Vec<(i64, f32)> = idx.iter().take(n).map(|&i| (i as i64, scores[i])).collect();
        while out.len() < n {
            out.push((-1, f32::NEG_INFINITY));
        }
        out
    }

    /// The next xorshift state.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn matches_sort_with_ties_nan_and_padding() {
        let mut state = 12345u64;
        for case in 0..300 {
            let len = case % 37;
            let n = case % 11;
            let scores: Vec<f32> = (0..len)
                .map(|_| match next(&mut state) % 10 {
                    0 => f32::NAN,
                    1 => f32::NEG_INFINITY,
                    x => (x % 5) as f32, // many ties
                })
                .collect();
            let mut tk = TopK::new(n, len);
            // Feed in two tiles to exercise the merge across tiles.
            let cut = len / 2;
            tk.scan(&scores[..cut], 0);
            tk.scan(&scores[cut..], cut as u32);
            let (mut ids, mut sc) = (vec![0i64; n], vec![0f32; n]);
            tk.drain_into(&mut ids, &mut sc);
            let want = reference(&scores, n);
            let got: Vec<(i64, f32)> = ids.into_iter().zip(sc).collect();
            assert_eq!(got, want, "case {case}: {scores:?}");
        }
    }

    /// Rows long enough that waiting entries are taken in batches (several per scan, and a
    /// last few pushed one by one), with ties, NaN and ascending runs that keep raising the
    /// threshold: the stable sort's first `n`.
    #[test]
    fn batched_scans_match_sort() {
        let mut state = 99u64;
        for case in 0..60 {
            let len = 500 + 97 * case;
            let n = [1, 5, 63, 64, 65, 100, 300, len - 3, len][case % 9];
            let scores: Vec<f32> = (0..len)
                .map(|j| match next(&mut state) {
                    x if x % 50 == 0 => f32::NAN,
                    x if x % 50 < 10 => j as f32 / 64.0, // ascending: the threshold keeps rising
                    x => (x % 200) as f32,
                })
                .collect();
            let mut tk = TopK::new(n, len);
            let cut = len / 3;
            tk.scan(&scores[..cut], 0);
            tk.scan(&scores[cut..], cut as u32);
            let (mut ids, mut sc) = (vec![0i64; n], vec![0f32; n]);
            tk.drain_into(&mut ids, &mut sc);
            let got: Vec<(i64, f32)> = ids.into_iter().zip(sc).collect();
            assert_eq!(got, reference(&scores, n), "case {case}");
        }
    }

    #[test]
    fn huge_n_allocates_only_the_universe() {
        let mut tk = TopK::new(usize::MAX, 3);
        tk.scan(&[1.0, 3.0, 2.0], 0);
        let (mut ids, mut sc) = (vec![0i64; 5], vec![0f32; 5]);
        tk.drain_into(&mut ids, &mut sc);
        assert_eq!(ids, vec![1, 2, 0, -1, -1]);
    }
}
