//! The router in-process: the real `serve` on a loopback port in front of small upstreams
//! on loopback ports, driven by a real HTTP client.

mod access;
mod access_log;
mod cache;
mod deploy;
mod drain;
mod headers;
mod hold;
mod limits;
mod support;
mod upgrade;
