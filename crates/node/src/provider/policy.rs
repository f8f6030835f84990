//! The provider's admission policy: what its owner lets the network use, and
//! the decision, for one assignment, to accept it or refuse it with a
//! specific reason. Pure: the daemon supplies the machine's state and the
//! time; tests drive it directly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sharegrid_core::{Amount, Assignment, Determinism, Fuel, NodeId, PricePerGfuel};

/// A daily window of local time, `HH:MM-HH:MM`; it may wrap past midnight
/// (`22:00-06:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoursWindow {
    /// Start, in minutes after midnight (inclusive).
    pub start: u16,
    /// End, in minutes after midnight (exclusive).
    pub end: u16,
}

impl HoursWindow {
    /// Whether `minute` (0..1440) falls in the window.
    pub fn contains(self, minute: u16) -> bool {
        if self.start <= self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

impl FromStr for HoursWindow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("{s:?} is not a window of hours like \"09:00-17:30\" or \"22:00-06:00\"");
        let minute = |t: &str| -> Result<u16, String> {
            let (h, m) = t.trim().split_once(':').ok_or_else(err)?;
            let (h, m): (u16, u16) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
            if h > 24 || m > 59 || (h == 24 && m != 0) {
                return Err(err());
            }
            Ok(h * 60 + m)
        };
        let (a, b) = s.split_once('-').ok_or_else(err)?;
        let (start, end) = (minute(a)?, minute(b)?);
        if start == end {
            return Err(format!("{s:?} is an empty window"));
        }
        Ok(HoursWindow { start, end: end % 1440 })
    }
}

impl fmt::Display for HoursWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

impl Serialize for HoursWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for HoursWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `[provider]` in `config.toml`: what the owner gives and on what terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderPolicy {
    /// Whether this node provides compute at all.
    pub enabled: bool,
    /// Tasks run at once; 0 means one per core given.
    pub slots: u32,
    /// Most memory one task may hold, in bytes: its linear memory limit
    /// plus its output limit (outputs are held in memory while it runs).
    pub memory_per_task: u64,
    /// Most fuel one task may be given (its fuel limit).
    pub max_fuel_per_task: u64,
    /// Longest wall-clock timeout one task may ask for, in seconds.
    pub max_timeout_secs: u64,
    /// Bytes the store of fetched inputs may hold; past it the least
    /// recently used go (never those of a run in flight).
    pub max_input_store_bytes: u64,
    /// Lowest price accepted, in token units per gigafuel.
    pub price_floor: Amount,
    /// Work only against an escrow on the ledger that can pay for the run
    /// (checked before anything is fetched, and at every block while it
    /// runs: a run its escrow can no longer pay for is cancelled). This
    /// node's own tasks are exempt.
    pub require_escrow: bool,
    /// Share of the machine's cores given to tasks, in percent (1..=100).
    pub cpu_share_percent: u8,
    /// Daily windows of local time in which new work is accepted; empty
    /// means always.
    pub active_hours: Vec<HoursWindow>,
    /// Accept new work only while the machine is otherwise idle.
    pub idle_only: bool,
    /// With `idle_only`: the host CPU load (percent of all cores, excluding
    /// sharegrid's own tasks) above which the machine is not idle.
    pub idle_threshold_percent: u8,
    /// Determinism modes accepted.
    pub modes: Vec<Determinism>,
    /// Seconds between re-publications of the offer (also re-published when
    /// free slots change); an offer lives three intervals.
    pub offer_interval_secs: u64,
    /// Seconds a task's outputs stay available for the requestor to fetch.
    pub output_retention_secs: u64,
    /// On shutdown, seconds running tasks get to finish before being refused.
    pub shutdown_grace_secs: u64,
}

impl Default for ProviderPolicy {
    fn default() -> Self {
        ProviderPolicy {
            enabled: false,
            slots: 0,
            memory_per_task: 1 << 30,
            max_fuel_per_task: 10_000_000_000_000,
            max_timeout_secs: 3600,
            max_input_store_bytes: 10 << 30,
            price_floor: Amount(0),
            require_escrow: true,
            cpu_share_percent: 100,
            active_hours: Vec::new(),
            idle_only: false,
            idle_threshold_percent: 25,
            modes: vec![Determinism::Native, Determinism::Portable],
            offer_interval_secs: 30,
            output_retention_secs: 3600,
            shutdown_grace_secs: 60,
        }
    }
}

