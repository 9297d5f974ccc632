//! File descriptors and the client connection limit. Each proxied client
//! connection holds two descriptors (client and upstream), idle pooled
//! upstream connections one each, and the process needs some of its own
//! (listeners, the admin endpoint, the snapshot stream, each runtime's
//! epoll and wake-up descriptors). The default `--max-connections` is what
//! fits in the limit after those, so that the gateway refuses new clients
//! before `accept` fails and `/healthz` keeps answering.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept back for the process itself, plus a few per thread.
const RESERVED: u64 = 64;
const RESERVED_PER_THREAD: u64 = 4;
/// Stands in for "no limit" (and caps the default).
const UNLIMITED: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    #[error("cannot raise the open-files limit from {from} to {to}: {source}")]
    Raise {
        from: u64,
        to: u64,
        source: std::io::Error,
    },
}

/// Raises the soft open-files limit to the hard limit (as nginx's
/// `worker_rlimit_nofile` or Go's runtime do) and returns the limit then
/// in force, with the error if raising failed.
pub fn raise_open_files_limit() -> (u64, Option<FdLimitError>) {
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(UNLIMITED);
    let maximum = limit.maximum.unwrap_or(UNLIMITED);
    if current >= maximum {
        return (current, None);
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => (maximum, None),
        Err(e) => (
            current,
            Some(FdLimitError::Raise {
                from: current,
                to: maximum,
                source: e.into(),
            }),
        ),
    }
}

/// The client connections that fit in `open_files` descriptors next to
/// `keepalive` pooled upstream connections and the process's own, at least
/// one.
pub fn connections_that_fit(open_files: u64, keepalive: usize, threads: usize) -> usize {
    let reserved = RESERVED + RESERVED_PER_THREAD * threads as u64 + keepalive as u64;
    let fit = open_files.min(UNLIMITED).saturating_sub(reserved) / 2;
    usize::try_from(fit).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_beside_the_pool_and_the_process() {
        let cases = [
            ("debian_default", 1024, 256, 2, 348),
            ("container_default", 1 << 20, 256, 8, 524_112),
            ("tight", 256, 16, 2, 84),
            ("pool_takes_it_all", 256, 256, 2, 1),
            ("unlimited_is_capped", u64::MAX, 0, 1, 524_254),
        ];
        for (name, files, keepalive, threads, want) in cases {
            assert_eq!(
                connections_that_fit(files, keepalive, threads),
                want,
                "case {name}"
            );
        }
    }
}
