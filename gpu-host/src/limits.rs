//! A launch's shape checked against the device before it reaches the driver: a stage gets
//! a clear error naming the limit, not a driver error or a hung device.

/// Grid or block dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dim3 {
    pub x: u32,
    pub y: u32,
    pub z: u32,
}

/// What a device allows in one launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_threads_per_block: u32,
    pub max_block: [u32; 3],
    pub max_grid: [u32; 3],
    pub max_shared_bytes: u32,
}

/// Checks a launch's grid, block and dynamic shared memory against `limits`.
pub fn check_launch(grid: Dim3, block: Dim3, shared: u32, limits: &Limits) -> Result<(), String> {
    for (what, d, max) in [
        ("grid", grid, limits.max_grid),
        ("block", block, limits.max_block),
    ] {
        for (axis, v, m) in [("x", d.x, max[0]), ("y", d.y, max[1]), ("z", d.z, max[2])] {
            if v == 0 {
                return Err(format!("{what}.{axis} is 0"));
            }
            if v > m {
                return Err(format!("{what}.{axis} = {v} is over the device's {m}"));
            }
        }
    }
    let threads = u64::from(block.x) * u64::from(block.y) * u64::from(block.z);
    if threads > u64::from(limits.max_threads_per_block) {
        return Err(format!(
            "a block of {threads} threads is over the device's {} per block",
            limits.max_threads_per_block
        ));
    }
    if shared > limits.max_shared_bytes {
        return Err(format!(
            "{shared} bytes of shared memory are over the device's {} per block",
            limits.max_shared_bytes
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a device: the limits NVIDIA documents for compute capability 9.0, to test the
    /// checks on a machine without a GPU.
    fn documented_sm90() -> Limits {
        Limits {
            max_threads_per_block: 1024,
            max_block: [1024, 1024, 64],
            max_grid: [2_147_483_647, 65535, 65535],
            max_shared_bytes: 49152,
        }
    }

    fn d(x: u32, y: u32, z: u32) -> Dim3 {
        Dim3 { x, y, z }
    }

    #[test]
    fn launches_within_the_limits_pass() {
        let l = documented_sm90();
        assert!(check_launch(d(1024, 1, 1), d(256, 1, 1), 0, &l).is_ok());
        assert!(check_launch(d(1, 1, 1), d(32, 32, 1), 49152, &l).is_ok());
    }

    #[test]
    fn zero_oversized_and_too_many_threads_are_named() {
        let l = documented_sm90();
        assert_eq!(
            check_launch(d(0, 1, 1), d(1, 1, 1), 0, &l).unwrap_err(),
            "grid.x is 0"
        );
        assert_eq!(
            check_launch(d(1, 70000, 1), d(1, 1, 1), 0, &l).unwrap_err(),
            "grid.y = 70000 is over the device's 65535"
        );
        assert_eq!(
            check_launch(d(1, 1, 1), d(64, 32, 1), 0, &l).unwrap_err(),
            "a block of 2048 threads is over the device's 1024 per block"
        );
        assert!(check_launch(d(1, 1, 1), d(1, 1, 1), 49153, &l)
            .unwrap_err()
            .contains("shared memory"));
    }
}
