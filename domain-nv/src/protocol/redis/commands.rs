//! The command table: for each redis command (redis 7.0, as in Debian 12) whether it reads or
//! writes keys and where its keys are, and which replies list elements in no defined order.
//!
//! The facts come from redis's own command table (`COMMAND INFO`: the `readonly`/`write` flags,
//! the first/last/step key positions and the `numkeys` key specs, and the
//! `nondeterministic_output_order` tip). Only what ordering needs is kept:
//! - a command not listed here is [`Access::All`](crate::protocol::Access::All): unknown
//!   commands, admin and server commands (`FLUSHALL`, `CONFIG SET`, `DEBUG`, ...), commands that
//!   read the whole keyspace (`KEYS`, `SCAN`, `DBSIZE`, `RANDOMKEY`, `INFO`), scripts and
//!   functions (`EVAL`, `FCALL`: they may touch any key), blocking commands (`BLPOP`, `XREAD`,
//!   ...: they wait for another connection's write), `MULTI`/`EXEC`/`DISCARD`, `PUBLISH`, and
//!   commands whose keys hide behind keywords (`SORT ... STORE`, `GEORADIUS ... STORE`,
//!   `MIGRATE ... KEYS`);
//! - [`Class::Nothing`]: connection-local or constant commands that touch no shared state;
//! - [`Class::Read`] / [`Class::Write`]: a command flagged `readonly` whose key specs are all
//!   read-only is a read, any other keyed command a write (so `PFCOUNT`, which updates its HLL's
//!   cache, is a write);
//! - [`Class::Unpaired`]: commands after which replies no longer answer requests one to one
//!   (pub/sub, `MONITOR`, replication, `CLIENT REPLY`).

use crate::protocol::ReplyRule;

/// How a command touches the service's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Touches no shared state.
    Nothing,
    /// Only reads the keys found by [`Keys`].
    Read(Keys),
    /// Writes (and may read) the keys found by [`Keys`].
    Write(Keys),
    /// From this command on, replies do not answer requests one to one.
    Unpaired,
}

/// Where a command's keys are among its arguments (argument 0 is the command's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keys {
    /// Arguments `first`, `first + step`, ... up to `last` (negative: counted from the end, -1
    /// being the last argument).
    Range {
        /// Index of the first key.
        first: u8,
        /// Index of the last key, or its distance from the end when negative.
        last: i8,
        /// Distance between two keys.
        step: u8,
    },
    /// Arguments `1..at` are keys, argument `at` counts the keys that follow it (`numkeys`).
    Numkeys {
        /// Index of the `numkeys` argument.
        at: u8,
    },
}

const ONE: Keys = Keys::Range {
    first: 1,
    last: 1,
    step: 1,
};
const ALL_ARGS: Keys = Keys::Range {
    first: 1,
    last: -1,
    step: 1,
};
const FIRST_TWO: Keys = Keys::Range {
    first: 1,
    last: 2,
    step: 1,
};
const FROM_SECOND: Keys = Keys::Range {
    first: 2,
    last: -1,
    step: 1,
};
const AFTER_SUB: Keys = Keys::Range {
    first: 2,
    last: 2,
    step: 1,
};
const PAIRS: Keys = Keys::Range {
    first: 1,
    last: -1,
    step: 2,
};
const NUMKEYS_AT_1: Keys = Keys::Numkeys { at: 1 };
const NUMKEYS_AT_2: Keys = Keys::Numkeys { at: 2 };

/// Commands whose first argument names a subcommand, looked up as `command|subcommand`.
const CONTAINERS: [&str; 15] = [
    "acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module",
    "object", "pubsub", "script", "slowlog", "xgroup", "xinfo",
];

use Class::{Nothing, Read, Unpaired, Write};

