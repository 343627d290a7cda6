//! Data parallelism: what a training or evaluation run needs from the
//! processes that share it. A process that runs alone is [`SingleProcess`];
//! processes started by `mpirun` (with the `mpi` feature) are an MPI world.
//!
//! Every process computes the gradients of its shard of the batch; their
//! average, summed in one fixed order and handed to every process bit for
//! bit, is what clipping, the optimizer and the EMA see. So the parameters
//! stay identical everywhere, which [`check_in_step`] verifies.

use std::rc::Rc;

use burn::module::Module;
use t2t_models::weights::{load_state_dict, state_dict, StateDict};

use crate::TrainError;

/// The processes of one run, seen from one of them.
pub trait Collective {
    /// This process's place, `0..world_size()`; process 0 leads.
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Replaces `values` by their element-wise sum over the processes, the
    /// same bits on every process.
    fn sum_f32(&self, values: &mut [f32]);
    fn sum_f64(&self, values: &mut [f64]);
    /// Replaces `values` by those of process 0.
    fn broadcast_f32(&self, values: &mut [f32]);
    /// `value` of every process, in rank order.
    fn gather_u64(&self, value: u64) -> Vec<u64>;
    /// Waits until every process has arrived.
    fn barrier(&self);
    /// Ends every process of the run at once, with exit code `code`.
    fn abort(&self, code: i32) -> !;

    /// Whether this process writes the run's files and talks to the user.
    fn leads(&self) -> bool {
        self.rank() == 0
    }
}

/// A run of one process: every collective operation is the identity.
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn sum_f32(&self, _: &mut [f32]) {}
    fn sum_f64(&self, _: &mut [f64]) {}
    fn broadcast_f32(&self, _: &mut [f32]) {}
    fn gather_u64(&self, value: u64) -> Vec<u64> {
        vec![value]
    }
    fn barrier(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The environment variables by which launchers tell a process its world.
const WORLD_SIZE_VARIABLES: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"];

/// How many processes the launcher started, when one did.
fn launched_world_size() -> Option<usize> {
    WORLD_SIZE_VARIABLES
        .iter()
        .find_map(|name| std::env::var(name).ok()?.parse().ok())
}

/// How many compute threads this process runs: `RAYON_NUM_THREADS` when
/// set; otherwise the processes `mpirun` started on this machine share the
/// cores this one may run on (all of the machine's under `mpirun --bind-to
/// none`), and a process that runs alone has them all.
pub fn compute_threads() -> usize {
    let requested = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let on_this_machine = std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    requested.unwrap_or((cores / on_this_machine.max(1)).max(1))
}

/// Joins the other processes of the run when `mpirun` started this one;
/// otherwise this process runs alone.
pub fn join() -> Result<Rc<dyn Collective>, TrainError> {
    match launched_world_size() {
        None | Some(1) => Ok(Rc::new(SingleProcess)),
        Some(size) => join_launched(size),
    }
}

#[cfg(feature = "mpi")]
fn join_launched(_: usize) -> Result<Rc<dyn Collective>, TrainError> {
    Ok(Rc::new(mpi_world::MpiWorld::join()?))
}

#[cfg(not(feature = "mpi"))]
fn join_launched(size: usize) -> Result<Rc<dyn Collective>, TrainError> {
    Err(TrainError::Config(format!(
        "started by mpirun as one of {size} processes, but this t2t was built without MPI; \
         build it with `cargo build --release --features mpi`"
    )))
}

/// Process 0's parameters, on every process.
pub fn broadcast_weights<M: Module>(model: M, processes: &dyn Collective) -> Result<M, TrainError> {
    if processes.world_size() == 1 {
        return Ok(model);
    }
    let mut dict = state_dict(&model);
    let mut flat: Vec<f32> = dict
        .tensors
        .values()
        .flat_map(|t| t.values.iter().copied())
        .collect();
    processes.broadcast_f32(&mut flat);
    let mut rest = flat.as_slice();
    for tensor in dict.tensors.values_mut() {
        let (mine, others) = rest.split_at(tensor.values.len());
        tensor.values.copy_from_slice(mine);
        rest = others;
    }
    Ok(load_state_dict(model, &dict, "the weights of process 0")?)
}

/// FNV-1a over the keys and the bits of every parameter, in key order.
pub fn checksum(dict: &StateDict) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (key, tensor) in &dict.tensors {
        feed(key.as_bytes());
        for value in &tensor.values {
            feed(&value.to_bits().to_le_bytes());
        }
    }
    hash
}

/// The checksums of `models`' parameters on every process, in rank order;
/// an error when they differ, which means the processes no longer train
/// one model.
pub fn check_in_step<M: Module>(
    models: &[&M],
    processes: &dyn Collective,
    when: &str,
) -> Result<Vec<u64>, TrainError> {
    let mine = models.iter().fold(0u64, |acc, model| {
        acc.rotate_left(1) ^ checksum(&state_dict(*model))
    });
    let all = processes.gather_u64(mine);
    if all.iter().any(|&c| c != all[0]) {
        let listed: Vec<String> = all.iter().map(|c| format!("{c:016x}")).collect();
        return Err(TrainError::Diverged(format!(
            "the processes' parameters differ {when} (checksums by rank: {}); stopped",
            listed.join(", ")
        )));
    }
    Ok(all)
}

#[cfg(feature = "mpi")]
mod mpi_world {
    use mpi::collective::SystemOperation;
    use mpi::datatype::Equivalence;
    use mpi::environment::{Threading, Universe};
    use mpi::topology::{Communicator, SimpleCommunicator};
    use mpi::traits::*;

    use super::Collective;
    use crate::TrainError;

    /// The processes `mpirun` started. Only the thread that joined calls
    /// MPI (`MPI_THREAD_FUNNELED`); the kernels' parallel work never does.
    pub struct MpiWorld {
        world: SimpleCommunicator,
        _universe: Universe,
    }

    impl MpiWorld {
        pub fn join() -> Result<Self, TrainError> {
            let (universe, threading) = mpi::initialize_with_threading(Threading::Funneled)
                .ok_or_else(|| TrainError::Config("MPI was initialised twice".into()))?;
            if threading < Threading::Funneled {
                return Err(TrainError::Config(format!(
                    "this MPI library offers thread support {threading:?}; t2t needs at least Funneled"
                )));
            }
            Ok(Self {
                world: universe.world(),
                _universe: universe,
            })
        }

        /// A sum reduced at process 0 and broadcast from there, so that
        /// every process holds the same bits whatever algorithm MPI picks.
        fn sum<T: Equivalence + Copy>(&self, values: &mut [T]) {
            let root = self.world.process_at_rank(0);
            if self.world.rank() == 0 {
                let mine = values.to_vec();
                root.reduce_into_root(&mine[..], values, SystemOperation::sum());
            } else {
                root.reduce_into(&values[..], SystemOperation::sum());
            }
            root.broadcast_into(values);
        }
    }

    impl Collective for MpiWorld {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn world_size(&self) -> usize {
            self.world.size() as usize
        }
        fn sum_f32(&self, values: &mut [f32]) {
            self.sum(values)
        }
        fn sum_f64(&self, values: &mut [f64]) {
            self.sum(values)
        }
        fn broadcast_f32(&self, values: &mut [f32]) {
            self.world.process_at_rank(0).broadcast_into(values)
        }
        fn gather_u64(&self, value: u64) -> Vec<u64> {
            let mut all = vec![0u64; self.world_size()];
            self.world.all_gather_into(&value, &mut all[..]);
            all
        }
        fn barrier(&self) {
            self.world.barrier()
        }
        fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
    }
}
