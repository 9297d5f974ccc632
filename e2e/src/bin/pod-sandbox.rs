//! Starts one container process of the process kubelet (see e2e/README.md,
//! "Process kubelet and kube-proxy"). The kubelet runs it through `ip netns
//! exec <pod netns>`, which has already given it the pod's network namespace
//! and a mount namespace of its own; here the pod's volumes are bind-mounted
//! at their mount paths, privileges are dropped to the pod's user, and the
//! container's program replaces this process.

use anyhow::{bail, Context, Result};
use clap::Parser;
use rustix::fs::{Gid, Mode, OFlags, Uid};
use rustix::mount::{
    mount, mount_bind, mount_change, mount_remount, MountFlags, MountPropagationFlags,
};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Parser, Debug)]
#[command(about = "Run one container of a simulated pod")]
struct Args {
    /// `SOURCE:TARGET:ro` or `SOURCE:TARGET:rw`: a volume directory and where
    /// the container sees it.
    #[arg(long = "mount")]
    mounts: Vec<String>,
    /// A directory of the kubelet's for the tmpfs that holds overlays.
    #[arg(long)]
    scratch: PathBuf,
    #[arg(long)]
    uid: Option<u32>,
    #[arg(long)]
    gid: Option<u32>,
    /// A supplementary group; repeat for several.
    #[arg(long = "group")]
    groups: Vec<u32>,
    /// The working directory (`workingDir`).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

struct VolumeMount {
    source: PathBuf,
    target: PathBuf,
    read_only: bool,
}

fn parse_mount(text: &str) -> Result<VolumeMount> {
    let mut parts = text.rsplitn(3, ':');
    let mode = parts.next().unwrap_or_default();
    let target = parts.next().context("a mount needs SOURCE:TARGET:MODE")?;
    let source = parts.next().context("a mount needs SOURCE:TARGET:MODE")?;
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        other => bail!("mount mode must be ro or rw, not {other:?}"),
    };
    Ok(VolumeMount {
        source: source.into(),
        target: target.into(),
        read_only,
    })
}

/// Makes `target` exist, as a file for a file volume (a `subPath` of one)
/// and a directory otherwise, without touching the host's file system:
/// what is missing is made inside a writable overlay (upper layer on the
/// private tmpfs) over the deepest existing ancestor.
fn make_mount_point(
    target: &Path,
    file: bool,
    scratch: &Path,
    overlays: &mut Vec<PathBuf>,
) -> Result<()> {
    if !file {
        return make_dir(target, false, scratch, overlays);
    }
    if target.is_file() {
        return Ok(());
    }
    let parent = target
        .parent()
        .with_context(|| format!("{} has no parent", target.display()))?;
    make_dir(parent, true, scratch, overlays)?;
    std::fs::File::create(target)
        .map(drop)
        .with_context(|| format!("creating {}", target.display()))
}

/// Makes `dir` exist; with `writable`, inside one of our overlays.
/// `overlays` are the overlays made so far: inside one no new one is
/// needed (a second would hide what was mounted in the first).
fn make_dir(dir: &Path, writable: bool, scratch: &Path, overlays: &mut Vec<PathBuf>) -> Result<()> {
    let inside =
        |path: &Path, overlays: &[PathBuf]| overlays.iter().any(|root| path.starts_with(root));
    if dir.is_dir() && !writable {
        return Ok(());
    }
    let mut ancestor = dir;
    while !ancestor.exists() {
        ancestor = ancestor
            .parent()
            .with_context(|| format!("no existing parent of {}", dir.display()))?;
    }
    let ancestor = ancestor
        .canonicalize()
        .with_context(|| format!("resolving {}", ancestor.display()))?;
    if !inside(&ancestor, overlays) {
        overlay(
            &ancestor,
            &scratch.join(format!("overlay-{}", overlays.len())),
        )?;
        overlays.push(ancestor);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Mounts a writable overlay on `dir` whose layers live in `layer`.
fn overlay(dir: &Path, layer: &Path) -> Result<()> {
    if dir == Path::new("/") {
        bail!("a mount path needs an existing parent other than /");
    }
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    for path in [&upper, &work] {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        dir.display(),
        upper.display(),
        work.display()
    );
    let options = std::ffi::CString::new(options).context("overlay options")?;
    mount(
        "overlay",
        dir,
        "overlay",
        MountFlags::empty(),
        Some(options.as_c_str()),
    )
    .with_context(|| format!("mounting an overlay on {}", dir.display()))
}

fn mount_volumes(args: &Args) -> Result<()> {
    // Nothing mounted here may reach the host's mount table.
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .context("making mounts private")?;
    if args.mounts.is_empty() {
        return Ok(());
    }
    mount("tmpfs", &args.scratch, "tmpfs", MountFlags::empty(), None)
        .with_context(|| format!("mounting a tmpfs on {}", args.scratch.display()))?;
    let mut mounts = args
        .mounts
        .iter()
        .map(|m| parse_mount(m))
        .collect::<Result<Vec<_>>>()?;
    // Parents before children, and every mount point (and overlay) made
    // before anything is bound, so no overlay hides a volume.
    mounts.sort_by_key(|m| m.target.components().count());
    // Every source is held open before anything is mounted: a volume
    // mounted at /tmp must not hide a later volume's source under /tmp.
    let sources = mounts
        .iter()
        .map(|m| {
            rustix::fs::open(&m.source, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .with_context(|| format!("opening {}", m.source.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut overlays = Vec::new();
    for volume in &mounts {
        let file = volume.source.is_file();
        make_mount_point(&volume.target, file, &args.scratch, &mut overlays)?;
    }
    for (volume, source) in mounts.iter().zip(&sources) {
        let held = PathBuf::from(format!("/proc/self/fd/{}", source.as_raw_fd()));
        mount_bind(&held, &volume.target).with_context(|| {
            format!(
                "bind-mounting {} at {}",
                volume.source.display(),
                volume.target.display()
            )
        })?;
        if volume.read_only {
            mount_remount(&volume.target, MountFlags::BIND | MountFlags::RDONLY, "")
                .with_context(|| format!("making {} read-only", volume.target.display()))?;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    mount_volumes(&args)?;
    if let Some(dir) = &args.workdir {
        std::env::set_current_dir(dir).with_context(|| format!("entering {}", dir.display()))?;
    }
    // Group first: once the uid is dropped, the gid can no longer change.
    // Single-threaded, so the thread's credentials are the process's.
    // Like a container runtime: runAsUser alone keeps group 0.
    if args.uid.is_some() || args.gid.is_some() || !args.groups.is_empty() {
        let gid = Gid::from_raw(args.gid.unwrap_or(0));
        let groups: Vec<Gid> = std::iter::once(gid)
            .chain(args.groups.iter().map(|g| Gid::from_raw(*g)))
            .collect();
        rustix::thread::set_thread_groups(&groups).context("setting groups")?;
        rustix::thread::set_thread_gid(gid).context("setting the gid")?;
    }
    if let Some(uid) = args.uid {
        rustix::thread::set_thread_uid(Uid::from_raw(uid)).context("setting the uid")?;
    }
    let (program, rest) = args.argv.split_first().context("no program")?;
    let error = Command::new(program).args(rest).exec();
    Err(error).with_context(|| format!("executing {program}"))
}
