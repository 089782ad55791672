//! Integration tests for grove-runtime. They run the real `bwrap` and need root
//! (CI runs as root), plus `/usr/bin/python3` for the supervised-server tests.

mod beneath;
mod catalog;
mod cgroup;
mod command;
mod instance;
mod netns;
mod sandbox;
mod support;
