//! CPU time of the local stack's processes, from Linux's `/proc`, grouped by the part of the
//! system each one plays: the AWS emulator, the functions (hookrelay's own code), the local
//! Lambda runtime, and the gateway with its queue poller. The load test reads it before and
//! after a level to say where the machine's time went. The side-by-side bench also reads
//! whole process trees of another system (a server, its database) and their memory.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context as _, Result};

pub const EMULATOR: &str = "aws_emulator";
pub const FUNCTIONS: &str = "functions";
pub const LAMBDA_RUNTIME: &str = "lambda_runtime";
pub const GATEWAY: &str = "gateway_and_poller";

const FUNCTION_BINARIES: [&str; 4] = ["ingest", "delivery", "sweeper", "admin"];

/// CPU seconds (user + system) per part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuByPart(pub BTreeMap<&'static str, f64>);

impl CpuByPart {
    pub fn since(&self, before: &CpuByPart) -> CpuByPart {
        CpuByPart(
            self.0
                .iter()
                .map(|(k, v)| (*k, (v - before.0.get(k).copied().unwrap_or(0.0)).max(0.0)))
                .collect(),
        )
    }

    /// Milliseconds of CPU per event for each part, and their total.
    pub fn per_event_ms(&self, events: usize) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = self
            .0
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v * 1000.0 / events as f64))
            .collect();
        out.insert("total".into(), out.values().sum());
        out
    }
}

struct Proc {
    ppid: u32,
    comm: String,
    cmdline: String,
    cpu_ticks: u64,
    /// CPU of children that ended and were reaped (a database's short-lived workers).
    reaped_ticks: u64,
}

/// The CPU of `root` and every process below it, grouped by part.
pub fn sample(root: u32) -> Result<CpuByPart> {
    let ticks_per_second = clock_ticks();
    let procs = read_all(Path::new("/proc"))?;
    let mut by_part = CpuByPart::default();
    for part in [EMULATOR, FUNCTIONS, LAMBDA_RUNTIME, GATEWAY] {
        by_part.0.insert(part, 0.0);
    }
    for (pid, p) in &procs {
        if !descends_from(*pid, root, &procs) {
            continue;
        }
        let part = classify(*pid == root, &p.comm, &p.cmdline);
        *by_part.0.entry(part).or_default() += p.cpu_ticks as f64 / ticks_per_second;
    }
    Ok(by_part)
}

/// Proportional set size (shared pages split among their users, so a sum over processes
/// is not inflated by shared memory) of `root` and every process below it, by part.
pub fn memory(root: u32) -> Result<BTreeMap<&'static str, u64>> {
    let procs = read_all(Path::new("/proc"))?;
    let mut out = BTreeMap::new();
    for (pid, p) in &procs {
        if descends_from(*pid, root, &procs) {
            let part = classify(*pid == root, &p.comm, &p.cmdline);
            *out.entry(part).or_default() += pss_bytes(*pid);
        }
    }
    Ok(out)
}

/// CPU seconds of `root` and every process below it, ended children included, and the
/// tree's proportional set size in bytes: one figure each for a whole server.
pub fn tree(root: u32) -> Result<(f64, u64)> {
    let procs = read_all(Path::new("/proc"))?;
    let (mut ticks, mut pss) = (0u64, 0u64);
    for (pid, p) in &procs {
        if descends_from(*pid, root, &procs) {
            ticks += p.cpu_ticks + p.reaped_ticks;
            pss += pss_bytes(*pid);
        }
    }
    Ok((ticks as f64 / clock_ticks(), pss))
}

/// `Pss:` of `/proc/<pid>/smaps_rollup`, in bytes; 0 when the process has gone or hides it.
fn pss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn classify(is_root: bool, comm: &str, cmdline: &str) -> &'static str {
    if is_root {
        GATEWAY
    } else if cmdline.contains("moto_server") {
        EMULATOR
    } else if FUNCTION_BINARIES.contains(&comm) {
        FUNCTIONS
    } else {
        // The shell that watches moto's parent. The local Lambda service (the Runtime API
        // the functions talk to) runs inside the root process, so it counts as GATEWAY.
        LAMBDA_RUNTIME
    }
}

fn descends_from(mut pid: u32, root: u32, procs: &HashMap<u32, Proc>) -> bool {
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        match procs.get(&pid) {
            Some(p) if p.ppid != pid && p.ppid != 0 => pid = p.ppid,
            _ => return false,
        }
    }
    false
}

fn read_all(proc_dir: &Path) -> Result<HashMap<u32, Proc>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(proc_dir).context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end between the listing and the read; it simply drops out.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(mut p) = parse_stat(&stat) else {
            continue;
        };
        p.cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.insert(pid, p);
    }
    Ok(out)
}

/// `pid (comm) state ppid … utime stime …`: comm may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<Proc> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15, the reaped
    // children's cutime and cstime 16 and 17.
    let ppid = rest.get(1)?.parse().ok()?;
    let field = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Proc {
        ppid,
        comm,
        cmdline: String::new(),
        cpu_ticks: field(11)? + field(12)?,
        reaped_ticks: field(13).unwrap_or(0) + field(14).unwrap_or(0),
    })
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (tokio (runtime) x) S 17 4242 17 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 8 0 1 2 3";
        let p = parse_stat(line).unwrap();
        assert_eq!(p.comm, "tokio (runtime) x");
        assert_eq!(p.ppid, 17);
        assert_eq!(p.cpu_ticks, 281);
        assert_eq!(p.reaped_ticks, 0);
    }

    #[test]
    fn parts_by_process() {
        assert_eq!(classify(true, "hookrelay-local", ""), GATEWAY);
        assert_eq!(
            classify(
                false,
                "python3",
                "python3 /x/.venv/bin/moto_server -H 127.0.0.1"
            ),
            EMULATOR
        );
        assert_eq!(classify(false, "ingest", "target/debug/ingest"), FUNCTIONS);
        assert_eq!(
            classify(false, "cargo-lambda", "cargo-lambda lambda watch"),
            LAMBDA_RUNTIME
        );
    }

    #[test]
    fn this_process_is_sampled() {
        // Burn CPU until the kernel has charged this process at least one tick.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let s = loop {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            let s = sample(std::process::id()).unwrap();
            if s.0[GATEWAY] > 0.0 || started.elapsed().as_secs() > 10 {
                break s;
            }
        };
        assert_ne!(x, 1);
        assert!(s.0[GATEWAY] > 0.0, "{s:?}");
        assert_eq!(s.since(&s).per_event_ms(10)["total"], 0.0);
        let (cpu, pss) = tree(std::process::id()).unwrap();
        assert!(cpu > 0.0 && pss > 0, "{cpu} {pss}");
        assert!(memory(std::process::id()).unwrap()[GATEWAY] > 0);
    }
}
