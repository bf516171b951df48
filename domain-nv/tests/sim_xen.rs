//! The appliance in Xen mode on the simulated Xen (`xen::sim`): every link is a vif served by
//! netback in the NV domain, every guest a Linux-like test netfront with a smoltcp stack (the
//! client on the external vif, three replicas running a tiny line server, r2 answering wrongly).
//! What the lab shows under QEMU, here in milliseconds: health probes make the replicas `live`
//! before any client arrives (what `nvctl up` waits for), a client gets the majority's answer
//! while r2 is reported, and a replica whose domain goes away mid-answer does not hold the stream.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use domain_nv::appliance::Appliance;
use domain_nv::config::Config;
use domain_nv::voter::Role;
use netback::testfront::{FrontOptions, TestFront};
use netback::testhost::{add_vif_guest, start_netback};
use nv_schema::status::ReplicaHealth;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use xen::sim::{SimEventChannel, SimGrantTable, SimHost, SimXen};

const MAJORITY_ANSWER: &[u8] = b"hello from the majority\n";
const FAULTY_ANSWER: &[u8] = b"hello from a faulty one\n";
/// Listening sockets per replica (health probes and clients each take one).
const LISTENERS: usize = 4;

/// A guest with a vif, its test netfront and a smoltcp stack.
struct Guest {
    front: TestFront,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: Vec<SocketHandle>,
    /// Bytes of the answer already sent, per socket answering a request.
    answering: HashMap<SocketHandle, usize>,
}

impl Guest {
    /// Creates a domain whose vif 0 (named `vifname` by the toolstack) is served by the NV
    /// domain.
    fn new(host: &SimHost, vifname: &str, ip: [u8; 4], sockets: usize, start: Instant) -> Guest {
        let g = add_vif_guest(host, 1500, false).expect("guest domain and vif");
        host.dom0
            .write(
                &format!("/local/domain/{}/backend/vif/{g}/0/vifname", host.nv),
                vifname.as_bytes(),
            )
            .expect("vifname");
        let mut front = TestFront::new(&host.sim, g, 0, FrontOptions::default()).expect("netfront");
        let mut iface = Interface::new(
            IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress([
                0x02, 0, 0, 0, 1, g as u8,
            ]))),
            &mut front,
            smol(start),
        );
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(ip[0], ip[1], ip[2], ip[3]), 24))
                .expect("address")
        });
        let mut set = SocketSet::new(Vec::new());
        let tcp = (0..sockets)
            .map(|_| {
                set.add(tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; 4096]),
                    tcp::SocketBuffer::new(vec![0; 4096]),
                ))
            })
            .collect();
        Guest {
            front,
            iface,
            sockets: set,
            tcp,
            answering: HashMap::new(),
        }
    }

    fn poll(&mut self, sim: &SimXen, start: Instant) {
        self.front.poll(sim).expect("netfront poll");
        self.iface
            .poll(smol(start), &mut self.front, &mut self.sockets);
    }

    /// The replica's service: answers a line with `answer` (as much per call as the socket
    /// takes) and closes; keeps listening.
    fn serve(&mut self, answer: &[u8]) {
        for &h in &self.tcp {
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            match s.state() {
                State::Closed => {
                    self.answering.remove(&h);
                    s.listen(80).expect("listen")
                }
                State::CloseWait if s.send_queue() == 0 && !self.answering.contains_key(&h) => {
                    s.close()
                }
                _ => {}
            }
            if s.can_recv() {
                let line_done = s.recv(|b| (b.len(), b.contains(&b'\n'))).unwrap_or(false);
                if line_done {
                    self.answering.insert(h, 0);
                }
            }
            if let Some(sent) = self.answering.get_mut(&h) {
                *sent += s.send_slice(&answer[*sent..]).unwrap_or(0);
                if *sent == answer.len() {
                    self.answering.remove(&h);
                    s.close();
                }
            }
        }
    }
}

fn smol(start: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(start.elapsed().as_micros() as i64)
}

/// Every replica's address: all replica links are addressed the same, as nvctl renders them
/// (each is its own link with its own neighbour cache in domain-nv).
const REPLICA_IP: [u8; 4] = [10, 77, 0, 2];

