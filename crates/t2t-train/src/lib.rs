//! Training T2T-ViT models from scratch as the paper and timm do: AdamW with
//! timm's parameter groups, warmup + cosine + cooldown per iteration, label
//! smoothing and mixup targets, global-norm clipping, gradient accumulation,
//! model EMA, checkpoints that resume exactly.

pub mod grads;
pub mod loss;
pub mod optim;
pub mod schedule;
