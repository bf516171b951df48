//! Classifies one command from its arguments as they arrive: its [`Access`] and [`ReplyRule`],
//! decided as soon as the arguments that matter (name, subcommand, `numkeys`, keys) are known,
//! so that a large value after the last key streams through.

use super::commands::{self, Class, Keys};
use crate::protocol::{Access, ReplyRule};

/// Longest command or subcommand name kept (the longest redis name has 20 bytes).
const NAME_MAX: usize = 32;
/// Longest key kept: a request with a longer key is [`Access::All`].
pub(super) const KEY_MAX: usize = 4096;
/// Most keys kept: a request with more is [`Access::All`].
const KEYS_MAX: usize = 256;

/// What a command turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// A request answered by one reply.
    Request(Access, ReplyRule),
    /// From this command on, replies do not answer requests one to one.
    Unpaired,
}

/// Where classification stands.
#[derive(Debug)]
enum Step {
    /// Waiting for the name (argument 0).
    Name,
    /// Waiting for a container's subcommand (argument 1).
    Subcommand(String),
    /// Collecting keys.
    Keys(KeyScan),
    /// Decided.
    Done(Decision),
}

/// The keys of a [`Class::Read`] or [`Class::Write`] command being collected.
#[derive(Debug)]
struct KeyScan {
    write: bool,
    keys: Keys,
    rule: ReplyRule,
    /// The keys still to read: first, last and step.
    next: Option<(u64, u64, u64)>,
    numkeys_read: bool,
}

/// Classifies one command of `args` arguments, fed in order.
#[derive(Debug)]
pub(super) struct Classifier {
    args: u64,
    in_multi: bool,
    step: Step,
    found: Vec<Vec<u8>>,
    name: Option<String>,
}

impl Classifier {
    /// A command of `args` (at least 1) arguments; `in_multi` when it follows `MULTI`.
    pub(super) fn new(args: u64, in_multi: bool) -> Self {
        Self {
            args,
            in_multi,
            step: Step::Name,
            found: Vec::new(),
            name: None,
        }
    }

    /// The decision, once made.
    pub(super) fn decision(&self) -> Option<&Decision> {
        match &self.step {
            Step::Done(d) => Some(d),
            _ => None,
        }
    }

    /// Whether a `MULTI` transaction is open after this command (known once its name is).
    pub(super) fn in_multi_after(&self) -> bool {
        match self.name.as_deref() {
            Some("multi") => true,
            Some("exec" | "discard" | "reset") => false,
            _ => self.in_multi,
        }
    }

    /// Whether argument `index` matters, and so must be passed whole to [`Self::arg`]. Each
    /// such argument may be up to [`KEY_MAX`] bytes; a longer one is passed as `None`.
    pub(super) fn wants(&self, index: u64) -> bool {
        match &self.step {
            Step::Name => index == 0,
            Step::Subcommand(_) => index == 1,
            Step::Keys(scan) => {
                scan.next.is_some_and(|(first, _, _)| first == index)
                    || scan.keys.numkeys_at() == Some(index)
            }
            Step::Done(_) => false,
        }
    }

    /// Takes argument `index` (which [`Self::wants`]); `None` when it was longer than
    /// [`KEY_MAX`].
    pub(super) fn arg(&mut self, index: u64, arg: Option<&[u8]>) {
        let step = std::mem::replace(&mut self.step, Step::Done(all()));
        self.step = match (step, arg) {
            (_, None) => Step::Done(all()),
            (Step::Name, Some(name)) => self.named(name),
            (Step::Subcommand(name), Some(sub)) => match lower(sub) {
                Some(sub) => self.looked_up(&format!("{name}|{sub}")),
                None => Step::Done(all()),
            },
            (Step::Keys(scan), Some(arg)) => self.key_arg(scan, index, arg),
            (done @ Step::Done(_), _) => done,
        };
    }

    /// A key or `numkeys` argument has arrived.
    fn key_arg(&mut self, mut scan: KeyScan, index: u64, arg: &[u8]) -> Step {
        if let Some((first, last, step)) = scan.next.filter(|(first, _, _)| *first == index) {
            self.found.push(arg.to_vec());
            scan.next = (first < last).then_some((first + step, last, step));
        } else if scan.keys.numkeys_at() == Some(index) {
            scan.numkeys_read = true;
            let count = std::str::from_utf8(arg)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            match count {
                Some(count) if count <= (KEYS_MAX - self.found.len()) as u64 => {
                    scan.next = scan.keys.after_numkeys(count, self.args);
                }
                _ => return Step::Done(all()),
            }
        }
        self.collecting(scan)
    }

    /// Argument 0 has arrived.
    fn named(&mut self, name: &[u8]) -> Step {
        let Some(name) = lower(name) else {
            return Step::Done(all());
        };
        self.name = Some(name.clone());
        if self.in_multi || name == "multi" {
            Step::Done(all())
        } else if commands::is_container(&name) && self.args > 1 {
            Step::Subcommand(name)
        } else {
            self.looked_up(&name)
        }
    }