/// Every command that is not [`Access::All`](crate::protocol::Access::All), sorted by name.
#[rustfmt::skip]
const TABLE: &[(&str, Class)] = &[
    ("append", Write(ONE)), ("asking", Nothing), ("auth", Nothing), ("bitcount", Read(ONE)),
    ("bitfield", Write(ONE)), ("bitfield_ro", Read(ONE)), ("bitop", Write(FROM_SECOND)),
    ("bitpos", Read(ONE)), ("client|getname", Nothing), ("client|id", Nothing),
    ("client|info", Nothing), ("client|reply", Unpaired), ("client|setname", Nothing),
    ("command", Nothing), ("command|count", Nothing), ("command|docs", Nothing),
    ("command|getkeys", Nothing), ("command|getkeysandflags", Nothing), ("command|info", Nothing),
    ("command|list", Nothing), ("copy", Write(FIRST_TWO)), ("decr", Write(ONE)),
    ("decrby", Write(ONE)), ("del", Write(ALL_ARGS)), ("dump", Read(ONE)), ("echo", Nothing),
    ("exists", Read(ALL_ARGS)), ("expire", Write(ONE)), ("expireat", Write(ONE)),
    ("expiretime", Read(ONE)), ("geoadd", Write(ONE)), ("geodist", Read(ONE)),
    ("geohash", Read(ONE)), ("geopos", Read(ONE)), ("georadius_ro", Read(ONE)),
    ("georadiusbymember_ro", Read(ONE)), ("geosearch", Read(ONE)),
    ("geosearchstore", Write(FIRST_TWO)), ("get", Read(ONE)), ("getbit", Read(ONE)),
    ("getdel", Write(ONE)), ("getex", Write(ONE)), ("getrange", Read(ONE)), ("getset", Write(ONE)),
    ("hdel", Write(ONE)), ("hello", Nothing), ("hexists", Read(ONE)), ("hget", Read(ONE)),
    ("hgetall", Read(ONE)), ("hincrby", Write(ONE)), ("hincrbyfloat", Write(ONE)),
    ("hkeys", Read(ONE)), ("hlen", Read(ONE)), ("hmget", Read(ONE)), ("hmset", Write(ONE)),
    ("hrandfield", Read(ONE)), ("hscan", Read(ONE)), ("hset", Write(ONE)), ("hsetnx", Write(ONE)),
    ("hstrlen", Read(ONE)), ("hvals", Read(ONE)), ("incr", Write(ONE)), ("incrby", Write(ONE)),
    ("incrbyfloat", Write(ONE)), ("lcs", Read(FIRST_TWO)), ("lindex", Read(ONE)),
    ("linsert", Write(ONE)), ("llen", Read(ONE)), ("lmove", Write(FIRST_TWO)),
    ("lmpop", Write(NUMKEYS_AT_1)), ("lolwut", Nothing), ("lpop", Write(ONE)), ("lpos", Read(ONE)),
    ("lpush", Write(ONE)), ("lpushx", Write(ONE)), ("lrange", Read(ONE)), ("lrem", Write(ONE)),
    ("lset", Write(ONE)), ("ltrim", Write(ONE)), ("memory|usage", Read(AFTER_SUB)),
    ("mget", Read(ALL_ARGS)), ("monitor", Unpaired), ("move", Write(ONE)), ("mset", Write(PAIRS)),
    ("msetnx", Write(PAIRS)), ("object|encoding", Read(AFTER_SUB)),
    ("object|freq", Read(AFTER_SUB)), ("object|idletime", Read(AFTER_SUB)),
    ("object|refcount", Read(AFTER_SUB)), ("persist", Write(ONE)), ("pexpire", Write(ONE)),
    ("pexpireat", Write(ONE)), ("pexpiretime", Read(ONE)), ("pfadd", Write(ONE)),
    ("pfcount", Write(ALL_ARGS)), ("pfmerge", Write(ALL_ARGS)), ("ping", Nothing),
    ("psetex", Write(ONE)), ("psubscribe", Unpaired), ("psync", Unpaired), ("pttl", Read(ONE)),
    ("punsubscribe", Unpaired), ("quit", Nothing), ("readonly", Nothing), ("readwrite", Nothing),
    ("rename", Write(FIRST_TWO)), ("renamenx", Write(FIRST_TWO)), ("reset", Nothing),
    ("restore", Write(ONE)), ("restore-asking", Write(ONE)), ("rpop", Write(ONE)),
    ("rpoplpush", Write(FIRST_TWO)), ("rpush", Write(ONE)), ("rpushx", Write(ONE)),
    ("sadd", Write(ONE)), ("scard", Read(ONE)), ("sdiff", Read(ALL_ARGS)),
    ("sdiffstore", Write(ALL_ARGS)), ("select", Nothing), ("set", Write(ONE)),
    ("setbit", Write(ONE)), ("setex", Write(ONE)), ("setnx", Write(ONE)), ("setrange", Write(ONE)),
    ("sinter", Read(ALL_ARGS)), ("sintercard", Read(NUMKEYS_AT_1)),
    ("sinterstore", Write(ALL_ARGS)), ("sismember", Read(ONE)), ("smembers", Read(ONE)),
    ("smismember", Read(ONE)), ("smove", Write(FIRST_TWO)), ("spop", Write(ONE)),
    ("srandmember", Read(ONE)), ("srem", Write(ONE)), ("sscan", Read(ONE)),
    ("ssubscribe", Unpaired), ("strlen", Read(ONE)), ("subscribe", Unpaired),
    ("substr", Read(ONE)), ("sunion", Read(ALL_ARGS)), ("sunionstore", Write(ALL_ARGS)),
    ("sunsubscribe", Unpaired), ("sync", Unpaired), ("time", Nothing), ("touch", Read(ALL_ARGS)),
    ("ttl", Read(ONE)), ("type", Read(ONE)), ("unlink", Write(ALL_ARGS)),
    ("unsubscribe", Unpaired), ("unwatch", Nothing), ("watch", Read(ALL_ARGS)), ("xack", Write(ONE)),
    ("xadd", Write(ONE)), ("xautoclaim", Write(ONE)), ("xclaim", Write(ONE)), ("xdel", Write(ONE)),
    ("xgroup|create", Write(AFTER_SUB)), ("xgroup|createconsumer", Write(AFTER_SUB)),
    ("xgroup|delconsumer", Write(AFTER_SUB)), ("xgroup|destroy", Write(AFTER_SUB)),
    ("xgroup|setid", Write(AFTER_SUB)), ("xinfo|consumers", Read(AFTER_SUB)),
    ("xinfo|groups", Read(AFTER_SUB)), ("xinfo|stream", Read(AFTER_SUB)), ("xlen", Read(ONE)),
    ("xpending", Read(ONE)), ("xrange", Read(ONE)), ("xrevrange", Read(ONE)),
    ("xsetid", Write(ONE)), ("xtrim", Write(ONE)), ("zadd", Write(ONE)), ("zcard", Read(ONE)),
    ("zcount", Read(ONE)), ("zdiff", Read(NUMKEYS_AT_1)), ("zdiffstore", Write(NUMKEYS_AT_2)),
    ("zincrby", Write(ONE)), ("zinter", Read(NUMKEYS_AT_1)), ("zintercard", Read(NUMKEYS_AT_1)),
    ("zinterstore", Write(NUMKEYS_AT_2)), ("zlexcount", Read(ONE)), ("zmpop", Write(NUMKEYS_AT_1)),
    ("zmscore", Read(ONE)), ("zpopmax", Write(ONE)), ("zpopmin", Write(ONE)),
    ("zrandmember", Read(ONE)), ("zrange", Read(ONE)), ("zrangebylex", Read(ONE)),
    ("zrangebyscore", Read(ONE)), ("zrangestore", Write(FIRST_TWO)), ("zrank", Read(ONE)),
    ("zrem", Write(ONE)), ("zremrangebylex", Write(ONE)), ("zremrangebyrank", Write(ONE)),
    ("zremrangebyscore", Write(ONE)), ("zrevrange", Read(ONE)), ("zrevrangebylex", Read(ONE)),
    ("zrevrangebyscore", Read(ONE)), ("zrevrank", Read(ONE)), ("zscan", Read(ONE)),
    ("zscore", Read(ONE)), ("zunion", Read(NUMKEYS_AT_1)), ("zunionstore", Write(NUMKEYS_AT_2)),
];

