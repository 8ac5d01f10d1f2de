//! The core: buffers, connections, ids, the cycle, the clock and the error log.
//!
//! nginx: src/core/.

pub mod buf;
pub mod connection;
pub mod cycle;
pub mod id;
pub mod log;
pub mod step;
pub mod temp_file;
pub mod times;