const CONFIG: &str = "policy: majority
straggler_timeout_ms: 2000
connect_timeout_ms: 1000
external:
  link: { kind: vif, name: ext }
  address: 10.0.0.1/24
services:
  - name: line
    listen: 80
    replica_port: 80
replicas:
  - { name: r0, link: { kind: vif, name: r0 }, address: 10.77.0.1/24, replica_address: 10.77.0.2 }
  - { name: r1, link: { kind: vif, name: r1 }, address: 10.77.0.1/24, replica_address: 10.77.0.2 }
  - { name: r2, link: { kind: vif, name: r2 }, address: 10.77.0.1/24, replica_address: 10.77.0.2 }
";

/// The NV domain and its guests, run in one thread.
struct Host {
    host: SimHost,
    app: Appliance<SimGrantTable, SimEventChannel>,
    client: Guest,
    replicas: Vec<Guest>,
    /// What each replica answers.
    answers: Vec<Vec<u8>>,
    /// Replicas that read requests but never answer.
    silent: Vec<bool>,
    /// Replicas whose domain is gone (their netfront closed): no longer run.
    gone: Vec<bool>,
    start: Instant,
}

impl Host {
    /// The three replicas of `CONFIG`, r2 answering wrongly.
    fn new() -> Host {
        Host::with(
            CONFIG,
            vec![
                MAJORITY_ANSWER.to_vec(),
                MAJORITY_ANSWER.to_vec(),
                FAULTY_ANSWER.to_vec(),
            ],
        )
    }

    fn with(config: &str, answers: Vec<Vec<u8>>) -> Host {
        let start = Instant::now();
        let host = SimHost::new().expect("sim host");
        let mut nb = start_netback(&host).expect("netback");
        nb.set_hotplug_agent(true);
        let client = Guest::new(&host, "ext", [10, 0, 0, 2], 1, start);
        let replicas = (0..3u8)
            .map(|i| {
                let name = format!("r{i}");
                Guest::new(&host, &name, REPLICA_IP, LISTENERS, start)
            })
            .collect();
        let app = Appliance::new(Config::from_yaml(config).expect("config"), Some(nb))
            .expect("appliance");
        Host {
            host,
            app,
            client,
            replicas,
            silent: vec![false; answers.len()],
            gone: vec![false; answers.len()],
            answers,
            start,
        }
    }

    /// One round of the NV domain and of every guest.
    fn round(&mut self) {
        self.app.step(Instant::now());
        for (i, r) in self.replicas.iter_mut().enumerate() {
            if self.gone[i] {
                continue;
            }
            r.poll(&self.host.sim, self.start);
            if !self.silent[i] {
                r.serve(&self.answers[i]);
            }
        }
        self.client.poll(&self.host.sim, self.start);
    }

    /// Connects the client to the service from local port `port` and sends one request line.
    fn client_request(&mut self, port: u16) {
        let c = self.client.tcp[0];
        let cx = self.client.iface.context();
        self.client
            .sockets
            .get_mut::<tcp::Socket>(c)
            .connect(
                cx,
                (IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1)), 80),
                port,
            )
            .expect("connect");
        self.run_until("the client connected", |h| {
            h.client.sockets.get::<tcp::Socket>(c).may_send()
        });
        self.client
            .sockets
            .get_mut::<tcp::Socket>(c)
            .send_slice(b"GET\n")
            .expect("send");
    }

    /// Appends what the client received to `got`; false once the answer ended (FIN).
    fn client_read(&mut self, got: &mut Vec<u8>) -> bool {
        let s = self
            .client
            .sockets
            .get_mut::<tcp::Socket>(self.client.tcp[0]);
        while s.can_recv() {
            s.recv(|b| {
                got.extend_from_slice(b);
                (b.len(), ())
            })
            .expect("recv");
        }
        s.may_recv()
    }

    /// Runs rounds until `cond` holds, at most 10 s.
    fn run_until(&mut self, what: &str, mut cond: impl FnMut(&mut Host) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {}",
                self.app.status().status().to_json()
            );
            self.round();
            std::thread::yield_now();
        }
    }
}

