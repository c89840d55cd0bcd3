//! What the command-line programs print to standard output. `println!`
//! panics when the reader has gone (`gongwen-hub overdue --json | head`):
//! these end the program quietly instead, as a program writing into a
//! closed pipe should.

use std::io::Write;

/// Write `args` (and a line end when `line`) to standard output. If the
/// reader went away, exit quietly (status 0: the reader had what it
/// wanted); on another error, say so and exit with status 1.
pub fn write(args: std::fmt::Arguments<'_>, line: bool) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| if line { out.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("cannot write to standard output: {e}");
            std::process::exit(1);
        }
    }
}

/// `print!` that ends quietly when the reader has gone.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => { $crate::stdout::write(format_args!($($t)*), false) };
}

/// `println!` that ends quietly when the reader has gone.
#[macro_export]
macro_rules! sayln {
    () => { $crate::stdout::write(format_args!(""), true) };
    ($($t:tt)*) => { $crate::stdout::write(format_args!($($t)*), true) };
}
