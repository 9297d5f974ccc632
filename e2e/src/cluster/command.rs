//! Running the system tools the harness drives (`ip`, `nft`) and checking up
//! front that they, and root, are there.

use super::error::{ClusterError, Result};
use std::io::{self, Write};
use std::process::{Command, Stdio};

/// Fails with a clear error unless we are root and `ip` and `nft` run.
pub fn preflight() -> Result<()> {
    let uid = rustix::process::geteuid().as_raw();
    if uid != 0 {
        return Err(ClusterError::NotRoot { uid });
    }
    require_tool("ip", &["-V"], "iproute2")?;
    require_tool("nft", &["--version"], "nftables")?;
    Ok(())
}

fn require_tool(tool: &'static str, args: &[&str], package: &'static str) -> Result<()> {
    match Command::new(tool).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(failure(&Command::new(tool), &out.status, &out.stderr)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(ClusterError::MissingTool { tool, package })
        }
        Err(e) => Err(ClusterError::io(format!("running `{tool}`"), e)),
    }
}

/// Runs `command` to completion, feeding it `stdin`; its stdout on success.
pub fn run(command: &mut Command, stdin: Option<&str>) -> Result<String> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| ClusterError::io(format!("starting `{}`", describe(command)), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The tools read all input before they act, so writing first cannot
        // deadlock against a full stdout pipe.
        pipe.write_all(input.as_bytes())
            .map_err(|e| ClusterError::io(format!("feeding `{}`", describe(command)), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| ClusterError::io(format!("waiting for `{}`", describe(command)), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut err = failure(command, &out.status, &out.stderr);
        if let (ClusterError::CommandFailed { stderr, .. }, Some(input)) = (&mut err, stdin) {
            stderr.push_str("\ninput was:\n");
            stderr.push_str(input);
        }
        Err(err)
    }
}

fn failure(command: &Command, status: &std::process::ExitStatus, stderr: &[u8]) -> ClusterError {
    ClusterError::CommandFailed {
        command: describe(command),
        status: status.to_string(),
        stderr: String::from_utf8_lossy(stderr).trim().to_owned(),
    }
}

/// `program arg arg ...`, for error messages.
pub fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}
