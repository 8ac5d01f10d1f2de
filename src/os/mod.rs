//! Operating-system glue: socket I/O, and the few system calls std does not wrap.
//!
//! nginx: src/os/unix/.

pub mod io;
// The one module allowed `unsafe` (the crate denies it in src/lib.rs): every call std does not
// wrap sits behind a safe function there.
#[allow(unsafe_code)]
pub mod sys;
