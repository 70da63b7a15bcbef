//! 3D connected-component labelling.
//!
//! Two passes over runs: the first finds the runs of foreground along x in every row and
//! joins each run to the overlapping runs of the already-visited neighbouring rows with a
//! union-find; the second paints the runs with their final label. Working on runs instead of
//! voxels keeps the union-find small (CT masks are mostly long runs) and the inner loops
//! simple.
//!
//! Labels are renumbered by decreasing voxel count, ties broken by the index of the
//! component's first voxel, so the output does not depend on traversal details.

use crate::lanes;
use crate::volume::Volume;
use thiserror::Error;

/// Which voxels touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Faces only.
    Six,
    /// Faces, edges and corners.
    TwentySix,
}

impl Connectivity {
    /// 6 or 26.
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            6 => Some(Connectivity::Six),
            26 => Some(Connectivity::TwentySix),
            _ => None,
        }
    }

    pub fn number(self) -> u32 {
        match self {
            Connectivity::Six => 6,
            Connectivity::TwentySix => 26,
        }
    }
}

#[derive(Debug, Error)]
pub enum ComponentsError {
    #[error("{0} components of at least the minimum size; at most 65535 fit in uint16 labels")]
    TooManyComponents(usize),
}

/// One kept component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// 1 for the largest.
    pub label: u16,
    pub voxels: usize,
    /// Linear index of its first voxel (x fastest).
    pub first_index: usize,
}

/// The result of labelling.
#[derive(Debug, Clone)]
pub struct Labelling {
    pub labels: Volume<u16>,
    /// In label order.
    pub components: Vec<Component>,
    /// Components dropped for having fewer than `min_voxels` voxels.
    pub dropped: usize,
}

#[derive(Clone, Copy)]
struct Run {
    /// First x of the run.
    x0: u32,
    /// One past the last x.
    x1: u32,
}

/// Appends the runs of non-zero bytes of `row`. Uniform stretches are crossed sixteen voxels
/// at a time (one 128-bit lane vector in the sandbox): most of a CT row is background or the
/// inside of a structure, and a loop that takes one voxel per turn is what costs most here —
/// in a sandbox every turn also checks the epoch that enforces the stage's deadline.
fn push_runs(row: &[u8], runs: &mut Vec<Run>) {
    let n = row.len();
    let mut x = 0;
    while x < n {
        while x + 16 <= n && lanes::all_zero(&row[x..x + 16]) {
            x += 16;
        }
        while x < n && row[x] == 0 {
            x += 1;
        }
        if x == n {
            break;
        }
        let x0 = x;
        while x + 16 <= n && lanes::none_zero(&row[x..x + 16]) {
            x += 16;
        }
        while x < n && row[x] != 0 {
            x += 1;
        }
        runs.push(Run {
            x0: x0 as u32,
            x1: x as u32,
        });
    }
}

/// Labels the non-zero voxels of `mask`, dropping components of fewer than `min_voxels`.
pub fn label(
    mask: &Volume<u8>,
    connectivity: Connectivity,
    min_voxels: usize,
) -> Result<Labelling, ComponentsError> {
    let [nx, ny, nz] = mask.dims;
    let rows = ny * nz;

    // Pass 1a: runs of every row. `row_start[r]..row_start[r + 1]` are row r's runs.
    let mut runs: Vec<Run> = Vec::new();
    let mut row_start: Vec<u32> = Vec::with_capacity(rows + 1);
    for r in 0..rows {
        row_start.push(runs.len() as u32);
        push_runs(&mask.data[r * nx..(r + 1) * nx], &mut runs);
    }
    row_start.push(runs.len() as u32);

    // Pass 1b: join runs with the runs of the neighbouring rows visited before.
    let mut uf = UnionFind::new(runs.len());
    // With 26-connectivity runs touch diagonally too: widen the overlap test by one.
    let slack: u32 = match connectivity {
        Connectivity::Six => 0,
        Connectivity::TwentySix => 1,
    };
    let mut neighbours: Vec<usize> = Vec::with_capacity(5);
    for z in 0..nz {
        for y in 0..ny {
            let r = y + ny * z;
            if row_start[r] == row_start[r + 1] {
                continue;
            }
            neighbours.clear();
            match connectivity {
                Connectivity::Six => {
                    if y > 0 {
                        neighbours.push(r - 1);
                    }
                    if z > 0 {
                        neighbours.push(r - ny);
                    }
                }
                Connectivity::TwentySix => {
                    if y > 0 {
                        neighbours.push(r - 1);
                    }
                    if z > 0 {
                        for dy in -1i64..=1 {
                            let yy = y as i64 + dy;
                            if yy >= 0 && (yy as usize) < ny {
                                neighbours.push(yy as usize + ny * (z - 1));
                            }
                        }
                    }
                }
            }
            let current = row_start[r] as usize..row_start[r + 1] as usize;
            for &nr in &neighbours {
                let other = row_start[nr] as usize..row_start[nr + 1] as usize;
                join_overlapping(&runs, current.clone(), other, slack, &mut uf);
            }
        }
    }

    // Pass 2a: sizes and first voxels per root. Roots are the smallest run index of their
    // set, and runs are in voxel order, so the root's first voxel is the component's.
    let mut size = vec![0usize; runs.len()];
    let mut root_of = vec![0u32; runs.len()];
    for i in 0..runs.len() {
        let root = uf.find(i as u32);
        root_of[i] = root;
        size[root as usize] += (runs[i].x1 - runs[i].x0) as usize;
    }
    let mut row_of_run = vec![0u32; runs.len()];
    for r in 0..rows {
        for i in row_start[r]..row_start[r + 1] {
            row_of_run[i as usize] = r as u32;
        }
    }
    let mut roots: Vec<(usize, usize, u32)> = (0..runs.len())
        .filter(|&i| root_of[i] == i as u32)
        .map(|i| {
            let first = row_of_run[i] as usize * nx + runs[i].x0 as usize;
            (size[i], first, i as u32)
        })
        .collect();
    roots.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let total = roots.len();
    roots.retain(|&(voxels, _, _)| voxels >= min_voxels.max(1));
    let dropped = total - roots.len();
    if roots.len() > u16::MAX as usize {
        return Err(ComponentsError::TooManyComponents(roots.len()));
    }

    // Pass 2b: paint.
    let mut label_of_root = vec![0u16; runs.len()];
    let mut components = Vec::with_capacity(roots.len());
    for (n, &(voxels, first_index, root)) in roots.iter().enumerate() {
        let label = (n + 1) as u16;
        label_of_root[root as usize] = label;
        components.push(Component {
            label,
            voxels,
            first_index,
        });
    }
    let mut out = vec![0u16; mask.len()];
    for r in 0..rows {
        let base = r * nx;
        for i in row_start[r] as usize..row_start[r + 1] as usize {
            let l = label_of_root[root_of[i] as usize];
            if l != 0 {
                out[base + runs[i].x0 as usize..base + runs[i].x1 as usize].fill(l);
            }
        }
    }
    Ok(Labelling {
        labels: mask.with_data(out),
        components,
        dropped,
    })
}

