//! Hot operations that the CPU backend runs slowly, written as burn backend
//! extensions with hand-written backward passes. Each falls back to the plain
//! burn operation on other backends, and is tested against it.

mod gelu;

pub use gelu::gelu;