#[test]
fn replicas_on_vifs_are_probed_live_and_the_majority_answers_the_client() {
    let mut h = Host::new();
    h.run_until("every replica live before any client", |h| {
        h.app
            .status()
            .status()
            .replicas
            .iter()
            .all(|r| r.state == ReplicaHealth::Live)
    });
    let st = h.app.status().status().clone();
    assert_eq!(st.services[0].total, 0, "{}", st.to_json());
    assert!(
        st.replicas.iter().all(|r| r.faults.is_empty()),
        "{}",
        st.to_json()
    );

    h.client_request(40000);
    let mut got = Vec::new();
    h.run_until("the answer and the close", |h| !h.client_read(&mut got));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(MAJORITY_ANSWER)
    );
    h.run_until("r2 reported faulty", |h| {
        h.app.status().status().replicas[2].state == ReplicaHealth::Faulty
    });
    let st = h.app.status().status().clone();
    assert_eq!(
        st.replicas[2].faults[0].kind,
        "value-mismatch",
        "{}",
        st.to_json()
    );
    assert!(
        st.replicas[..2]
            .iter()
            .all(|r| r.faults.is_empty() && r.state == ReplicaHealth::Live),
        "{}",
        st.to_json()
    );
    // r2 is excluded: new connections do not connect to it, and the other two must agree.
    assert_eq!(
        h.app.membership().roles(),
        vec![Role::Member, Role::Member, Role::Absent]
    );
    // Issue 15: netback's counters of every vif that carried traffic are in the status.
    let st = h.app.status().status().clone();
    assert!(st.vifs.len() >= 3, "{}", st.to_json());
    for v in &st.vifs {
        for k in ["tx-frames", "rx-frames", "copy-calls", "events", "notifies"] {
            assert!(v.counters[k] > 0, "{} {k}: {}", v.name, st.to_json());
        }
    }
}

/// With `buffer_limit` 4 KiB and a 64 KiB answer, a replica that stops answering holds the
/// stream once the others are 4 KiB ahead of it; the straggler timeout (10 min here) would cut
/// it off. When its domain goes away instead, its link is lost and its connection ends at once
/// (a reset, not a straggler): the client gets the whole answer from r1 and r2.
#[test]
fn a_replica_whose_domain_goes_away_mid_answer_does_not_hold_the_stream() {
    let config = CONFIG
        .replace("straggler_timeout_ms: 2000", "straggler_timeout_ms: 600000")
        .replace("policy: majority", "policy: majority\nbuffer_limit: 4096");
    let answer: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut h = Host::with(&config, vec![answer.clone(); 3]);
    h.run_until("every replica live", |h| {
        h.app
            .status()
            .status()
            .replicas
            .iter()
            .all(|r| r.state == ReplicaHealth::Live)
    });
    h.silent[0] = true;
    h.client_request(40001);
    let mut got = Vec::new();
    h.run_until(
        "r1 and r2 ahead of the silent r0 by more than the buffer",
        |h| {
            h.client_read(&mut got);
            h.app.status().status().replicas[0].connections == 1
                && h.replicas[1].answering.values().all(|&n| n > 8 * 1024)
        },
    );
    h.replicas[0].front.close().expect("r0's netfront closes");
    h.gone[0] = true;
    h.run_until("the whole answer and the close", |h| {
        !h.client_read(&mut got)
    });
    assert_eq!(got.len(), answer.len());
    assert!(got == answer, "the client got other bytes than the answer");
    let st = h.app.status().status().clone();
    assert!(
        st.replicas[0].faults.iter().all(|f| f.kind != "straggler"),
        "{}",
        st.to_json()
    );
    assert!(
        st.replicas[1..].iter().all(|r| r.faults.is_empty()),
        "{}",
        st.to_json()
    );
}

/// Waits until every configured replica is `live`.
fn all_live(h: &mut Host) {
    h.run_until("every replica live", |h| {
        h.app
            .status()
            .status()
            .replicas
            .iter()
            .all(|r| r.state == ReplicaHealth::Live)
    });
}

