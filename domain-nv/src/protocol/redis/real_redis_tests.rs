//! The framers against real redis-server processes (Debian's redis 7.0, from
//! `scripts/install-deps.sh`), each on a unix socket in a temporary directory: two processes
//! agree under the masks where their raw replies differ, and the keys found match redis's own
//! `COMMAND GETKEYS`.

use super::{RespReplies, RespRequests};
use crate::protocol::{Access, ReplyFramer, ReplyOutput, ReplyRule, RequestEvent, RequestFramer};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// One redis-server process, stopped on drop.
struct Redis {
    child: Child,
    dir: PathBuf,
}

impl Redis {
    fn start(name: &str) -> Redis {
        let dir = std::env::temp_dir().join(format!("nv-resp-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("redis.sock");
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&socket)
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/install-deps.sh)");
        let redis = Redis { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    /// Sends `requests` on a new connection, framed by [`RespRequests`], and reads the replies
    /// through [`RespReplies`]: the raw reply bytes and the framer's output.
    fn exchange(&self, requests: &[u8]) -> (Vec<RequestEvent>, Vec<u8>, ReplyOutput) {
        let mut events = Vec::new();
        RespRequests::new().feed(requests, &mut events);
        let mut replies = RespReplies::new();
        let mut expected = 0;
        for event in &events {
            if let RequestEvent::Begin { reply, .. } = event {
                replies.expect(*reply);
                expected += 1;
            }
        }
        let mut stream = UnixStream::connect(self.dir.join("redis.sock")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(requests).unwrap();
        let (mut raw, mut out, mut buf) = (Vec::new(), ReplyOutput::default(), vec![0; 65536]);
        while out.replies_done < expected {
            let n = stream.read(&mut buf).expect("a reply within 10 s");
            assert!(n > 0, "redis closed the connection");
            raw.extend_from_slice(&buf[..n]);
            replies.feed(&buf[..n], &mut out).unwrap();
        }
        (events, raw, out)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The length of the first reply in `raw`.
fn reply_len(raw: &[u8]) -> usize {
    let mut framer = RespReplies::new();
    framer.expect(ReplyRule::Exact);
    let mut out = ReplyOutput::default();
    (0..raw.len())
        .find(|&i| {
            framer.feed(&raw[i..=i], &mut out).unwrap();
            out.replies_done == 1
        })
        .expect("a whole reply")
        + 1
}

fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

#[test]
fn two_redis_processes_agree_under_the_masks() {
    let (a, b) = (Redis::start("a"), Redis::start("b"));
    let mut load = Vec::new();
    for i in 0..1000 {
        load.extend(command(&["SADD", "s", &format!("member-{i}")]));
        load.extend(command(&[
            "HSET",
            "h",
            &format!("field-{i}"),
            &format!("value-{i}"),
        ]));
    }
    a.exchange(&load);
    b.exchange(&load);
    let queries = [
        command(&["COMMAND", "DOCS"]),
        command(&["SMEMBERS", "s"]),
        command(&["HGETALL", "h"]),
        command(&["COMMAND"]),
        command(&["HKEYS", "h"]),
        b"command info config\r\n".to_vec(),
        command(&["SCARD", "s"]),
    ]
    .concat();
    let ((events, raw_a, out_a), (_, raw_b, out_b)) = (a.exchange(&queries), b.exchange(&queries));
    assert_ne!(raw_a, raw_b, "hash-table order differs between processes");
    assert_eq!(out_a.compare.len(), raw_a.len());
    assert!(out_a.compare == out_b.compare, "equal under the masks");
    assert_eq!(out_a.masked.len(), 6);
    let hgetall = &events[4];
    let rule = ReplyRule::UnorderedPairs;
    assert!(matches!(hgetall, RequestEvent::Begin { reply, .. } if *reply == rule));
    // RESP3: sets and maps are typed, and CONFIG GET's parameters come from a hash table too.
    let resp3 = [
        command(&["HELLO", "3"]),
        command(&["SMEMBERS", "s"]),
        command(&["HGETALL", "h"]),
        command(&["CONFIG", "GET", "*max-*-entries*"]),
    ]
    .concat();
    let ((_, raw_a, out_a), (_, raw_b, out_b)) = (a.exchange(&resp3), b.exchange(&resp3));
    let hello = reply_len(&raw_a);
    assert!(raw_a[hello..].starts_with(b"~1000\r\n"));
    assert_ne!(raw_a[hello..], raw_b[hello..]);
    assert!(
        out_a.compare[hello..] == out_b.compare[hello..],
        "equal under the masks"
    );
    assert_eq!(out_a.masked.len(), 3);
    // A changed value is still caught.
    let mut changed = load.clone();
    changed.extend(command(&["HSET", "h", "field-7", "other"]));
    b.exchange(&changed);
    assert!(a.exchange(&queries).2.compare != b.exchange(&queries).2.compare);
}

#[test]
fn keys_found_match_redis_command_getkeys() {
    let redis = Redis::start("keys");
    let samples: [&[&str]; 12] = [
        &["GET", "a"],
        &["MSET", "a", "1", "b", "2"],
        &["DEL", "a", "b", "c"],
        &["ZUNIONSTORE", "d", "2", "x", "y", "WEIGHTS", "1", "2"],
        &["ZINTER", "2", "x", "y"],
        &["LMPOP", "2", "l1", "l2", "LEFT"],
        &["BITOP", "AND", "d", "s1", "s2"],
        &["OBJECT", "ENCODING", "k"],
        &["XGROUP", "CREATE", "st", "g", "$"],
        &["LMOVE", "a", "b", "LEFT", "RIGHT"],
        &["SINTERCARD", "2", "s1", "s2", "LIMIT", "3"],
        &["GETEX", "k", "EX", "5"],
    ];
    for sample in samples {
        let mut getkeys = vec!["COMMAND", "GETKEYS"];
        getkeys.extend_from_slice(sample);
        let (_, raw, _) = redis.exchange(&command(&getkeys));
        let want: Vec<Vec<u8>> = raw
            .split(|&b| b == b'\n')
            .skip(2)
            .step_by(2)
            .map(|k| k.strip_suffix(b"\r").unwrap().to_vec())
            .collect();
        let mut found = Vec::new();
        RespRequests::new().feed(&command(sample), &mut found);
        let keys = match &found[0] {
            RequestEvent::Begin {
                access: Access::Read(k) | Access::Write(k),
                ..
            } => k.clone(),
            other => panic!("{sample:?}: {other:?}"),
        };
        assert_eq!(keys, want, "{sample:?}");
    }
}

/// One command's facts from redis's `COMMAND INFO` (a leaf command: not a container).
struct Info {
    flags: Vec<String>,
    legacy_keys: (i64, i64, i64),
    writes_keys: bool,
    keynum: bool,
    unordered: bool,
}

fn info(redis: &Redis, name: &str) -> Info {
    let (_, raw, _) = redis.exchange(&command(&["COMMAND", "INFO", name]));
    let text = String::from_utf8(raw).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    let count: usize = lines[5][1..].parse().unwrap();
    let flags: Vec<String> = lines[6..6 + count]
        .iter()
        .map(|f| f[1..].to_string())
        .collect();
    let int = |i: usize| lines[6 + count + i][1..].parse::<i64>().unwrap();
    let has = |line: &str| lines.contains(&line);
    Info {
        legacy_keys: (int(0), int(1), int(2)),
        writes_keys: has("+RW") || has("+OW") || has("+RM"),
        keynum: has("keynum"),
        unordered: text.contains("nondeterministic_output_order"),
        flags,
    }
}

#[test]
fn the_command_table_agrees_with_redis_command_info() {
    use super::commands::{class, is_container, reply_rule, Class, Keys};
    let redis = Redis::start("table");
    let (_, raw, _) = redis.exchange(&command(&["COMMAND", "LIST"]));
    let text = String::from_utf8(raw).unwrap();
    let names: Vec<&str> = text
        .split("\r\n")
        .skip(2)
        .step_by(2)
        .filter(|n| !n.is_empty())
        .collect();
    assert!(names.len() > 300, "COMMAND LIST lists subcommands too");
    for name in names.into_iter().filter(|n| !is_container(n)) {
        let info = info(&redis, name);
        let flag = |f: &str| info.flags.iter().any(|x| x == f);
        let keyed = info.legacy_keys.0 > 0 || flag("movablekeys");
        let check_keys = |keys: Keys| match keys {
            Keys::Range { first, last, step } => {
                let table = (i64::from(first), i64::from(last), i64::from(step));
                assert_eq!(table, info.legacy_keys, "{name}: key positions");
            }
            Keys::Numkeys { .. } => assert!(info.keynum && flag("movablekeys"), "{name}"),
        };
        match class(name) {
            Some(Class::Read(keys)) => {
                assert!(!flag("write") && !info.writes_keys, "{name}: reads only");
                check_keys(keys);
            }
            Some(Class::Write(keys)) => {
                assert!(flag("write") || info.writes_keys, "{name}");
                check_keys(keys);
            }
            Some(Class::Nothing | Class::Unpaired) => assert!(!keyed || flag("pubsub"), "{name}"),
            None => {
                let why = ["blocking", "admin", "pubsub", "movablekeys"];
                assert!(
                    !keyed || why.iter().any(|f| flag(f)),
                    "{name}: keyed but All"
                );
            }
        }
        let masked = reply_rule(name) != ReplyRule::Exact;
        let untagged = ["config|get", "pubsub|channels", "pubsub|shardchannels"];
        let unordered = info.unordered || untagged.contains(&name);
        assert_eq!(masked, unordered, "{name}: reply rule");
    }
}
