//! The HTTP modules built on the framework: content handlers, phase handlers, filters.
//!
//! nginx: src/http/modules/. The list of compiled-in modules, in order, is
//! `HTTP_MODULES` (nginx's generated `objs/ngx_modules.c`); filters insert themselves at the
//! front of their chain, so a filter listed later runs earlier.

pub mod addition;
pub mod auth_request;
pub mod log;
pub mod mirror;
pub mod mytest;
pub mod proxy;
pub mod return_;
pub mod stock_quote;
pub mod stub_status;

use crate::http::chunked_filter::ChunkedFilterModule;
use crate::http::core_module::CoreModule;
use crate::http::header_filter::HeaderFilterModule;
use crate::http::postpone_filter::PostponeFilterModule;
use crate::http::write_filter::WriteFilterModule;
use crate::http::HttpModule;

/// The core modules that own a block of the main context: only `http {}` today. nginx: the
/// `NGX_CORE_MODULE`s of `ngx_modules[]` (`ngx_core_module` and `ngx_events_module` are
/// `conf/`'s own tables).
pub static CORE_MODULES: &[&dyn crate::conf::CoreModule] = &[&HTTP_BLOCK];

/// `http {}` with every HTTP module below. nginx: `ngx_http_module`.
pub static HTTP_BLOCK: crate::http::HttpBlock = crate::http::HttpBlock { modules: HTTP_MODULES };

/// Every HTTP module rginx is built with, in nginx's order. nginx: `ngx_modules[]`.
pub static HTTP_MODULES: &[&dyn HttpModule] = &[
    &CoreModule,
    &log::LogModule,
    &mirror::MirrorModule,
    &auth_request::AuthRequestModule,
    &return_::ReturnModule,
    &stub_status::StubStatusModule,
    &crate::upstream::conf::UpstreamModule,
    &proxy::ProxyModule,
    &mytest::MytestModule,
    &stock_quote::StockQuoteModule,
    &WriteFilterModule,
    &HeaderFilterModule,
    &ChunkedFilterModule,
    &PostponeFilterModule,
    &addition::AdditionFilterModule,
];
