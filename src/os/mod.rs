//! Operating-system glue: socket I/O and the process model.
//!
//! nginx: src/os/unix/.

pub mod io;
pub mod process;
