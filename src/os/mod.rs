//! Operating-system glue: the system calls the standard library does not wrap.
//!
//! nginx: src/os/unix/.