    /// The command's table name is known.
    fn looked_up(&mut self, name: &str) -> Step {
        let rule = commands::reply_rule(name);
        let (write, keys) = match commands::class(name) {
            None => return Step::Done(Decision::Request(Access::All, rule)),
            Some(Class::Nothing) => return Step::Done(Decision::Request(Access::Nothing, rule)),
            Some(Class::Unpaired) => return Step::Done(Decision::Unpaired),
            Some(Class::Read(keys)) => (false, keys),
            Some(Class::Write(keys)) => (true, keys),
        };
        let next = keys.positions(self.args);
        let count = next.map_or(0, |(first, last, step)| (last - first) / step + 1);
        if count > KEYS_MAX as u64 {
            return Step::Done(all());
        }
        self.collecting(KeyScan {
            write,
            keys,
            rule,
            next,
            numkeys_read: false,
        })
    }

    /// Keys are being collected: decided once no key nor `numkeys` is left to read.
    fn collecting(&mut self, scan: KeyScan) -> Step {
        let numkeys_pending =
            !scan.numkeys_read && scan.keys.numkeys_at().is_some_and(|at| at < self.args);
        if scan.next.is_some() || numkeys_pending {
            return Step::Keys(scan);
        }
        let found = std::mem::take(&mut self.found);
        let access = if scan.write {
            Access::Write(found)
        } else {
            Access::Read(found)
        };
        Step::Done(Decision::Request(access, scan.rule))
    }
}

/// The conservative decision.
fn all() -> Decision {
    Decision::Request(Access::All, ReplyRule::Exact)
}

/// A command or subcommand name in lower case, `None` when too long to be one.
fn lower(name: &[u8]) -> Option<String> {
    (name.len() <= NAME_MAX).then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// Classifies a command whose arguments are all at hand (an inline command, a test).
pub(super) fn classify_args(args: &[Vec<u8>], in_multi: bool) -> Classifier {
    let mut classifier = Classifier::new(args.len() as u64, in_multi);
    for (i, arg) in args.iter().enumerate() {
        if classifier.decision().is_some() {
            break;
        }
        if classifier.wants(i as u64) {
            let arg = (arg.len() <= KEY_MAX).then_some(&arg[..]);
            classifier.arg(i as u64, arg);
        }
    }
    classifier
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(line: &str) -> Decision {
        let args: Vec<Vec<u8>> = line.split(' ').map(|a| a.as_bytes().to_vec()).collect();
        let classifier = classify_args(&args, false);
        classifier.decision().cloned().expect("decided")
    }

    fn keys(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    #[test]
    fn reads_writes_and_their_keys() {
        let read = |k: &[&str], rule| Decision::Request(Access::Read(keys(k)), rule);
        let write = |k: &[&str]| Decision::Request(Access::Write(keys(k)), ReplyRule::Exact);
        assert_eq!(decide("GET a"), read(&["a"], ReplyRule::Exact));
        assert_eq!(decide("mset a 1 b 2"), write(&["a", "b"]));
        assert_eq!(decide("LPUSH l x y"), write(&["l"]));
        assert_eq!(
            decide("ZUNIONSTORE d 2 a b WEIGHTS 1 2"),
            write(&["d", "a", "b"])
        );
        assert_eq!(decide("ZUNION 2 a b"), read(&["a", "b"], ReplyRule::Exact));
        assert_eq!(decide("OBJECT ENCODING k"), read(&["k"], ReplyRule::Exact));
        assert_eq!(decide("SMEMBERS s"), read(&["s"], ReplyRule::Unordered));
        assert_eq!(decide("HGETALL h"), read(&["h"], ReplyRule::UnorderedPairs));
        assert_eq!(decide("PFCOUNT h"), write(&["h"]));
        assert_eq!(
            decide("GET"),
            read(&[], ReplyRule::Exact),
            "arity error: no key"
        );
    }

    #[test]
    fn conservative_where_keys_are_unknown() {
        let all = all();
        for line in [
            "FLUSHALL",
            "EVAL x 1 k",
            "BLPOP a 0",
            "DBSIZE",
            "SCAN 0",
            "MULTI",
            "NOSUCH a",
            "SORT a STORE b",
            "CONFIG SET x y",
            "ZUNION x a",
            "ZUNION -1 a",
            "ZUNION 300 a",
        ] {
            assert_eq!(decide(line), all, "{line}");
        }
        let exec = classify_args(&[b"EXEC".to_vec()], true);
        assert_eq!(exec.decision(), Some(&all));
        assert!(!exec.in_multi_after());
        let queued = classify_args(&keys(&["GET", "a"]), true);
        assert_eq!(queued.decision(), Some(&all));
        assert!(queued.in_multi_after());
        let long_key = classify_args(&[b"GET".to_vec(), vec![b'k'; KEY_MAX + 1]], false);
        assert_eq!(long_key.decision(), Some(&all));
    }

    #[test]
    fn connection_local_commands_and_unpaired_ones() {
        let nothing = |rule| Decision::Request(Access::Nothing, rule);
        assert_eq!(decide("PING"), nothing(ReplyRule::Exact));
        assert_eq!(decide("COMMAND DOCS"), nothing(ReplyRule::UnorderedPairs));
        assert_eq!(decide("command"), nothing(ReplyRule::Unordered));
        assert_eq!(decide("SUBSCRIBE ch"), Decision::Unpaired);
        assert_eq!(decide("CLIENT REPLY OFF"), Decision::Unpaired);
        let all = |rule| Decision::Request(Access::All, rule);
        assert_eq!(decide("CONFIG GET *"), all(ReplyRule::UnorderedPairs));
        assert_eq!(decide("KEYS *"), all(ReplyRule::Unordered));
    }
}
