//! Running `tp`: a [`Running`] process (stdout and stderr collected, stderr also line by line
//! as printed, killed and reaped when dropped) and the [`Run`] it leaves, with the checks of the
//! contract's exit codes and one-line errors. Every wait is bounded by [`RUN_TIMEOUT`]: a hung
//! `tp` fails its test instead of hanging the suite.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A run still going after this long is hung: it is killed and its test fails, rather than
/// the suite hanging. Far beyond what any run takes (the slowest, a debug-build `tp index`
/// with the real model on a loaded 2-core machine, takes about a minute), so no outcome
/// depends on the machine's speed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// What a finished (or killed) `tp` printed.
#[derive(Debug)]
pub struct Run {
    /// The command, for messages.
    pub args: String,
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// What a finished command printed, unchecked.
    pub fn from_output(args: &[&str], out: std::process::Output) -> Run {
        Run {
            args: format!("tp {}", args.join(" ")),
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} (exit {:?}, signal {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args, self.code, self.signal, self.stdout, self.stderr
        )
    }

    /// Asserts the process did not panic (a panic is a bug, whatever the input).
    pub fn no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked")
                && !self.stderr.contains("RUST_BACKTRACE")
                && self.code != Some(101),
            "tp panicked: {}",
            self.describe()
        );
    }

    /// Asserts what every run of the contract must give: no panic, no signal, and an exit code
    /// of 0 or 2.
    pub fn contract(self) -> Run {
        self.no_panic();
        assert!(
            matches!(self.code, Some(0 | 2)),
            "only exit codes 0 and 2 are allowed: {}",
            self.describe()
        );
        self
    }

    /// Asserts success (exit 0).
    pub fn ok(self) -> Run {
        self.no_panic();
        assert_eq!(self.code, Some(0), "should succeed: {}", self.describe());
        self
    }

    /// Asserts an error of the contract's kind: exit 2, nothing on stdout, and the error as
    /// exactly one `error: ...` line, which is the last line on stderr (warnings, progress or
    /// `damaged:` lines may precede it). Returns the error line.
    pub fn err(&self) -> String {
        self.no_panic();
        assert_eq!(
            self.code,
            Some(2),
            "should fail with exit code 2: {}",
            self.describe()
        );
        assert!(
            self.stdout.is_empty(),
            "failed but printed to stdout: {}",
            self.describe()
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "expected exactly one error line: {}",
            self.describe()
        );
        assert_eq!(
            self.stderr.lines().last(),
            Some(errors[0]),
            "the error must be the last line: {}",
            self.describe()
        );
        errors[0].to_owned()
    }

    /// Like [`Run::err`], and stderr must be that one line and nothing else.
    pub fn only_err(&self) -> String {
        let line = self.err();
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "expected a one-line error: {}",
            self.describe()
        );
        line
    }

    /// Asserts a usage error as clap reports it: exit 2, nothing on stdout, an `error:` first
    /// line on stderr.
    pub fn usage_err(&self) {
        assert_eq!(self.code, Some(2), "a usage error: {}", self.describe());
        assert!(self.stdout.is_empty(), "{}", self.describe());
        assert!(self.stderr.starts_with("error:"), "{}", self.describe());
    }
}

/// A `tp` process; killed and reaped when dropped, so a failing test leaks no process.
pub struct Running {
    args: String,
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    /// stderr, line by line, as it is printed.
    stderr_lines: Receiver<String>,
}

impl Running {
    /// Starts `cmd` with stdout and stderr collected (stdin is the command's own: null unless
    /// set).
    pub fn spawn(mut cmd: Command, args: String) -> Running {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {args}: {e}"));
        let mut out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        });
        let (tx, stderr_lines) = mpsc::channel();
        let stderr = thread::spawn(move || {
            let mut all = String::new();
            let mut reader = BufReader::new(err);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line).into_owned();
                all.push_str(&text);
                let _ = tx.send(text);
                line.clear();
            }
            all
        });
        Running {
            args,
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
            stderr_lines,
        }
    }

    /// Runs `cmd` to its end (bounded by [`RUN_TIMEOUT`]).
    pub fn run(cmd: Command, args: String) -> Run {
        Running::spawn(cmd, args).wait()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for a line of stderr containing `needle`; returns it.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Waits for the process to exit (killing it and failing the test after [`RUN_TIMEOUT`]).
    pub fn wait(mut self) -> Run {
        let deadline = Instant::now() + RUN_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("{} hung: killed after {RUN_TIMEOUT:?}", self.args);
                }
                Err(e) => panic!("cannot wait for {}: {e}", self.args),
            }
        }
        self.collect()
    }

    /// Kills the process with SIGKILL (if it is still running) and reaps it.
    pub fn kill(mut self) -> Run {
        let _ = self.child.kill();
        self.collect()
    }

    fn collect(&mut self) -> Run {
        let status = self.child.wait().unwrap();
        let stdout = self.stdout.take().unwrap().join().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        Run {
            args: self.args.clone(),
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
