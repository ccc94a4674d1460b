//! Helper programs the tests start (dnsmasq, pebble): their output goes to a file that a
//! failing test prints, and a port reserved for one is held until the moment it starts.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A started helper program; killed on drop.
pub struct Peer {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Peer {
    /// Starts `command` with stdout and stderr in a log file of its own.
    pub fn spawn(name: &'static str, mut command: Command) -> Peer {
        let dir = tempfile::TempDir::new().unwrap();
        let log = dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        command
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{name} cannot start ({e}); is it installed?"));
        Peer {
            name,
            child,
            log,
            _dir: dir,
        }
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it already ended (it could not start, e.g. its port was taken).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Fails the test with what the program printed.
    pub fn fail(&self, why: &str) -> ! {
        panic!("{}: {why}; its output:\n{}", self.name, self.output())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 held for UDP and TCP (a DNS server binds both) until `release`: a port
/// chosen now for a program started later cannot be taken meanwhile by anything else that
/// asks the system for a free port, nor picked as the local port of an outgoing connection.
pub struct HeldPort {
    sockets: Option<(std::net::UdpSocket, std::net::TcpListener)>,
    pub port: u16,
}

impl HeldPort {
    pub fn new() -> Self {
        for _ in 0..50 {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                return Self {
                    sockets: Some((udp, tcp)),
                    port,
                };
            }
        }
        panic!("no port on 127.0.0.1 is free for both UDP and TCP");
    }

    /// Frees the port for the program about to bind it.
    pub fn release(&mut self) {
        self.sockets.take();
    }
}

/// moto's S3 server on 127.0.0.1 (`SHARD_TEST_MOTO`, else `moto_server` on the PATH; the test
/// script installs it), with bucket `bucket` made. With `open_actions`, moto checks
/// credentials after that many requests (the bucket's creation is the first): a key it never
/// issued is then refused, as a real store refuses a wrong one.
pub struct Moto {
    _peer: Peer,
    pub endpoint: String,
}

impl Moto {
    pub async fn start(bucket: &str, open_actions: Option<u32>) -> Moto {
        let program = std::env::var("SHARD_TEST_MOTO").unwrap_or_else(|_| "moto_server".into());
        let port = crate::helpers::free_port();
        let mut command = Command::new(program);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(n) = open_actions {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let mut peer = Peer::spawn("moto_server", command);
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if peer.exited() {
                peer.fail("it exited");
            }
            if let Ok(r) = client.put(format!("{endpoint}/{bucket}")).send().await {
                if !r.status().is_success() {
                    let said = r.text().await.unwrap_or_default();
                    peer.fail(&format!("cannot make bucket {bucket}: {said}"));
                }
                break;
            }
            if std::time::Instant::now() > deadline {
                peer.fail("it did not answer within 60 s");
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Moto {
            _peer: peer,
            endpoint,
        }
    }

    /// The keys in `bucket` (moto answers an unsigned listing while it checks no credentials).
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let body = reqwest::get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }
}
