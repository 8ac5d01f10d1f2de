//! Operating-system glue: the system calls the standard library does not wrap.
//!
//! nginx: src/os/unix/.

// The one module allowed `unsafe` (the crate denies it in src/lib.rs): every call std does not
// wrap sits behind a safe function there.
#[allow(unsafe_code)]
pub mod sys;

pub mod resolve;
