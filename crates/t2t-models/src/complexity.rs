//! Parameter and multiply-add counts.
//!
//! Two MAC conventions are reported, because the literature mixes them:
//! - **fvcore** ([`Macs::total`]): every Linear and convolution, every matmul
//!   and einsum (attention scores, attention-weighted values, the Performer's
//!   feature maps), and LayerNorm at 5 per element. This is what fvcore counts
//!   on the official PyTorch code and what the T2T-ViT README quotes.
//! - **weights only** ([`Macs::without_attention_matmuls`]): Linear and
//!   convolution layers only; no matmul or einsum between activations, no norms.
//!   This is the count of timm's tables and of the FViT paper.

use std::iter::Sum;
use std::ops::{Add, Mul};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use serde::Serialize;

/// Multiply-adds per image, split by the kind of operation that does them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Macs {
    /// Linear and convolution layers (activation × weight).
    pub layers: u64,
    /// Matmuls and einsums: attention and the Performer kernel maps.
    pub matmuls: u64,
    /// LayerNorm, counted as fvcore does.
    pub norms: u64,
}

impl Macs {
    pub fn layers(n: u64) -> Self {
        Self {
            layers: n,
            ..Self::default()
        }
    }

    pub fn matmuls(n: u64) -> Self {
        Self {
            matmuls: n,
            ..Self::default()
        }
    }

    pub fn norms(n: u64) -> Self {
        Self {
            norms: n,
            ..Self::default()
        }
    }

    /// The fvcore convention.
    pub fn total(&self) -> u64 {
        self.layers + self.matmuls + self.norms
    }

    /// The weights-only convention.
    pub fn without_attention_matmuls(&self) -> u64 {
        self.layers
    }
}

impl Add for Macs {
    type Output = Macs;
    fn add(self, other: Macs) -> Macs {
        Macs {
            layers: self.layers + other.layers,
            matmuls: self.matmuls + other.matmuls,
            norms: self.norms + other.norms,
        }
    }
}

impl Mul<u64> for Macs {
    type Output = Macs;
    fn mul(self, times: u64) -> Macs {
        Macs {
            layers: self.layers * times,
            matmuls: self.matmuls * times,
            norms: self.norms * times,
        }
    }
}

impl Sum for Macs {
    fn sum<I: Iterator<Item = Macs>>(iter: I) -> Macs {
        iter.fold(Macs::default(), Add::add)
    }
}

/// Parameter counts: every parameter tensor, and those that are trained
/// (the fixed position table and the Performer's random features are not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParamCounts {
    pub all: usize,
    pub trainable: usize,
}

/// Counts parameters. The trainable count needs a model built on an autodiff
/// device, where every tensor knows whether it requires a gradient.
pub fn param_counts<M: Module>(model: &M) -> ParamCounts {
    struct Counter(ParamCounts);
    impl ModuleVisitor for Counter {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let n = value.shape().num_elements();
            self.0.all += n;
            if value.is_require_grad() {
                self.0.trainable += n;
            }
        }
    }
    let mut counter = Counter(ParamCounts::default());
    model.visit(&mut counter);
    counter.0
}