/// The machine and agent state an admission decision needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MachineState {
    /// This provider's id.
    pub me: NodeId,
    /// Task slots in use.
    pub busy_slots: u32,
    /// Cores on the machine.
    pub cores: u32,
    /// Host CPU load not caused by sharegrid, percent of all cores.
    pub host_load_percent: u8,
    /// Local time of day, minutes after midnight.
    pub minute_of_day: u16,
    /// Milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// Why an assignment was refused. Sent back to the requestor, so each says
/// what it could change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// Not a valid signed assignment.
    #[error("invalid assignment: {why}")]
    Invalid {
        /// What was wrong with it.
        why: String,
    },
    /// Not providing at all.
    #[error("this node does not provide compute")]
    NotProviding,
    /// Addressed to another provider.
    #[error("assignment is addressed to another provider")]
    WrongProvider,
    /// Arrived after its deadline.
    #[error("assignment expired")]
    Expired,
    /// All slots are running tasks.
    #[error("busy: all {slots} slots are in use")]
    Busy {
        /// Slots this provider has.
        slots: u32,
    },
    /// Asks for more memory (linear memory plus output) than the owner
    /// allows per task.
    #[error("task asks for {asked} bytes of memory and output; this provider allows {max}")]
    OverMemoryPolicy {
        /// Memory the task's limits ask for.
        asked: u64,
        /// The policy's maximum.
        max: u64,
    },
    /// Asks for more fuel than the owner gives one task.
    #[error("task's fuel limit {asked} is over this provider's {max} per task")]
    OverFuelPolicy {
        /// The task's fuel limit.
        asked: Fuel,
        /// The policy's maximum.
        max: Fuel,
    },
    /// Asks for a longer timeout than the owner gives one task.
    #[error("task's timeout of {asked_secs} s is over this provider's {max_secs} s per task")]
    OverTimeoutPolicy {
        /// The task's timeout, seconds (rounded up).
        asked_secs: u64,
        /// The policy's maximum.
        max_secs: u64,
    },
    /// Pays less than the owner's floor.
    #[error("price {offered}/Gfuel is below this provider's floor of {floor}/Gfuel")]
    BelowPriceFloor {
        /// Price offered.
        offered: Amount,
        /// The floor.
        floor: Amount,
    },
    /// No escrow that can pay for the run (this provider requires one).
    #[error("{UNFUNDED}: {why}")]
    Unfunded {
        /// What the ledger says.
        why: String,
    },
    /// Outside the owner's active hours.
    #[error("outside active hours ({windows})")]
    OutsideActiveHours {
        /// The configured windows.
        windows: String,
    },
    /// The machine is in use by its owner.
    #[error("machine not idle: host load {load}% is above {threshold}%")]
    NotIdle {
        /// Current host load.
        load: u8,
        /// The threshold.
        threshold: u8,
    },
    /// A determinism mode this provider does not run.
    #[error("determinism mode {mode} is not accepted here")]
    ModeNotAccepted {
        /// The mode asked for.
        mode: Determinism,
    },
}

/// The start of [`Refusal::Unfunded`]'s text, as a requestor reads it.
const UNFUNDED: &str = "this provider works only against a funded escrow";

impl Refusal {
    /// Whether a refusal's text (as it crossed the network) says the
    /// provider wants an escrow that can pay.
    pub fn is_unfunded(reason: &str) -> bool {
        reason.starts_with(UNFUNDED)
    }
}

impl ProviderPolicy {
    /// Slots this policy gives on a machine with `cores` cores.
    pub fn effective_slots(&self, cores: u32) -> u32 {
        let shared = (u64::from(cores) * u64::from(self.cpu_share_percent.clamp(1, 100))).div_ceil(100) as u32;
        let by_share = shared.max(1);
        if self.slots == 0 {
            by_share
        } else {
            self.slots.min(by_share)
        }
    }

