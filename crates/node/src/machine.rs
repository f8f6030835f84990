//! What the provider knows of its machine: architecture, cores and memory
//! (detected once), and the host's CPU load and local time (sampled
//! continuously, because "only when otherwise idle" and active hours are
//! checked for every new assignment).
//!
//! Load comes from `/proc/stat` minus this process's own CPU time
//! (`/proc/self/stat`), so the tasks sharegrid runs never make the machine
//! look busy to itself. Where `/proc` is missing the load reads as unknown
//! (0) and a warning says `idle_only` cannot be honoured.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use sharegrid_core::Arch;

/// The machine, detected once at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineInfo {
    /// Architecture class.
    pub arch: Arch,
    /// Logical cores.
    pub cores: u32,
    /// Physical memory, in bytes (0 if unknown).
    pub memory_bytes: u64,
}

impl MachineInfo {
    /// Detects this machine.
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                kib.checked_mul(1024)
            })
            .unwrap_or(0);
        MachineInfo {
            arch: Arch::host(),
            cores,
            memory_bytes,
        }
    }
}

/// The live state an admission decision reads: host load and local time.
pub trait HostProbe: Send + Sync + fmt::Debug {
    /// CPU load of everything but this process, percent of all cores.
    fn host_load_percent(&self) -> u8;
    /// Local time of day, minutes after midnight.
    fn minute_of_day(&self) -> u16;
}

/// Local time of day from the system time zone, in minutes after midnight.
pub fn local_minute_of_day() -> u16 {
    let now = jiff::Zoned::now();
    (now.hour() as u16) * 60 + now.minute() as u16
}

/// The real probe: a background thread samples `/proc` every `period`.
#[derive(Debug)]
pub struct SystemProbe {
    load: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
}

impl SystemProbe {
    /// Starts sampling every `period`.
    pub fn start(period: Duration) -> Self {
        let load = Arc::new(AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (load.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("sharegrid-load".into())
            .spawn(move || {
                let Some(mut prev) = CpuSample::read() else {
                    tracing::warn!("no /proc/stat: host load unknown, idle_only cannot be honoured");
                    return;
                };
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(period);
                    let Some(next) = CpuSample::read() else { return };
                    l.store(next.host_load_since(&prev), Ordering::Relaxed);
                    prev = next;
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the load sampler: host load unknown");
        }
        SystemProbe { load, stop }
    }
}

impl Drop for SystemProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl HostProbe for SystemProbe {
    fn host_load_percent(&self) -> u8 {
        self.load.load(Ordering::Relaxed)
    }
    fn minute_of_day(&self) -> u16 {
        local_minute_of_day()
    }
}

/// CPU time counters, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CpuSample {
    /// All CPUs: busy ticks (everything but idle and iowait).
    busy: u64,
    /// All CPUs: total ticks.
    total: u64,
    /// This process: user + system ticks.
    own: u64,
}

impl CpuSample {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        Self::parse(&stat, &own)
    }

    fn parse(stat: &str, own: &str) -> Option<Self> {
        let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
        let v: Vec<u64> = cpu.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal (guest is inside user).
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        // Fields after the command name (which may hold spaces), from "state".
        let after = own.rsplit_once(')')?.1;
        let f: Vec<&str> = after.split_whitespace().collect();
        let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(CpuSample {
            busy: total - idle,
            total,
            own,
        })
    }

    /// Percent of all cores busy with other programs between `prev` and self.
    fn host_load_since(&self, prev: &CpuSample) -> u8 {
        let total = self.total.saturating_sub(prev.total);
        if total == 0 {
            return 0;
        }
        let busy = self.busy.saturating_sub(prev.busy);
        let own = self.own.saturating_sub(prev.own);
        let others = busy.saturating_sub(own);
        (others * 100 / total).min(100) as u8
    }
}

/// A probe whose readings are set by hand: for a node whose owner's
/// activity is simulated (tests, the demo).
#[derive(Debug)]
pub struct FixedProbe {
    /// Host load to report.
    pub load: AtomicU8,
    /// Minute of day to report; `u16::MAX` means the real local time.
    pub minute: std::sync::atomic::AtomicU16,
}

impl Default for FixedProbe {
    fn default() -> Self {
        FixedProbe {
            load: AtomicU8::new(0),
            minute: std::sync::atomic::AtomicU16::new(u16::MAX),
        }
    }
}

impl HostProbe for FixedProbe {
    fn host_load_percent(&self) -> u8 {
        self.load.load(Ordering::Relaxed)
    }
    fn minute_of_day(&self) -> u16 {
        match self.minute.load(Ordering::Relaxed) {
            u16::MAX => local_minute_of_day(),
            m => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_excludes_this_process() {
        let own = |u: u64, s: u64| format!("42 (sharegrid node) S 1 2 3 4 5 6 7 8 9 10 {u} {s} 0 0");
        let a = CpuSample::parse("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3\n", &own(50, 50)).unwrap();
        // 1000 ticks later: 600 busy, of which 300 were ours.
        let b = CpuSample::parse("cpu  400 0 400 1100 100 0 0 0 0 0\n", &own(200, 200)).unwrap();
        assert_eq!(a.busy, 200);
        assert_eq!(b.host_load_since(&a), 30);
        assert_eq!(a.host_load_since(&a), 0);
        assert!(CpuSample::parse("garbage", &own(1, 1)).is_none());
    }

    #[test]
    fn the_real_machine_is_detected() {
        let m = MachineInfo::detect();
        assert!(m.cores >= 1);
        assert_eq!(m.arch, Arch::host());
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(m.memory_bytes > 0);
        }
        assert!(local_minute_of_day() < 1440);
    }
}
