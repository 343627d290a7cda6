//! Which vector instruction set the kernels run on.
//!
//! The kernels take the widest one the CPU has, unless `T2T_SIMD=avx2` pins
//! them to AVX2 + FMA, so that a machine with AVX-512 can measure what a
//! machine without it gets. The matrix products (ours and the CPU backend's,
//! both the `gemm` crate) choose at build time: built without the `avx512`
//! feature they never use AVX-512. The CPU backend's element-wise loops
//! (`macerator`) always take the widest set and have no switch.

use std::sync::OnceLock;

/// The environment variable that pins the kernels' instruction set.
pub const SIMD_VARIABLE: &str = "T2T_SIMD";

/// The instruction sets the kernels can be held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdLimit {
    /// The widest the CPU has.
    Native,
    /// AVX2 + FMA at most.
    Avx2,
}

impl SimdLimit {
    /// The limit `T2T_SIMD` asks for: unset or `native`, or `avx2`.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var_os(SIMD_VARIABLE).as_deref())
    }

    fn parse(value: Option<&std::ffi::OsStr>) -> Result<Self, String> {
        match value.map(|v| v.to_str()) {
            None | Some(Some("native")) => Ok(Self::Native),
            Some(Some("avx2")) => Ok(Self::Avx2),
            Some(_) => Err(format!(
                "{SIMD_VARIABLE}={:?}: must be native or avx2",
                value.unwrap_or_default()
            )),
        }
    }
}

/// The limit in force: read once; a value that `from_env` refuses (the
/// command line refuses it before any kernel runs) counts as `native`.
fn limit() -> SimdLimit {
    static LIMIT: OnceLock<SimdLimit> = OnceLock::new();
    *LIMIT.get_or_init(|| SimdLimit::from_env().unwrap_or(SimdLimit::Native))
}

/// The instruction set the kernels' loops are compiled for at this call:
/// AVX-512 only when built with the `avx512` feature and not pinned.
#[inline(always)]
pub(crate) fn arch() -> pulp::Arch {
    #[cfg(target_arch = "x86_64")]
    if !cfg!(feature = "avx512") || limit() == SimdLimit::Avx2 {
        if let Some(avx2) = pulp::x86::V3::try_new() {
            return pulp::Arch::V3(avx2);
        }
    }
    pulp::Arch::new()
}

/// The name of what the kernels run on: `avx512`, `avx2` or `scalar` (on
/// x86-64), for reports.
pub fn kernel_instruction_set() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        match arch() {
            #[cfg(feature = "avx512")]
            pulp::Arch::V4(_) => "avx512",
            pulp::Arch::V3(_) => "avx2",
            _ => "scalar",
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "native"
    }
}

/// The name of what the matrix products run on, decided at build time.
pub fn matrix_instruction_set() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(feature = "avx512") && std::arch::is_x86_feature_detected!("avx512f") {
            "avx512"
        } else if std::arch::is_x86_feature_detected!("fma") {
            "avx2"
        } else {
            "scalar"
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "native"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::ffi::OsStr;

    #[test]
    fn the_variable_takes_two_values_and_names_itself_otherwise() {
        assert_eq!(SimdLimit::parse(None), Ok(SimdLimit::Native));
        assert_eq!(
            SimdLimit::parse(Some(OsStr::new("native"))),
            Ok(SimdLimit::Native)
        );
        assert_eq!(
            SimdLimit::parse(Some(OsStr::new("avx2"))),
            Ok(SimdLimit::Avx2)
        );
        let error = SimdLimit::parse(Some(OsStr::new("AVX512"))).unwrap_err();
        assert_eq!(error, "T2T_SIMD=\"AVX512\": must be native or avx2");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_kernels_run_the_widest_set_the_build_and_the_limit_allow() {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        let expected = if avx512 && cfg!(feature = "avx512") && limit() == SimdLimit::Native {
            "avx512"
        } else if avx2 {
            "avx2"
        } else {
            "scalar"
        };
        assert_eq!(kernel_instruction_set(), expected);
    }
}