/// Unions every run of `a` with every run of `b` it overlaps; both are sorted by x, so one
/// merge-like sweep finds all overlaps.
fn join_overlapping(
    runs: &[Run],
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
    slack: u32,
    uf: &mut UnionFind,
) {
    let (mut i, mut j) = (a.start, b.start);
    while i < a.end && j < b.end {
        let ra = runs[i];
        let rb = runs[j];
        // Overlap (or touch diagonally with slack 1): ra.x0 < rb.x1 + slack && rb.x0 < ra.x1 + slack.
        if ra.x0 < rb.x1 + slack && rb.x0 < ra.x1 + slack {
            uf.union(i as u32, j as u32);
        }
        // Advance whichever run ends first; the other may still overlap the next one.
        if ra.x1 < rb.x1 {
            i += 1;
        } else {
            j += 1;
        }
    }
}

/// Union-find whose roots are the smallest member, with path halving.
struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let ra = self.find(a);
        let rb = self.find(b);
        if ra < rb {
            self.parent[rb as usize] = ra;
        } else if rb < ra {
            self.parent[ra as usize] = rb;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time run scan agrees with a voxel-at-a-time one on rows of every
    /// length and density, runs crossing word boundaries included.
    #[test]
    fn run_scan_matches_a_plain_scan() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 300] {
            for density in [0u64, 10, 50, 90, 100] {
                let row: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        ((seed % 100) < density) as u8 * (1 + (seed % 3) as u8)
                    })
                    .collect();
                let mut fast = Vec::new();
                push_runs(&row, &mut fast);
                let mut plain = Vec::new();
                let mut x = 0;
                while x < len {
                    if row[x] == 0 {
                        x += 1;
                        continue;
                    }
                    let x0 = x;
                    while x < len && row[x] != 0 {
                        x += 1;
                    }
                    plain.push((x0 as u32, x as u32));
                }
                let fast: Vec<(u32, u32)> = fast.iter().map(|r| (r.x0, r.x1)).collect();
                assert_eq!(fast, plain, "len {len}, density {density}%: {row:?}");
            }
        }
    }

    fn sphere(mask: &mut Volume<u8>, c: [f64; 3], r: f64) {
        let [nx, ny, nz] = mask.dims;
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let d = [i as f64 - c[0], j as f64 - c[1], k as f64 - c[2]];
                    if d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= r * r {
                        mask.set(i, j, k, 1);
                    }
                }
            }
        }
    }

    /// Brute-force flood fill, the reference the run-based labelling must agree with.
    fn flood_sizes(mask: &Volume<u8>, c: Connectivity) -> Vec<usize> {
        let [nx, ny, nz] = mask.dims;
        let mut seen = vec![false; mask.len()];
        let mut sizes = Vec::new();
        for start in 0..mask.len() {
            if mask.data[start] == 0 || seen[start] {
                continue;
            }
            seen[start] = true;
            let mut stack = vec![start];
            let mut n = 0;
            while let Some(v) = stack.pop() {
                n += 1;
                let [i, j, k] = mask.coords(v);
                for dk in -1i64..=1 {
                    for dj in -1i64..=1 {
                        for di in -1i64..=1 {
                            let manhattan = di.abs() + dj.abs() + dk.abs();
                            if manhattan == 0 || (c == Connectivity::Six && manhattan > 1) {
                                continue;
                            }
                            let (a, b, d) = (i as i64 + di, j as i64 + dj, k as i64 + dk);
                            if a < 0 || b < 0 || d < 0 {
                                continue;
                            }
                            let (a, b, d) = (a as usize, b as usize, d as usize);
                            if a >= nx || b >= ny || d >= nz {
                                continue;
                            }
                            let w = mask.index(a, b, d);
                            if mask.data[w] != 0 && !seen[w] {
                                seen[w] = true;
                                stack.push(w);
                            }
                        }
                    }
                }
            }
            sizes.push(n);
        }
        sizes.sort_by(|a, b| b.cmp(a));
        sizes
    }

    #[test]
    fn two_spheres_are_labelled_largest_first() {
        let mut mask = Volume::filled([40, 30, 30], 0u8);
        sphere(&mut mask, [10.0, 15.0, 15.0], 4.0); // small one first in voxel order
        sphere(&mut mask, [28.0, 15.0, 15.0], 7.0);
        let out = label(&mask, Connectivity::Six, 1).unwrap();
        assert_eq!(out.components.len(), 2);
        assert!(out.components[0].voxels > out.components[1].voxels);
        assert_eq!(out.labels.get(28, 15, 15), 1);
        assert_eq!(out.labels.get(10, 15, 15), 2);
        assert_eq!(out.labels.get(0, 0, 0), 0);
        let painted = out.labels.data.iter().filter(|&&l| l == 1).count();
        assert_eq!(painted, out.components[0].voxels);
        assert_eq!(
            out.components.iter().map(|c| c.voxels).collect::<Vec<_>>(),
            flood_sizes(&mask, Connectivity::Six)
        );
    }

    #[test]
    fn diagonal_ring_joins_only_with_26_connectivity() {
        // A diamond ring in one slice: each voxel touches the next only at a corner.
        let mut mask = Volume::filled([9, 9, 3], 0u8);
        for t in 0..4 {
            mask.set(4 + t, t, 1, 1);
            mask.set(8 - t, 4 + t, 1, 1);
            mask.set(4 - t, 8 - t, 1, 1);
            mask.set(t, 4 - t, 1, 1);
        }
        let six = label(&mask, Connectivity::Six, 1).unwrap();
        assert_eq!(six.components.len(), 16);
        let twenty_six = label(&mask, Connectivity::TwentySix, 1).unwrap();
        assert_eq!(twenty_six.components.len(), 1);
        assert_eq!(twenty_six.components[0].voxels, 16);
    }

    #[test]
    fn corner_touch_across_slices_joins_only_with_26() {
        let mut mask = Volume::filled([3, 3, 2], 0u8);
        mask.set(0, 0, 0, 1);
        mask.set(1, 1, 1, 1);
        assert_eq!(
            label(&mask, Connectivity::Six, 1).unwrap().components.len(),
            2
        );
        assert_eq!(
            label(&mask, Connectivity::TwentySix, 1)
                .unwrap()
                .components
                .len(),
            1
        );
    }

    #[test]
    fn ties_are_broken_by_first_voxel_and_small_components_dropped() {
        let mut mask = Volume::filled([10, 1, 1], 0u8);
        for x in [1, 2, 5, 6, 9] {
            mask.data[x] = 1;
        }
        let out = label(&mask, Connectivity::Six, 2).unwrap();
        assert_eq!(out.dropped, 1);
        assert_eq!(out.labels.data, vec![0, 1, 1, 0, 0, 2, 2, 0, 0, 0]);
        assert_eq!(out.components[1].first_index, 5);
    }

    #[test]
    fn u_shape_merges_runs_found_separately() {
        // Two arms seen as separate runs in the upper rows, joined by the bottom row.
        let mut mask = Volume::filled([5, 4, 1], 0u8);
        for y in 0..4 {
            mask.set(0, y, 0, 1);
            mask.set(4, y, 0, 1);
        }
        for x in 0..5 {
            mask.set(x, 3, 0, 1);
        }
        let out = label(&mask, Connectivity::Six, 1).unwrap();
        assert_eq!(out.components.len(), 1);
        assert_eq!(out.components[0].voxels, 11);
    }

    #[test]
    fn random_masks_agree_with_flood_fill() {
        // A fixed LCG so the test is reproducible without a rand dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for density in [30u64, 50, 70] {
            let mut mask = Volume::filled([17, 13, 11], 0u8);
            for v in mask.data.iter_mut() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *v = ((state >> 33) % 100 < density) as u8;
            }
            for c in [Connectivity::Six, Connectivity::TwentySix] {
                let out = label(&mask, c, 1).unwrap();
                let sizes: Vec<usize> = out.components.iter().map(|c| c.voxels).collect();
                assert_eq!(sizes, flood_sizes(&mask, c), "density {density} {c:?}");
            }
        }
    }
}
