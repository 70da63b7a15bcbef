//! An analytic 3D CT phantom in patient coordinates (millimetres).
//!
//! Air background, an elliptic water cylinder along z as the "body", and a few
//! spheres of known HU inside it. Because the geometry is analytic, tests and
//! demos know exactly what a segmentation should find: with the default
//! threshold of 200 HU the expected segmentation is **bone (65.45 ml) +
//! contrast (24.43 ml)**; see [`expected_components`].

/// HU of everything outside the body.
pub const AIR_HU: i16 = -1000;
/// HU of the body (water).
pub const WATER_HU: i16 = 0;
/// Body semi-axes in mm: x, y. The cylinder is centred on x = y = 0 and
/// infinite in z, so every slice of any series sees the same outline.
pub const BODY_SEMI_AXES_MM: [f64; 2] = [150.0, 110.0];

/// A sphere of uniform HU inside the body.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sphere {
    pub name: &'static str,
    pub center_mm: [f64; 3],
    pub radius_mm: f64,
    pub hu: i16,
}

impl Sphere {
    /// Analytic volume in millilitres (1 ml = 1000 mm³).
    pub fn volume_ml(&self) -> f64 {
        4.0 / 3.0 * std::f64::consts::PI * self.radius_mm.powi(3) / 1000.0
    }

    /// Whether `p` lies inside or on the sphere.
    pub fn contains(&self, p: [f64; 3]) -> bool {
        let d2: f64 = (0..3).map(|i| (p[i] - self.center_mm[i]).powi(2)).sum();
        d2 <= self.radius_mm * self.radius_mm
    }
}

/// The spheres, listed bottom to top: a later sphere overrides an earlier one
/// where they overlap (they do not overlap today, but the rule keeps
/// [`hu_at`] well-defined if someone adds one that does).
pub const SPHERES: &[Sphere] = &[
    Sphere {
        name: "bone",
        center_mm: [-60.0, 0.0, 0.0],
        radius_mm: 25.0,
        hu: 700,
    },
    Sphere {
        name: "contrast",
        center_mm: [50.0, 20.0, 0.0],
        radius_mm: 18.0,
        hu: 300,
    },
    Sphere {
        name: "lesion",
        center_mm: [20.0, -50.0, 10.0],
        radius_mm: 12.0,
        hu: 60,
    },
    Sphere {
        name: "air",
        center_mm: [40.0, 60.0, -20.0],
        radius_mm: 15.0,
        hu: -800,
    },
];

/// HU of the phantom at patient-coordinate point `p` (mm).
pub fn hu_at(p: [f64; 3]) -> i16 {
    let [a, b] = BODY_SEMI_AXES_MM;
    if (p[0] / a).powi(2) + (p[1] / b).powi(2) > 1.0 {
        return AIR_HU;
    }
    SPHERES
        .iter()
        .rev()
        .find(|s| s.contains(p))
        .map_or(WATER_HU, |s| s.hu)
}

/// Spheres whose HU lies in `[lower, upper]`, largest first: the connected
/// components a threshold segmentation of the phantom should find (the
/// background and body never fall in a range that excludes 0 and -1000).
/// With `lower = 200` this is bone 65.45 ml, then contrast 24.43 ml.
pub fn expected_components(lower: f64, upper: f64) -> Vec<&'static Sphere> {
    let mut found: Vec<&'static Sphere> = SPHERES
        .iter()
        .filter(|s| (lower..=upper).contains(&f64::from(s.hu)))
        .collect();
    found.sort_by(|x, y| y.radius_mm.total_cmp(&x.radius_mm));
    found
}

/// Class of [`Phantom::label_at`]: everything that is not one of the
/// structures below (air outside the body, water, the air sphere).
pub const LABEL_BACKGROUND: u8 = 0;
/// Class of the `bone` sphere.
pub const LABEL_BONE: u8 = 1;
/// Class of the `contrast` sphere.
pub const LABEL_CONTRAST: u8 = 2;
/// Class of the `lesion` sphere.
pub const LABEL_LESION: u8 = 3;

