//! The connector's log. The host caps it per invocation and redacts secret values from it.
//! `println!` and `eprintln!` also land here, at info and warn.

use crate::bindings::cordon::connector::log::{Level, write};

pub fn trace(message: &str) {
    write(Level::Trace, message);
}

pub fn debug(message: &str) {
    write(Level::Debug, message);
}

pub fn info(message: &str) {
    write(Level::Info, message);
}

pub fn warn(message: &str) {
    write(Level::Warn, message);
}

pub fn error(message: &str) {
    write(Level::Error, message);
}