/// A config change that changes a key fixed for the appliance's life (here a service's port) is
/// refused with the key's name, and the appliance goes on with the running config.
#[test]
fn a_config_change_of_a_fixed_key_is_refused_and_the_running_config_kept() {
    let answers = vec![MAJORITY_ANSWER.to_vec(); 3];
    let mut h = Host::with(CONFIG, answers);
    all_live(&mut h);
    let changed = CONFIG.replace("listen: 80", "listen: 8080").replace(
        "name: r2, link: { kind: vif, name: r2 }",
        "name: r3, link: { kind: vif, name: r3 }",
    );
    let err = h
        .app
        .reconfigure(Config::from_yaml(&changed).expect("config"), Instant::now())
        .expect_err("a service's port cannot change in place");
    let refused = err
        .downcast_ref::<domain_nv::appliance::Refused>()
        .expect("refused, naming the key");
    assert_eq!(refused.key, "services");
    assert!(err.to_string().contains("`services`"), "{err}");
    // Nothing changed: the same replicas, and clients still reach port 80.
    let names: Vec<String> = h
        .app
        .status()
        .status()
        .replicas
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, ["r0", "r1", "r2"]);
    h.client_request(40002);
    let mut got = Vec::new();
    h.run_until("the answer and the close", |h| !h.client_read(&mut got));
    assert_eq!(got, MAJORITY_ANSWER);
}

/// A config change that replaces r2 by r2-g1 (a new domain on a new vif) while a 64 KiB answer
/// is on its way: the connection goes on with r0 and r1 and the client gets the whole answer,
/// nobody is blamed, r2-g1 joins on probation and the next connection works.
#[test]
fn replacing_a_replica_in_place_keeps_an_open_connection() {
    let config = CONFIG.replace("policy: majority", "policy: majority\nbuffer_limit: 4096");
    let answer: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut h = Host::with(&config, vec![answer.clone(); 3]);
    all_live(&mut h);
    h.client_request(40003);
    let mut got = Vec::new();
    h.run_until("the answer under way", |h| {
        h.client_read(&mut got);
        !got.is_empty() && h.replicas[0].answering.values().all(|&n| n > 8 * 1024)
    });
    assert!(got.len() < answer.len(), "the answer is not over yet");
    let g1 = Guest::new(&h.host, "r2-g1", REPLICA_IP, LISTENERS, h.start);
    h.replicas.push(g1);
    h.answers.push(answer.clone());
    h.silent.push(false);
    h.gone.push(false);
    let replaced = config.replace(
        "{ name: r2, link: { kind: vif, name: r2 }, address: 10.77.0.1/24, replica_address: 10.77.0.2 }",
        "{ name: r2-g1, link: { kind: vif, name: r2-g1 }, address: 10.77.0.1/24, replica_address: 10.77.0.2 }",
    );
    h.app
        .reconfigure(
            Config::from_yaml(&replaced).expect("config"),
            Instant::now(),
        )
        .expect("replacing a replica is applied in place");
    assert_eq!(h.app.connections(), 1, "the open connection goes on");
    h.run_until("the whole answer and the close", |h| {
        !h.client_read(&mut got)
    });
    assert_eq!(got.len(), answer.len());
    assert!(got == answer, "the client got other bytes than the answer");
    let st = h.app.status().status().clone();
    let names: Vec<&str> = st.replicas.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["r0", "r1", "r2-g1"]);
    assert!(
        st.replicas.iter().all(|r| r.faults.is_empty()),
        "{}",
        st.to_json()
    );
    assert_eq!(
        h.app.membership().roles(),
        vec![Role::Member, Role::Member, Role::Observer]
    );
    h.run_until("r2-g1 probed serving", |h| {
        h.app.status().status().replicas[2].state == ReplicaHealth::Joining
    });
    // The next connection: r0 and r1 vote, r2-g1 is compared.
    // The client is done with its socket (its answer ended): it is reused for the next one.
    let c = h.client.tcp[0];
    h.client.sockets.get_mut::<tcp::Socket>(c).abort();
    h.round();
    h.client_request(40004);
    let mut next = Vec::new();
    h.run_until("the next answer and the close", |h| {
        !h.client_read(&mut next)
    });
    assert!(next == answer, "the next connection got other bytes");
}