/// The class of a sphere by its name: `bone` 1, `contrast` 2, `lesion` 3,
/// anything else (the `air` sphere) background 0.
pub fn label_of(name: &str) -> u8 {
    match name {
        "bone" => LABEL_BONE,
        "contrast" => LABEL_CONTRAST,
        "lesion" => LABEL_LESION,
        _ => LABEL_BACKGROUND,
    }
}

/// A sphere of a [`Phantom`], owned so that phantoms can be generated and
/// read back from JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhantomSphere {
    pub name: String,
    pub center_mm: [f64; 3],
    pub radius_mm: f64,
    pub hu: i16,
}

impl PhantomSphere {
    /// Whether `p` lies inside or on the sphere (the same test as [`Sphere::contains`]).
    pub fn contains(&self, p: [f64; 3]) -> bool {
        let d2: f64 = (0..3).map(|i| (p[i] - self.center_mm[i]).powi(2)).sum();
        d2 <= self.radius_mm * self.radius_mm
    }
}

impl From<&Sphere> for PhantomSphere {
    fn from(s: &Sphere) -> Self {
        Self {
            name: s.name.to_owned(),
            center_mm: s.center_mm,
            radius_mm: s.radius_mm,
            hu: s.hu,
        }
    }
}

/// A phantom of the same kind as the constants above (air, an elliptic water
/// cylinder along z, spheres inside it), with its own geometry and HU, plus
/// the Gaussian noise a series of it gets (see
/// [`CtSeriesOptions`](super::ct_series::CtSeriesOptions)).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Phantom {
    /// Body semi-axes in mm: x, y (centred on x = y = 0, infinite in z).
    pub body_semi_axes_mm: [f64; 2],
    /// Listed bottom to top: a later sphere overrides an earlier one.
    pub spheres: Vec<PhantomSphere>,
    /// Standard deviation of the per-voxel Gaussian noise, in HU (0: none).
    pub noise_hu: f64,
    /// Seed of the noise: with the voxel index it fixes every voxel's draw.
    pub noise_seed: u64,
}

impl Default for Phantom {
    fn default() -> Self {
        Self::standard()
    }
}

/// Class ranges of [`Phantom::varied`]: name, radius (mm), HU, both inclusive.
const VARIED_CLASSES: [(&str, [f64; 2], [i16; 2]); 4] = [
    ("bone", [15.0, 30.0], [500, 1000]),
    ("contrast", [10.0, 22.0], [200, 400]),
    ("lesion", [8.0, 15.0], [40, 120]),
    ("air", [8.0, 18.0], [-900, -600]),
];
/// Ranges of the body semi-axes of [`Phantom::varied`], mm.
const VARIED_BODY_MM: [[f64; 2]; 2] = [[120.0, 170.0], [90.0, 125.0]];
/// Range of sphere centres along z of [`Phantom::varied`], mm.
const VARIED_Z_MM: [f64; 2] = [-20.0, 20.0];
/// Largest noise sigma of [`Phantom::varied`], HU.
const VARIED_NOISE_MAX_HU: f64 = 10.0;
/// Least gap between a varied sphere and the body outline or another sphere, mm.
const VARIED_GAP_MM: f64 = 4.0;

impl Phantom {
    /// The phantom of the constants: [`BODY_SEMI_AXES_MM`], [`SPHERES`], no noise.
    pub fn standard() -> Self {
        Self {
            body_semi_axes_mm: BODY_SEMI_AXES_MM,
            spheres: SPHERES.iter().map(PhantomSphere::from).collect(),
            noise_hu: 0.0,
            noise_seed: 0,
        }
    }

