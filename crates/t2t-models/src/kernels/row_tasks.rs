//! Row-wise kernels (LayerNorm, Linear) split their rows into parallel tasks
//! whose number depends on the shape alone, never on the number of cores, and
//! add the tasks' partial sums (weight and bias gradients) in task order: the
//! results are the same however the tasks were scheduled, which exact resume
//! relies on. With many rows, each task's products run on its own core, over
//! its own rows, so that a weight gradient is spread over the cores along the
//! rows it sums over; with few, there is one task, and its products and
//! row-wise passes each spread over every core.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::matrix::Threads;

/// Tasks a row-wise product splits its rows into, when there are enough rows.
const TASKS: usize = 16;
/// Fewest rows per task: below this a task's products cost more to set up
/// (packing the weight) than splitting saves.
const MIN_ROWS: usize = 256;

/// How a row-wise product kernel splits `rows` rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Split {
    /// Rows per task.
    pub rows: usize,
    /// How each task's products run: with few rows there is one task, and
    /// its products spread over the cores themselves.
    pub threads: Threads,
}

impl Split {
    pub fn of(rows: usize) -> Self {
        if rows < TASKS * MIN_ROWS {
            Self {
                rows: rows.max(1),
                threads: Threads::All,
            }
        } else {
            Self {
                rows: rows.div_ceil(TASKS),
                threads: Threads::Calling,
            }
        }
    }
}

/// `rows` rows as wide as `start`, filled by parallel tasks of `task_rows`
/// rows each: a task's rows start as copies of `start`, then `fill` gets the
/// task's index and its rows. Returns the rows and what each task returned,
/// in task order. Each task initialises its own rows, so the buffer is
/// neither zeroed first nor written by one core alone.
pub(super) fn filled_rows<R: Send>(
    rows: usize,
    start: &[f32],
    task_rows: usize,
    fill: impl Fn(usize, &mut [f32]) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    let width = start.len();
    let len = rows * width;
    if len == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut values = Vec::with_capacity(len);
    let uninit = &mut values.spare_capacity_mut()[..len];
    let results = if task_rows >= rows {
        // One task, whose products spread over the cores themselves: its
        // rows are initialised by all cores too.
        uninit
            .par_chunks_mut(INIT_ROWS * width)
            .for_each(|piece| initialise(piece, start));
        // SAFETY: the pieces cover `uninit`, and each was initialised.
        vec![fill(0, unsafe { assume_init(uninit) })]
    } else {
        uninit
            .par_chunks_mut(task_rows * width)
            .enumerate()
            .map(|(task, piece)| {
                initialise(piece, start);
                // SAFETY: `piece` was initialised just above.
                fill(task, unsafe { assume_init(piece) })
            })
            .collect()
    };
    // SAFETY: the tasks initialised all `len` elements (the chunks cover them).
    unsafe { values.set_len(len) };
    (values, results)
}

/// Rows per parallel piece when one task's rows are initialised by all
/// cores.
const INIT_ROWS: usize = 64;

/// Writes `start` into every row of `piece`.
fn initialise(piece: &mut [MaybeUninit<f32>], start: &[f32]) {
    for row in piece.chunks_exact_mut(start.len()) {
        for (slot, &value) in row.iter_mut().zip(start) {
            slot.write(value);
        }
    }
}

/// `piece` as initialised values.
///
/// # Safety
/// Every element of `piece` must have been written.
unsafe fn assume_init(piece: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: f32 has the layout of MaybeUninit<f32>, and the caller
    // vouches that each element is initialised.
    unsafe { &mut *(piece as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// The rows of `values` (each `width` wide) that task `task` works on.
pub(super) fn task_slice(values: &[f32], width: usize, task: usize, task_rows: usize) -> &[f32] {
    let start = (task * task_rows * width).min(values.len());
    let end = (start + task_rows * width).min(values.len());
    &values[start..end]
}

/// The element-wise sums of the tasks' partial results, added in task order;
/// zeros of `lengths` when there were no tasks.
pub(super) fn sum_in_order<const N: usize>(
    partials: Vec<[Vec<f32>; N]>,
    lengths: [usize; N],
) -> [Vec<f32>; N] {
    partials
        .into_iter()
        .reduce(|mut total, part| {
            for (total, part) in total.iter_mut().zip(part) {
                total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
            }
            total
        })
        .unwrap_or_else(|| lengths.map(|len| vec![0.0; len]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_starts_as_given_and_tasks_report_in_order() {
        let rows = 5000;
        let task_rows = Split::of(rows).rows;
        let (values, firsts) = filled_rows(rows, &[1.0, 2.0], task_rows, |task, piece| {
            piece[0] += task as f32;
            (task, piece.len() / 2)
        });
        assert_eq!(values.len(), 2 * rows);
        assert_eq!(firsts.len(), rows.div_ceil(task_rows));
        for (i, &(task, task_len)) in firsts.iter().enumerate() {
            assert_eq!(task, i);
            assert_eq!(task_len, task_rows.min(rows - i * task_rows));
            let first = i * task_rows * 2;
            assert_eq!(values[first..first + 2], [1.0 + i as f32, 2.0]);
        }
        assert!(values.chunks(2).all(|row| row[1] == 2.0));
    }

    #[test]
    fn one_task_gets_every_row_initialised() {
        // More rows than one parallel piece of initialisation, and a ragged last piece.
        let rows = 3 * INIT_ROWS + 5;
        let (values, results) = filled_rows(rows, &[4.0, 5.0, 6.0], rows, |task, all| {
            let seen = all.to_vec();
            all[0] = -1.0;
            (task, seen)
        });
        assert_eq!(results.len(), 1);
        let (task, seen) = &results[0];
        assert_eq!(*task, 0);
        assert_eq!(seen.len(), 3 * rows);
        assert!(seen.chunks(3).all(|row| row == [4.0, 5.0, 6.0]));
        assert_eq!(values[..4], [-1.0, 5.0, 6.0, 4.0]);
    }

    #[test]
    fn many_rows_split_into_tasks_and_few_stay_whole() {
        let many = Split::of(16 * 300);
        assert_eq!((many.rows, many.threads), (300, Threads::Calling));
        let few = Split::of(197);
        assert_eq!((few.rows, few.threads), (197, Threads::All));
        assert_eq!(Split::of(0).rows, 1);
    }

    #[test]
    fn partial_sums_add_up_and_empty_work_gives_zeros() {
        let parts = vec![[vec![1.0, 2.0], vec![3.0]], [vec![10.0, 20.0], vec![30.0]]];
        assert_eq!(sum_in_order(parts, [2, 1]), [vec![11.0, 22.0], vec![33.0]]);
        assert_eq!(sum_in_order::<1>(Vec::new(), [3]), [vec![0.0; 3]]);
        assert_eq!(filled_rows(0, &[1.0], 64, |_, _| ()).0, Vec::<f32>::new());
    }
}
