//! Evaluation metrics and the per-epoch record written to `summary.csv`.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::distributed::Collective;

/// Top-1 / top-5 / loss accumulated over an evaluation pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    pub images: usize,
    /// Samples that could not be read and were left out of `images`.
    #[serde(default)]
    pub unreadable: usize,
}

/// Running sums for [`EvalMetrics`].
#[derive(Default)]
pub struct EvalAccumulator {
    loss_sum: f64,
    top1_hits: usize,
    top5_hits: usize,
    images: usize,
}

impl EvalAccumulator {
    /// Adds a batch: its mean loss and its logits `[B, C]` against `labels`.
    pub fn add(&mut self, mean_loss: f64, logits: Tensor<2>, labels: &[usize]) {
        let [batch, classes] = logits.dims();
        let values: Vec<f32> = logits.into_data().try_to_vec().expect("f32 logits");
        for (row, &label) in values.chunks(classes).zip(labels) {
            let rank = rank_of(row, label);
            self.top1_hits += usize::from(rank < 1);
            self.top5_hits += usize::from(rank < 5);
        }
        self.loss_sum += mean_loss * batch as f64;
        self.images += batch;
    }

    /// The sums over every process of a data-parallel evaluation.
    pub fn summed_over(self, processes: &dyn Collective) -> Self {
        let mut sums = [
            self.loss_sum,
            self.top1_hits as f64,
            self.top5_hits as f64,
            self.images as f64,
        ];
        processes.sum_f64(&mut sums);
        Self {
            loss_sum: sums[0],
            top1_hits: sums[1] as usize,
            top5_hits: sums[2] as usize,
            images: sums[3] as usize,
        }
    }

    pub fn finish(&self) -> EvalMetrics {
        let n = self.images.max(1) as f64;
        EvalMetrics {
            loss: self.loss_sum / n,
            top1: 100.0 * self.top1_hits as f64 / n,
            top5: 100.0 * self.top5_hits as f64 / n,
            images: self.images,
            unreadable: 0,
        }
    }
}

/// How many classes score strictly higher than `label` (0 = top-1).
fn rank_of(scores: &[f32], label: usize) -> usize {
    let target = scores[label];
    scores.iter().filter(|&&s| s > target).count()
}

/// One row of `summary.csv`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub eval: EvalMetrics,
    pub lr: f64,
    pub ema: Option<EvalMetrics>,
}

impl EpochRow {
    /// timm's column order, `epoch,train_loss,eval_loss,eval_top1,eval_top5,lr`,
    /// then the same eval columns for the EMA weights.
    pub const HEADER: &'static str =
        "epoch,train_loss,eval_loss,eval_top1,eval_top5,lr,ema_eval_loss,ema_eval_top1,ema_eval_top5";

    pub fn csv(&self) -> String {
        let ema = match &self.ema {
            Some(e) => format!("{},{},{}", e.loss, e.top1, e.top5),
            None => ",,".to_string(),
        };
        format!(
            "{},{},{},{},{},{},{ema}",
            self.epoch, self.train_loss, self.eval.loss, self.eval.top1, self.eval.top5, self.lr
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn top_k_counts_strictly_better_classes() {
        let logits = Tensor::<2>::from_data(
            TensorData::new(
                vec![
                    0.9f32, 0.1, 0.0, 0.0, 0.0, 0.0, // label 0: rank 0
                    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, // label 0: rank 5 (not top-5)
                    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, // label 2: rank 3 (top-5)
                ],
                [3, 6],
            ),
            &t2t_models::device::for_tests(),
        );
        let mut acc = EvalAccumulator::default();
        acc.add(2.0, logits, &[0, 0, 2]);
        let m = acc.finish();
        assert_eq!(m.images, 3);
        assert!((m.top1 - 100.0 / 3.0).abs() < 1e-9);
        assert!((m.top5 - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(m.loss, 2.0);
    }
}
