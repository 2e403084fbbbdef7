//! A real `redis-server` (Debian's package, installed by setup) on a loopback port, started and
//! stopped by the test: the shared counter store's tests and the replica tests use it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// TLS (a CA and a server certificate made with openssl) and a password, when set.
    tls: Option<Tls>,
}

pub struct Tls {
    pub dir: std::path::PathBuf,
    pub password: String,
}

impl Tls {
    pub fn ca(&self) -> std::path::PathBuf {
        self.dir.join("ca.pem")
    }
}

impl RedisServer {
    /// Starts one on a free port; panics (the test fails) if it does not answer in 10 s.
    pub fn start() -> RedisServer {
        RedisServer::started(None)
    }

    /// On a free loopback port, answering.
    fn started(tls: Option<Tls>) -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut server = RedisServer {
            port,
            child: None,
            tls,
        };
        server.restart();
        server
    }

    /// One that speaks only TLS (a certificate for 127.0.0.1 from a CA made here) and wants
    /// `password`.
    pub fn start_tls(dir: &std::path::Path, password: &str) -> RedisServer {
        // As the server does before its first TLS connection (two providers are compiled in).
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::fs::create_dir_all(dir).expect("a directory for the certificates");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=warden test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("san.ext");
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        RedisServer::started(Some(Tls {
            dir: dir.to_path_buf(),
            password: password.to_string(),
        }))
    }

    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    pub fn dsn(&self) -> String {
        match &self.tls {
            None => format!("redis://127.0.0.1:{}/0", self.port),
            Some(tls) => format!("rediss://:{}@127.0.0.1:{}/0", tls.password, self.port),
        }
    }

    /// Stops the server (its data is gone: nothing is saved).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        use std::os::unix::process::CommandExt as _;
        self.stop();
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &self.tls {
            None => {
                command.arg("--port").arg(self.port.to_string());
            }
            Some(tls) => {
                command
                    .args(["--port", "0", "--tls-port"])
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(tls.dir.join("server.pem"))
                    .arg("--tls-key-file")
                    .arg(tls.dir.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(tls.ca())
                    .args(["--tls-auth-clients", "no", "--requirepass"])
                    .arg(&tls.password);
            }
        }
        // SAFETY: prctl only, between fork and exec. The server dies with the thread that
        // started it (the test's), even when the test process is killed before Drop runs.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (run `make setup`: it installs Debian's redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let client = match &self.tls {
                None => redis::Client::open(self.dsn()),
                Some(tls) => redis::Client::build_with_tls(
                    self.dsn(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(std::fs::read(tls.ca()).expect("the CA")),
                    },
                ),
            };
            let answer = client.and_then(|client| {
                let mut connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
                redis::cmd("PING").query::<String>(&mut connection)
            });
            let why = match answer {
                Ok(_) => return,
                Err(e) => e.to_string(),
            };
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on port {} did not answer: {why}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
