//! What the commands print, written so that nothing they print can make them panic.
//!
//! `println!` panics when standard output is a closed pipe (`cwms compact | head -1`) or a full
//! disk (`> /dev/full`). Here a closed pipe ends the output quietly (the reader has what it
//! wanted; the command's work and exit status are unchanged), and any other failure to write is
//! an error naming standard output. Messages for the operator go to standard error, where a
//! failure to write cannot be reported anywhere, so it is ignored.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

/// Set once standard output turned out to be a closed pipe: nothing more is written to it.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line to standard output.
pub fn line(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    write_stdout(|out| {
        out.write_fmt(args)?;
        out.write_all(b"\n")
    })
}

/// Writes to standard output with `write`, holding the lock: a closed pipe is a quiet end,
/// anything else an error.
pub fn write_stdout(write: impl FnOnce(&mut io::StdoutLock<'_>) -> io::Result<()>) -> anyhow::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) => quiet_if_closed(e).context("writing to standard output"),
    }
}

/// `Ok` for a closed pipe (and remembers it), the error otherwise.
pub fn quiet_if_closed(error: io::Error) -> io::Result<()> {
    if error.kind() == io::ErrorKind::BrokenPipe {
        CLOSED.store(true, Ordering::Relaxed);
        Ok(())
    } else {
        Err(error)
    }
}

/// Writes one line to standard error, ignoring failures (there is nowhere to report them).
pub fn err_line(args: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{args}");
}

/// `println!` that returns an error instead of panicking (see the module docs).
macro_rules! out {
    () => { $crate::output::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}

/// `eprintln!` that cannot panic.
macro_rules! err {
    ($($arg:tt)*) => { $crate::output::err_line(format_args!($($arg)*)) };
}

pub(crate) use {err, out};

/// "1 raw object", "2 raw objects".
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}