/// Replies that list elements in no defined order: those redis tags
/// `nondeterministic_output_order` (hash-table iteration order, which differs between redis
/// processes), plus `CONFIG GET` and `PUBSUB CHANNELS`/`SHARDCHANNELS` (from hash tables too,
/// untagged). Map-shaped replies, a flat array of pairs in RESP2, are
/// [`ReplyRule::UnorderedPairs`].
const UNORDERED: [(&str, ReplyRule); 17] = [
    ("command", ReplyRule::Unordered),
    ("command|docs", ReplyRule::UnorderedPairs),
    ("command|info", ReplyRule::Unordered),
    ("command|list", ReplyRule::Unordered),
    ("config|get", ReplyRule::UnorderedPairs),
    ("function|list", ReplyRule::Unordered),
    ("hgetall", ReplyRule::UnorderedPairs),
    ("hkeys", ReplyRule::Unordered),
    ("hvals", ReplyRule::Unordered),
    ("keys", ReplyRule::Unordered),
    ("module|list", ReplyRule::Unordered),
    ("pubsub|channels", ReplyRule::Unordered),
    ("pubsub|shardchannels", ReplyRule::Unordered),
    ("sdiff", ReplyRule::Unordered),
    ("sinter", ReplyRule::Unordered),
    ("smembers", ReplyRule::Unordered),
    ("sunion", ReplyRule::Unordered),
];