    /// Whether the owner's time and idleness rules pause new work now:
    /// outside the active hours, or the machine busy with other programs.
    pub fn paused(&self, m: &MachineState) -> Result<(), Refusal> {
        if !self.active_hours.is_empty() && !self.active_hours.iter().any(|w| w.contains(m.minute_of_day)) {
            let windows = self
                .active_hours
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Refusal::OutsideActiveHours { windows });
        }
        if self.idle_only && m.host_load_percent > self.idle_threshold_percent {
            return Err(Refusal::NotIdle {
                load: m.host_load_percent,
                threshold: self.idle_threshold_percent,
            });
        }
        Ok(())
    }

    /// Accept `a`, or refuse it with the first reason that applies, in the
    /// order a requestor can least do something about first.
    pub fn admit(&self, a: &Assignment, m: &MachineState) -> Result<(), Refusal> {
        if !self.enabled {
            return Err(Refusal::NotProviding);
        }
        if a.provider != m.me {
            return Err(Refusal::WrongProvider);
        }
        if a.expires_at_ms <= m.now_ms {
            return Err(Refusal::Expired);
        }
        self.paused(m)?;
        let slots = self.effective_slots(m.cores);
        if m.busy_slots >= slots {
            return Err(Refusal::Busy { slots });
        }
        if !self.modes.contains(&a.mode) {
            return Err(Refusal::ModeNotAccepted { mode: a.mode });
        }
        let held = a.limits.memory_bytes.saturating_add(a.limits.output_bytes);
        if held > self.memory_per_task {
            return Err(Refusal::OverMemoryPolicy {
                asked: held,
                max: self.memory_per_task,
            });
        }
        if a.limits.fuel.0 > self.max_fuel_per_task {
            return Err(Refusal::OverFuelPolicy {
                asked: a.limits.fuel,
                max: Fuel(self.max_fuel_per_task),
            });
        }
        let asked_secs = a.limits.timeout_ms.div_ceil(1000);
        if asked_secs > self.max_timeout_secs {
            return Err(Refusal::OverTimeoutPolicy {
                asked_secs,
                max_secs: self.max_timeout_secs,
            });
        }
        let PricePerGfuel(offered) = a.price;
        if offered < self.price_floor {
            return Err(Refusal::BelowPriceFloor {
                offered,
                floor: self.price_floor,
            });
        }
        Ok(())
    }

    /// Whether a run of `a` must be paid from an escrow the ledger shows
    /// can pay for it: always for others' tasks, unless the owner opted out.
    pub fn needs_escrow(&self, a: &Assignment, me: &NodeId) -> bool {
        self.require_escrow && a.requestor != *me
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharegrid_core::{ContentId, Limits, NodeKey, TaskId, WIRE_VERSION};

    fn assignment(provider: NodeId) -> Assignment {
        Assignment {
            version: WIRE_VERSION,
            chain: ContentId::of(b"network"),
            task: TaskId::from_bytes([1; 32]),
            requestor: NodeKey::from_seed([2; 32]).id(),
            provider,
            module: ContentId::of(b"m"),
            args: vec![],
            stdin: ContentId::of(b""),
            inputs: vec![],
            limits: Limits {
                memory_bytes: 64 << 20,
                ..Limits::default()
            },
            mode: Determinism::Native,
            launch: Default::default(),
            mounts: Vec::new(),
            price: PricePerGfuel(Amount(100)),
            expires_at_ms: 10_000,
            escrow: None,
        }
    }

    fn machine(me: NodeId) -> MachineState {
        MachineState {
            me,
            busy_slots: 0,
            cores: 4,
            host_load_percent: 5,
            minute_of_day: 12 * 60,
            now_ms: 1_000,
        }
    }

    #[test]
    fn an_unfunded_refusal_is_told_from_its_text() {
        let why = Refusal::Unfunded {
            why: "no escrow".into(),
        }
        .to_string();
        assert!(Refusal::is_unfunded(&why), "{why}");
        assert!(!Refusal::is_unfunded(&Refusal::Busy { slots: 2 }.to_string()));
    }

    #[test]
    fn each_policy_refuses_with_its_own_reason() {
        let me = NodeKey::from_seed([9; 32]).id();
        let on = ProviderPolicy {
            enabled: true,
            ..ProviderPolicy::default()
        };
        let a = assignment(me);
        let m = machine(me);
        on.admit(&a, &m).unwrap();

        assert_eq!(ProviderPolicy::default().admit(&a, &m), Err(Refusal::NotProviding));
        assert_eq!(
            on.admit(&assignment(NodeKey::from_seed([3; 32]).id()), &m),
            Err(Refusal::WrongProvider)
        );
        assert_eq!(
            on.admit(&a, &MachineState { now_ms: 10_000, ..m }),
            Err(Refusal::Expired)
        );
        assert_eq!(
            on.admit(&a, &MachineState { busy_slots: 4, ..m }),
            Err(Refusal::Busy { slots: 4 })
        );
        let small = ProviderPolicy {
            memory_per_task: 100 << 20,
            ..on.clone()
        };
        // Linear memory (64 MiB) plus output (64 MiB) is what a task holds.
        assert_eq!(
            small.admit(&a, &m),
            Err(Refusal::OverMemoryPolicy {
                asked: 128 << 20,
                max: 100 << 20
            })
        );
        // A requestor cannot pin a slot for ever, nor make the host hold a
        // huge output: fuel, timeout and output are the owner's to bound.
        let mut greedy = a.clone();
        greedy.limits.fuel = Fuel(u64::MAX);
        assert_eq!(
            on.admit(&greedy, &m),
            Err(Refusal::OverFuelPolicy {
                asked: Fuel(u64::MAX),
                max: Fuel(10_000_000_000_000)
            })
        );
        let mut forever = a.clone();
        forever.limits.timeout_ms = 1000 * 86_400 * 1000;
        assert_eq!(
            on.admit(&forever, &m),
            Err(Refusal::OverTimeoutPolicy {
                asked_secs: 86_400_000,
                max_secs: 3600
            })
        );
        let mut huge_out = a.clone();
        huge_out.limits.output_bytes = 16 << 40;
        assert!(matches!(
            on.admit(&huge_out, &m),
            Err(Refusal::OverMemoryPolicy { max, .. }) if max == 1 << 30
        ));
        let dear = ProviderPolicy {
            price_floor: Amount(101),
            ..on.clone()
        };
        assert_eq!(
            dear.admit(&a, &m),
            Err(Refusal::BelowPriceFloor {
                offered: Amount(100),
                floor: Amount(101)
            })
        );
        let nights = ProviderPolicy {
            active_hours: vec!["22:00-06:00".parse().unwrap()],
            ..on.clone()
        };
        assert_eq!(
            nights.admit(&a, &m),
            Err(Refusal::OutsideActiveHours {
                windows: "22:00-06:00".into()
            })
        );
        nights
            .admit(
                &a,
                &MachineState {
                    minute_of_day: 23 * 60,
                    ..m
                },
            )
            .unwrap();
        nights
            .admit(
                &a,
                &MachineState {
                    minute_of_day: 5 * 60 + 59,
                    ..m
                },
            )
            .unwrap();
        let idle = ProviderPolicy {
            idle_only: true,
            idle_threshold_percent: 20,
            ..on.clone()
        };
        idle.admit(&a, &m).unwrap();
        assert_eq!(
            idle.admit(
                &a,
                &MachineState {
                    host_load_percent: 60,
                    ..m
                }
            ),
            Err(Refusal::NotIdle {
                load: 60,
                threshold: 20
            })
        );
        let native_only = ProviderPolicy {
            modes: vec![Determinism::Native],
            ..on.clone()
        };
        let portable = Assignment {
            mode: Determinism::Portable,
            ..a.clone()
        };
        assert_eq!(
            native_only.admit(&portable, &m),
            Err(Refusal::ModeNotAccepted {
                mode: Determinism::Portable
            })
        );
        // Every refusal reads as one line.
        assert!(!Refusal::Busy { slots: 2 }.to_string().contains('\n'));
    }

    #[test]
    fn slots_follow_the_cpu_share() {
        let p = ProviderPolicy {
            cpu_share_percent: 50,
            ..ProviderPolicy::default()
        };
        assert_eq!(p.effective_slots(4), 2);
        assert_eq!(p.effective_slots(1), 1);
        assert_eq!(ProviderPolicy { slots: 8, ..p.clone() }.effective_slots(4), 2);
        assert_eq!(ProviderPolicy { slots: 1, ..p }.effective_slots(4), 1);
    }

    #[test]
    fn hour_windows_parse_strictly() {
        assert_eq!(
            "09:00-17:30".parse::<HoursWindow>().unwrap(),
            HoursWindow { start: 540, end: 1050 }
        );
        assert_eq!("18:00-24:00".parse::<HoursWindow>().unwrap().end, 0);
        for bad in ["9-5", "25:00-01:00", "10:00-10:00", "10:60-11:00", "noon"] {
            assert!(bad.parse::<HoursWindow>().is_err(), "{bad}");
        }
    }
}
