//! Operating-system glue: socket I/O.
//!
//! nginx: src/os/unix/.

pub mod io;