    /// A phantom drawn from `seed`: body semi-axes in 120–170 × 90–125 mm, and
    /// the four spheres of [`SPHERES`] (same names, same order) with radius,
    /// centre and HU drawn within their class ranges (bone 500–1000 HU, r 15–30;
    /// contrast 200–400, r 10–22; lesion 40–120, r 8–15; air -900…-600, r 8–18),
    /// each at least 4 mm inside the body and 4 mm from the others; centres
    /// along z in -20…20 mm; noise sigma in 0–10 HU. The same seed gives the
    /// same phantom.
    pub fn varied(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed ^ 0x5741_5244_5048_414e); // "WARDPHAN"
        let body = [
            rng.uniform(VARIED_BODY_MM[0][0], VARIED_BODY_MM[0][1]),
            rng.uniform(VARIED_BODY_MM[1][0], VARIED_BODY_MM[1][1]),
        ];
        let mut spheres: Vec<PhantomSphere> = Vec::with_capacity(VARIED_CLASSES.len());
        for (name, [r_lo, r_hi], [hu_lo, hu_hi]) in VARIED_CLASSES {
            let hu = rng.int_in(i64::from(hu_lo), i64::from(hu_hi)) as i16;
            // Rejection sampling: the body's least semi-axis (90 mm) leaves
            // room for all four at their largest, so this ends quickly; the
            // radius is redrawn with the centre so it ends whatever the draw.
            let sphere = loop {
                let radius_mm = rng.uniform(r_lo, r_hi);
                let center_mm = [
                    rng.uniform(-body[0], body[0]),
                    rng.uniform(-body[1], body[1]),
                    rng.uniform(VARIED_Z_MM[0], VARIED_Z_MM[1]),
                ];
                let inside = circle_inside_ellipse(center_mm, radius_mm + VARIED_GAP_MM, body);
                let apart = spheres.iter().all(|o| {
                    let d2: f64 = (0..3)
                        .map(|i| (center_mm[i] - o.center_mm[i]).powi(2))
                        .sum();
                    d2.sqrt() >= radius_mm + o.radius_mm + VARIED_GAP_MM
                });
                if inside && apart {
                    break PhantomSphere {
                        name: name.to_owned(),
                        center_mm,
                        radius_mm,
                        hu,
                    };
                }
            };
            spheres.push(sphere);
        }
        let noise_hu = rng.uniform(0.0, VARIED_NOISE_MAX_HU);
        let noise_seed = rng.next_u64();
        Self {
            body_semi_axes_mm: body,
            spheres,
            noise_hu,
            noise_seed,
        }
    }

    fn in_body(&self, p: [f64; 3]) -> bool {
        let [a, b] = self.body_semi_axes_mm;
        (p[0] / a).powi(2) + (p[1] / b).powi(2) <= 1.0
    }

    /// The topmost sphere holding `p`, if `p` is in the body.
    fn sphere_at(&self, p: [f64; 3]) -> Option<&PhantomSphere> {
        if !self.in_body(p) {
            return None;
        }
        self.spheres.iter().rev().find(|s| s.contains(p))
    }

    /// Noise-free HU at patient-coordinate point `p` (mm); for
    /// [`Phantom::standard`] this equals [`hu_at`] everywhere.
    pub fn hu_at(&self, p: [f64; 3]) -> i16 {
        if !self.in_body(p) {
            return AIR_HU;
        }
        self.sphere_at(p).map_or(WATER_HU, |s| s.hu)
    }

    /// Class at `p`: [`LABEL_BACKGROUND`] 0 (air, water, the air sphere),
    /// [`LABEL_BONE`] 1, [`LABEL_CONTRAST`] 2, [`LABEL_LESION`] 3; where spheres
    /// overlap the later one wins, as in [`Phantom::hu_at`].
    pub fn label_at(&self, p: [f64; 3]) -> u8 {
        self.sphere_at(p)
            .map_or(LABEL_BACKGROUND, |s| label_of(&s.name))
    }

    /// The noise added to voxel `index` of a series: Gaussian, sigma
    /// [`noise_hu`](Self::noise_hu), a pure function of `noise_seed` and `index`.
    pub fn noise_at(&self, index: u64) -> f64 {
        if self.noise_hu <= 0.0 {
            return 0.0;
        }
        let h1 = splitmix64(self.noise_seed ^ splitmix64(index.wrapping_mul(2)));
        let h2 = splitmix64(self.noise_seed ^ splitmix64(index.wrapping_mul(2) + 1));
        // Box-Muller; u1 in (0, 1] keeps the logarithm finite.
        let u1 = ((h1 >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (h2 >> 11) as f64 / (1u64 << 53) as f64;
        self.noise_hu * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Whether the disc of radius `r` around `c` (x, y) lies in the ellipse of
/// semi-axes `body`, checked on 72 points of its outline.
fn circle_inside_ellipse(c: [f64; 3], r: f64, [a, b]: [f64; 2]) -> bool {
    (0..72).all(|k| {
        let t = f64::from(k) / 72.0 * std::f64::consts::TAU;
        let x = c[0] + r * t.cos();
        let y = c[1] + r * t.sin();
        (x / a).powi(2) + (y / b).powi(2) < 1.0
    })
}

/// The splitmix64 finaliser: a well-mixed 64-bit hash of `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small deterministic generator (splitmix64), so phantoms do not depend on
/// a crate's choice of algorithm.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix64(self.0.wrapping_sub(0x9e37_79b9_7f4a_7c15))
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }

    /// Uniform integer in [lo, hi].
    fn int_in(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1) as u64;
        lo + (self.next_u64() % span) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sphere(name: &str) -> &'static Sphere {
        SPHERES.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn hu_regions() {
        for s in SPHERES {
            assert_eq!(hu_at(s.center_mm), s.hu, "centre of {}", s.name);
            let c = s.center_mm;
            // Just inside and just outside the surface along +x.
            assert_eq!(hu_at([c[0] + s.radius_mm - 0.01, c[1], c[2]]), s.hu);
            assert_eq!(hu_at([c[0] + s.radius_mm + 0.01, c[1], c[2]]), WATER_HU);
        }
        assert_eq!(hu_at([0.0, 0.0, 500.0]), WATER_HU);
        assert_eq!(hu_at([149.0, 0.0, 0.0]), WATER_HU);
        assert_eq!(hu_at([151.0, 0.0, 0.0]), AIR_HU);
        assert_eq!(hu_at([0.0, 111.0, 0.0]), AIR_HU);
        assert_eq!(hu_at([-190.0, -190.0, 0.0]), AIR_HU);
    }

    #[test]
    fn spheres_lie_inside_body() {
        let [a, b] = BODY_SEMI_AXES_MM;
        for s in SPHERES {
            // Sample the sphere's equator; every point must be in the body.
            for k in 0..64 {
                let t = k as f64 / 64.0 * std::f64::consts::TAU;
                let x = s.center_mm[0] + s.radius_mm * t.cos();
                let y = s.center_mm[1] + s.radius_mm * t.sin();
                assert!((x / a).powi(2) + (y / b).powi(2) < 1.0, "{}", s.name);
            }
        }
    }

    #[test]
    fn default_threshold_components() {
        let found = expected_components(200.0, 3071.0);
        let names: Vec<_> = found.iter().map(|s| s.name).collect();
        assert_eq!(names, ["bone", "contrast"]);
        assert!((found[0].volume_ml() - 65.45).abs() < 0.005);
        assert!((found[1].volume_ml() - 24.43).abs() < 0.005);
        assert_eq!(
            expected_components(-900.0, -700.0),
            vec![sphere("air")],
            "negative ranges work too"
        );
        assert!(expected_components(800.0, 3071.0).is_empty());
    }

    #[test]
    fn standard_equals_the_constants() {
        let p = Phantom::standard();
        assert_eq!(p.body_semi_axes_mm, BODY_SEMI_AXES_MM);
        assert_eq!(p.noise_hu, 0.0);
        assert_eq!(p.spheres.len(), SPHERES.len());
        for (a, b) in p.spheres.iter().zip(SPHERES) {
            assert_eq!(a, &PhantomSphere::from(b));
        }
        assert_eq!(Phantom::default(), p);
        // Same HU as the free function on a grid through every sphere.
        for i in -40..=40 {
            for j in -30..=30 {
                for z in [-20.0, -5.0, 0.0, 10.0] {
                    let q = [f64::from(i) * 4.9, f64::from(j) * 4.1, z];
                    assert_eq!(p.hu_at(q), hu_at(q), "{q:?}");
                }
            }
        }
        for s in SPHERES {
            assert_eq!(p.label_at(s.center_mm), label_of(s.name));
        }
        assert_eq!(p.label_at(sphere("bone").center_mm), LABEL_BONE);
        assert_eq!(p.label_at(sphere("contrast").center_mm), LABEL_CONTRAST);
        assert_eq!(p.label_at(sphere("lesion").center_mm), LABEL_LESION);
        assert_eq!(p.label_at(sphere("air").center_mm), LABEL_BACKGROUND);
        assert_eq!(p.label_at([0.0, 0.0, 0.0]), LABEL_BACKGROUND);
        assert_eq!(p.label_at([190.0, 0.0, 0.0]), LABEL_BACKGROUND);
        assert_eq!(p.noise_at(12345), 0.0);
    }

    #[test]
    fn varied_is_deterministic_and_seeds_differ() {
        assert_eq!(Phantom::varied(7), Phantom::varied(7));
        assert_ne!(Phantom::varied(7), Phantom::varied(8));
        let p = Phantom::varied(3);
        assert_eq!(p.noise_at(99), Phantom::varied(3).noise_at(99));
        // Through JSON (serde_json's float parsing may differ in the last bit).
        let json = serde_json::to_string(&p).unwrap();
        let back: Phantom = serde_json::from_str(&json).unwrap();
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(1.0);
        assert_eq!(back.noise_seed, p.noise_seed);
        assert!(close(back.noise_hu, p.noise_hu));
        assert!((0..2).all(|i| close(back.body_semi_axes_mm[i], p.body_semi_axes_mm[i])));
        for (x, y) in back.spheres.iter().zip(&p.spheres) {
            assert_eq!((&x.name, x.hu), (&y.name, y.hu));
            assert!(close(x.radius_mm, y.radius_mm));
            assert!((0..3).all(|i| close(x.center_mm[i], y.center_mm[i])));
        }
    }

    #[test]
    fn varied_stays_in_ranges_inside_and_apart() {
        let names: Vec<&str> = SPHERES.iter().map(|s| s.name).collect();
        for seed in 0..300u64 {
            let p = Phantom::varied(seed);
            let [a, b] = p.body_semi_axes_mm;
            assert!(
                (120.0..=170.0).contains(&a) && (90.0..=125.0).contains(&b),
                "{seed}"
            );
            assert!((0.0..=10.0).contains(&p.noise_hu), "{seed}");
            let got: Vec<&str> = p.spheres.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(got, names);
            for s in &p.spheres {
                let (r, hu) = match s.name.as_str() {
                    "bone" => ((15.0, 30.0), (500, 1000)),
                    "contrast" => ((10.0, 22.0), (200, 400)),
                    "lesion" => ((8.0, 15.0), (40, 120)),
                    _ => ((8.0, 18.0), (-900, -600)),
                };
                assert!((r.0..=r.1).contains(&s.radius_mm), "{seed} {s:?}");
                assert!((hu.0..=hu.1).contains(&s.hu), "{seed} {s:?}");
                assert!((-20.0..=20.0).contains(&s.center_mm[2]), "{seed} {s:?}");
                for k in 0..256 {
                    let t = f64::from(k) / 256.0 * std::f64::consts::TAU;
                    let x = s.center_mm[0] + s.radius_mm * t.cos();
                    let y = s.center_mm[1] + s.radius_mm * t.sin();
                    assert!((x / a).powi(2) + (y / b).powi(2) < 1.0, "{seed} {s:?}");
                }
                // The centre carries the sphere's own HU and class.
                assert_eq!(p.hu_at(s.center_mm), s.hu);
                assert_eq!(p.label_at(s.center_mm), label_of(&s.name));
            }
            for (i, s) in p.spheres.iter().enumerate() {
                for o in &p.spheres[i + 1..] {
                    let d: f64 = (0..3)
                        .map(|k| (s.center_mm[k] - o.center_mm[k]).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    assert!(d > s.radius_mm + o.radius_mm, "{seed}: {s:?} {o:?}");
                }
            }
        }
    }

    #[test]
    fn noise_has_the_requested_spread() {
        let p = Phantom {
            noise_hu: 8.0,
            noise_seed: 42,
            ..Phantom::standard()
        };
        let n = 20_000u64;
        let draws: Vec<f64> = (0..n).map(|i| p.noise_at(i)).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.3, "{mean}");
        assert!((var.sqrt() - 8.0).abs() < 0.3, "{}", var.sqrt());
        assert_eq!(p.noise_at(5), p.noise_at(5));
        assert_ne!(p.noise_at(5), p.noise_at(6));
    }
}
