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
}
