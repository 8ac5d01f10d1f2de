//! The HTTP modules built on the framework: content handlers, phase handlers, filters.
//!
//! nginx: src/http/modules/. The list of compiled-in modules, in order, is
//! `HTTP_MODULES` (nginx's generated `objs/ngx_modules.c`); filters insert themselves at the
//! front of their chain, so a filter listed later runs earlier.

pub mod log;
pub mod proxy;
pub mod return_;
pub mod stub_status;

use crate::http::chunked_filter::ChunkedFilterModule;
use crate::http::core_module::CoreModule;
use crate::http::header_filter::HeaderFilterModule;
use crate::http::write_filter::WriteFilterModule;
use crate::http::HttpModule;

/// Every HTTP module rginx is built with, in nginx's order. nginx: `ngx_modules[]`.
pub static HTTP_MODULES: &[&dyn HttpModule] = &[
    &CoreModule,
    &log::LogModule,
    &return_::ReturnModule,
    &stub_status::StubStatusModule,
    &crate::upstream::conf::UpstreamModule,
    &proxy::ProxyModule,
    &WriteFilterModule,
    &HeaderFilterModule,
    &ChunkedFilterModule,
];
