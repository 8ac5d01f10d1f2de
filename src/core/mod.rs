//! The core: buffers, header lists, ids, the clock, the error log, temp files and step results. It knows
//! nothing of rginx's other folders.
//!
//! nginx: src/core/.

pub mod buf;
pub mod header_list;
pub mod id;
pub mod log;
pub mod step;
pub mod temp_file;
pub mod times;
