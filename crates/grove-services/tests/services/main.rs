//! Integration tests for grove-services: the real servers from the host's
//! Debian packages (see the crate's PACKAGES), in real bubblewrap sandboxes,
//! in temp dirs, on 127.77.x.y. They need root (CI runs as root).

mod catalog;
mod isolation;
mod mariadb;
mod memcached;
mod postgresql;
mod rabbitmq;
mod redis;
mod rss;
mod support;
