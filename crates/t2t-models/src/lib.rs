//! The T2T-ViT model family on burn: layers, models, the registry of named
//! configurations, complexity counting and weights in the official PyTorch layout.
//!
//! Every module's field path mirrors the official `state_dict()` key, so that
//! loading and saving need no remapping table beyond a few renames
//! (see [`weights`]).

pub mod complexity;
pub mod device;
pub mod error;
pub mod import;
pub mod inspect;
pub mod kernels;
pub mod kwargs;
pub mod layers;
pub mod models;
pub mod onnx;
pub mod parity;
pub mod registry;
pub mod taps;
pub mod weights;

pub use error::ModelError;
pub use kwargs::ModelKwarg;
pub use models::Model;
pub use registry::{ModelConfig, ModelSpec};
pub use taps::Taps;