/// Whether `name` (lower case) takes a subcommand.
pub(super) fn is_container(name: &str) -> bool {
    CONTAINERS.contains(&name)
}

/// The class of `name` (lower case; `command|subcommand` for a container), `None` when it is
/// [`Access::All`](crate::protocol::Access::All).
pub(super) fn class(name: &str) -> Option<Class> {
    TABLE
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| TABLE[i].1)
}

/// How replies to `name` (lower case; `command|subcommand` for a container) are compared.
pub(super) fn reply_rule(name: &str) -> ReplyRule {
    UNORDERED
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(ReplyRule::Exact, |(_, rule)| *rule)
}

impl Keys {
    /// The key positions of a command with `args` arguments: the first key, the last one and
    /// the step, or `None` when it has none. For [`Keys::Numkeys`], the keys before `numkeys`
    /// (`numkeys` itself is read later, see [`Keys::after_numkeys`]).
    pub(super) fn positions(self, args: u64) -> Option<(u64, u64, u64)> {
        let (first, last, step) = match self {
            Keys::Range { first, last, step } => {
                let last = if last < 0 {
                    args.checked_sub(u64::from(last.unsigned_abs()))?
                } else {
                    u64::from(last as u8).min(args.checked_sub(1)?)
                };
                (u64::from(first), last, u64::from(step))
            }
            Keys::Numkeys { at } => (1, u64::from(at).checked_sub(1)?, 1),
        };
        (first <= last && last < args).then(|| (first, last - (last - first) % step, step))
    }

    /// For [`Keys::Numkeys`]: the index of the `numkeys` argument.
    pub(super) fn numkeys_at(self) -> Option<u64> {
        match self {
            Keys::Numkeys { at } => Some(u64::from(at)),
            Keys::Range { .. } => None,
        }
    }

    /// For [`Keys::Numkeys`] with `numkeys` read as `count`: the positions of the keys after it,
    /// `None` when `count` is 0 or the command has fewer arguments than that.
    pub(super) fn after_numkeys(self, count: u64, args: u64) -> Option<(u64, u64, u64)> {
        let at = self.numkeys_at()?;
        let last = at.checked_add(count)?;
        (count > 0 && last < args).then_some((at + 1, last, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_so_lookups_find_every_entry() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(TABLE.iter().all(|(name, _)| class(name).is_some()));
        assert_eq!(class("get"), Some(Read(ONE)));
        assert_eq!(class("flushall"), None);
        assert_eq!(class("eval"), None);
        assert_eq!(class("blpop"), None);
    }

    #[test]
    fn key_positions_follow_the_argument_count() {
        assert_eq!(ONE.positions(2), Some((1, 1, 1)));
        assert_eq!(ONE.positions(1), None);
        assert_eq!(ALL_ARGS.positions(4), Some((1, 3, 1)));
        assert_eq!(PAIRS.positions(5), Some((1, 3, 2)));
        assert_eq!(
            PAIRS.positions(4),
            Some((1, 3, 2)),
            "MSET k v k: the last key is 3"
        );
        assert_eq!(FROM_SECOND.positions(3), Some((2, 2, 1)));
        assert_eq!(FROM_SECOND.positions(2), None);
        assert_eq!(FIRST_TWO.positions(2), Some((1, 1, 1)));
        assert_eq!(NUMKEYS_AT_1.positions(5), None);
        assert_eq!(NUMKEYS_AT_2.positions(5), Some((1, 1, 1)));
        assert_eq!(NUMKEYS_AT_2.after_numkeys(2, 5), Some((3, 4, 1)));
        assert_eq!(NUMKEYS_AT_2.after_numkeys(3, 5), None);
        assert_eq!(NUMKEYS_AT_1.after_numkeys(0, 5), None);
    }
}
