//! Where a model runs: the CPU backend with the fused kernels, or a GPU
//! through burn's wgpu backend on Vulkan, over the same model code.
//!
//! The GPU kernels are compiled from WGSL (through naga) rather than from
//! SPIR-V: Mesa's software Vulkan driver (lavapipe), which lets machines
//! without a GPU run the GPU path, crashes on the SPIR-V of burn's matrix
//! product while creating its pipeline; the WGSL of the same kernel runs.

use std::sync::OnceLock;

use burn::tensor::Device;

use crate::ModelError;

/// The kinds of device a command can run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    /// The CPU backend.
    #[default]
    Cpu,
    /// The first Vulkan adapter, through wgpu (needs the `gpu` feature).
    Gpu,
}

impl Target {
    /// `cpu` or `gpu`, as `--device` and `T2T_TEST_DEVICE` spell them.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cpu" => Some(Self::Cpu),
            "gpu" => Some(Self::Gpu),
            _ => None,
        }
    }
}

/// An opened device and what it is, for reports.
#[derive(Clone, Debug)]
pub struct Placement {
    pub device: Device,
    /// `flex` (the CPU backend) or `wgpu`.
    pub backend: &'static str,
    /// The processor or adapter, as its driver names it.
    pub adapter: String,
}

/// Opens the device of `target`. A GPU is set up once per process and
/// shared by every later call; where there is none, the error says why.
pub fn open(target: Target) -> Result<Placement, ModelError> {
    match target {
        Target::Cpu => Ok(Placement {
            device: Device::flex(),
            backend: "flex",
            adapter: "cpu".into(),
        }),
        Target::Gpu => {
            static GPU: OnceLock<Result<Placement, String>> = OnceLock::new();
            GPU.get_or_init(open_gpu)
                .clone()
                .map_err(ModelError::Device)
        }
    }
}

#[cfg(feature = "gpu")]
fn open_gpu() -> Result<Placement, String> {
    use burn::tensor::wgpu::WgpuBackend;

    let (device, setup) = Device::wgpu_options()
        .graphics_api(WgpuBackend::Vulkan)
        .init_with_setup()
        .map_err(|error| format!("--device gpu: no Vulkan device could be opened: {error}"))?;
    let info = setup.adapter.get_info();
    Ok(Placement {
        device,
        backend: "wgpu",
        adapter: format!(
            "{} ({}, {:?})",
            info.name, info.driver_info, info.device_type
        ),
    })
}

#[cfg(not(feature = "gpu"))]
fn open_gpu() -> Result<Placement, String> {
    Err("--device gpu: this t2t was built without the gpu feature \
         (cargo build --release --features t2t/gpu)"
        .into())
}

/// The device that tests run on: `T2T_TEST_DEVICE=gpu` moves them to the
/// GPU (a build with the `gpu` feature), otherwise the CPU backend.
pub fn for_tests() -> Device {
    let name = std::env::var("T2T_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    let target = Target::parse(&name)
        .unwrap_or_else(|| panic!("T2T_TEST_DEVICE={name}: must be cpu or gpu"));
    match open(target) {
        Ok(placement) => placement.device,
        Err(error) => panic!("T2T_TEST_DEVICE={name}: {error}"),
    }
}

/// The stack of the thread that runs a command: the size a main thread gets.
const COMMAND_STACK_BYTES: usize = 8 << 20;

/// Runs `command` on a thread of a pool of `threads` CPU compute threads
/// (`None`: rayon's default, `RAYON_NUM_THREADS` or every core). Each
/// parallel kernel and product then starts on one of the pool's own
/// threads, where the others take their share of it straight away; started
/// from outside the pool, each would hand its work over, wake a thread and
/// sleep until it ended, thousands of times a second at batch 1.
pub fn on_compute_threads<R: Send>(
    threads: Option<usize>,
    command: impl FnOnce() -> R + Send,
) -> Result<R, ModelError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .stack_size(COMMAND_STACK_BYTES)
        .build()
        .map_err(|error| {
            ModelError::Device(format!("cannot start the compute threads: {error}"))
        })?;
    Ok(pool.install(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_runs_on_a_thread_of_a_pool_of_the_size_asked_for() {
        let (index, threads) = on_compute_threads(Some(3), || {
            (rayon::current_thread_index(), rayon::current_num_threads())
        })
        .unwrap();
        assert!(index.is_some_and(|i| i < 3), "ran on {index:?}");
        assert_eq!(threads, 3);
        assert_eq!(rayon::current_thread_index(), None);
    }
}
