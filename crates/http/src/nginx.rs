//! nginx as an external relay: a generated config in a directory of its own, the server as a
//! child process, and a guard that stops it and removes every file it made.
//!
//! The config follows the installed version: `listen ... http2` before 1.25.1, `http2 on;`
//! from then on. Behind it, an `upstream` block with a `keepalive` pool, reached with
//! `proxy_http_version 1.1` and an empty `Connection` header (without both, nginx opens a
//! connection per request). Optionally `proxy_cache`, with `x-cache` set from
//! `$upstream_cache_status`, so the client splits hits and misses as with the built-in relay.
//! nginx runs in the foreground (`daemon off`) with a master and `worker_processes` workers;
//! [`Nginx::cpu_time`] sums the CPU of all of them from `/proc`.

use std::fmt;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Address, HttpError, Protocol};

/// How long a stopping nginx may take before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(3);
/// Where nginx is looked for besides `PATH`.
const SEARCH_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"];

/// An nginx version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NginxVersion(pub u32, pub u32, pub u32);

impl NginxVersion {
    /// Whether `http2 on;` replaces the `http2` parameter of `listen` (1.25.1 and later).
    pub fn has_http2_directive(self) -> bool {
        self >= NginxVersion(1, 25, 1)
    }

    /// Whether the `-e` flag (early error log path) exists (1.19.5 and later).
    pub fn has_error_log_flag(self) -> bool {
        self >= NginxVersion(1, 19, 5)
    }

    /// Parses `nginx version: nginx/1.22.1` (what `nginx -v` prints), or a bare `1.22.1`.
    pub fn parse(text: &str) -> Option<NginxVersion> {
        let start = text.find("nginx/").map_or(0, |i| i + "nginx/".len());
        let version = text[start..].split_whitespace().next()?;
        let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
        Some(NginxVersion(
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        ))
    }
}

impl fmt::Display for NginxVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What the generated nginx does.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// A directory (a test's temporary one, say) in which nginx gets a fresh subdirectory.
    pub dir: PathBuf,
    /// The loopback port to listen on; 0 picks a free one.
    pub port: u16,
    /// The front protocol (cleartext; h2 by prior knowledge).
    pub front: Protocol,
    /// The origin, over HTTP/1.1.
    pub upstream: Address,
    /// Idle keep-alive connections kept per worker to the origin (`keepalive N`), at least 1.
    pub keepalive: usize,
    /// Cache `200` responses (`proxy_cache`) and mark answers with `x-cache`.
    pub cache: bool,
    /// Write an access log (buffered) into the directory; off saves nginx CPU per request.
    pub access_log: bool,
    /// `worker_processes`.
    pub workers: usize,
    /// `http2_max_concurrent_streams`.
    pub max_streams: u32,
    /// How long nginx may take to start listening.
    pub start_limit: Duration,
}

impl Default for NginxConfig {
    fn default() -> NginxConfig {
        NginxConfig {
            dir: std::env::temp_dir(),
            port: 0,
            front: Protocol::H2,
            upstream: Address::localhost(0),
            keepalive: 8,
            cache: false,
            access_log: true,
            workers: 1,
            max_streams: 128,
            start_limit: Duration::from_secs(5),
        }
    }
}

/// The nginx binary: `nginx` on `PATH`, else the usual sbin directories.
///
/// # Errors
/// [`HttpError::NginxMissing`] when there is none.
pub fn find_nginx() -> Result<PathBuf, HttpError> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(SEARCH_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .ok_or(HttpError::NginxMissing)
}

/// The version of the nginx at `binary` (`nginx -v`).
///
/// # Errors
/// [`HttpError::Nginx`] when it does not run or prints no version.
pub fn nginx_version(binary: &Path) -> Result<NginxVersion, HttpError> {
    let output = Command::new(binary)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HttpError::Nginx(format!("cannot run `{} -v`: {e}", binary.display())))?;
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    NginxVersion::parse(&text).ok_or_else(|| HttpError::Nginx(format!("no version in `nginx -v` output: {text}")))
}

/// The text of `nginx.conf` for `config`, listening on `port`, with every path under `dir`.
pub fn render_config(config: &NginxConfig, version: NginxVersion, dir: &Path, port: u16, run_as_root: bool) -> String {
    let d = dir.display();
    let http2 = config.front == Protocol::H2;
    let (listen_flag, http2_line) = match (http2, version.has_http2_directive()) {
        (false, _) => ("", ""),
        (true, false) => (" http2", ""),
        (true, true) => ("", "        http2 on;\n"),
    };
    let upstream = match &config.upstream {
        Address::Tcp(addr) => addr.to_string(),
        Address::Unix(path) => format!("unix:{}", path.display()),
    };
    let user = if run_as_root { "user root;\n" } else { "" };
    let access_log = if config.access_log {
        format!("access_log {d}/access.log combined buffer=64k flush=1s;")
    } else {
        "access_log off;".to_owned()
    };
    let (cache_path, cache) = if config.cache {
        (
            format!(
                "    proxy_cache_path {d}/cache levels=1:2 keys_zone=ipcbench:10m max_size=256m inactive=10m use_temp_path=off;\n"
            ),
            "            proxy_cache ipcbench;\n            proxy_cache_valid 200 10m;\n            add_header x-cache $upstream_cache_status always;\n",
        )
    } else {
        (String::new(), "")
    };
    format!(
        "# generated by ipcbench-http for nginx {version}; removed when the relay stops
{user}worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    {access_log}
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    http2_max_concurrent_streams {streams};
{cache_path}    upstream ipcbench_origin {{
        server {upstream};
        keepalive {keepalive};
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port}{listen_flag};
{http2_line}        location / {{
            proxy_pass http://ipcbench_origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffers 64 16k;
            proxy_buffer_size 16k;
            proxy_max_temp_file_size 0;
{cache}        }}
    }}
}}
",
        workers = config.workers,
        streams = config.max_streams,
        keepalive = config.keepalive,
    )
}

/// A running nginx; dropping it stops nginx (master and workers) and removes its directory.
#[derive(Debug)]
pub struct Nginx {
    child: Option<Child>,
    dir: PathBuf,
    address: Address,
    version: NginxVersion,
}

impl Nginx {
    /// Writes the config, starts nginx and waits (bounded) until it accepts connections.
    ///
    /// # Errors
    /// [`HttpError::NginxMissing`] without nginx; [`HttpError::Nginx`] when it fails to start
    /// or to listen within `start_limit` (with the end of its error log);
    /// [`HttpError::InvalidConfig`] for a bad upstream or `keepalive`.
    pub fn start(config: &NginxConfig) -> Result<Nginx, HttpError> {
        let binary = find_nginx()?;
        let version = nginx_version(&binary)?;
        config.upstream.check_local()?;
        if config.keepalive == 0 || config.workers == 0 || config.max_streams == 0 {
            return Err(HttpError::InvalidConfig(
                "nginx `keepalive`, `workers` and `max_streams` must be at least 1".into(),
            ));
        }
        let port = match config.port {
            0 => free_port()?,
            port => port,
        };
        let dir = config.dir.join(format!("nginx-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir).map_err(HttpError::io("creating the nginx directory"))?;
        // From here on the guard owns the directory, so every error path removes it.
        let mut nginx = Nginx {
            child: None,
            dir,
            address: Address::localhost(port),
            version,
        };
        let run_as_root = rustix::process::geteuid().is_root();
        let conf = nginx.dir.join("nginx.conf");
        fs::write(&conf, render_config(config, version, &nginx.dir, port, run_as_root))
            .map_err(HttpError::io("writing nginx.conf"))?;
        let stderr =
            fs::File::create(nginx.dir.join("stderr.log")).map_err(HttpError::io("creating nginx's stderr log"))?;
        let mut command = Command::new(&binary);
        command.arg("-p").arg(&nginx.dir).arg("-c").arg(&conf);
        if version.has_error_log_flag() {
            command.arg("-e").arg(nginx.dir.join("error.log"));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| HttpError::Nginx(format!("cannot start `{}`: {e}", binary.display())))?;
        nginx.child = Some(child);
        nginx.wait_listening(port, config.start_limit)?;
        Ok(nginx)
    }

    fn wait_listening(&mut self, port: u16, limit: Duration) -> Result<(), HttpError> {
        let deadline = Instant::now() + limit;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            let child = self.child.as_mut().expect("started");
            if let Ok(Some(status)) = child.try_wait() {
                return Err(HttpError::Nginx(format!("exited with {status}: {}", self.log_tail())));
            }
            // The master listens before it forks its workers: ready once both are true.
            let pid = child.id();
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() && !children(pid).is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HttpError::Nginx(format!(
                    "not listening on {addr} with a worker after {limit:?}: {}",
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where it listens.
    pub fn address(&self) -> Address {
        self.address.clone()
    }

    /// The master process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The installed version the config was written for.
    pub fn version(&self) -> NginxVersion {
        self.version
    }

    /// The directory holding its config, logs and temporary files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The worker processes' ids (children of the master, from `/proc`).
    pub fn worker_pids(&self) -> Vec<u32> {
        children(self.pid())
    }

    /// User plus system CPU time of the master and its workers so far (`/proc/PID/stat`).
    ///
    /// # Errors
    /// [`HttpError::Io`] when the master's stat cannot be read.
    pub fn cpu_time(&self) -> Result<Duration, HttpError> {
        process_tree_cpu(self.pid())
    }

    /// The last lines of its error log (for error messages).
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        for name in ["stderr.log", "error.log"] {
            if let Ok(log) = fs::read_to_string(self.dir.join(name)) {
                text.push_str(&log);
            }
        }
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        if tail.is_empty() {
            "(error log empty)".into()
        } else {
            tail
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let workers = children(child.id());
            let pid = rustix::process::Pid::from_child(&child);
            // TERM is nginx's fast shutdown: the master stops its workers, then itself.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + STOP_LIMIT;
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
            // Workers whose master was killed would linger; they are ours, end them too.
            for worker in workers {
                if is_nginx(worker)
                    && let Some(pid) = rustix::process::Pid::from_raw(worker as i32)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// User plus system CPU time so far of process `pid` and its direct children (an nginx
/// master and its workers), from `/proc/PID/stat`.
///
/// # Errors
/// [`HttpError::Io`] when the process's stat cannot be read (it is gone).
pub fn process_tree_cpu(pid: u32) -> Result<Duration, HttpError> {
    let mut total = process_cpu(pid).map_err(HttpError::io("reading /proc/PID/stat"))?;
    for child in children(pid) {
        // A child that just exited has no stat any more; it no longer uses CPU either.
        total += process_cpu(child).unwrap_or_default();
    }
    Ok(total)
}

/// The direct children of process `pid` (an nginx master's workers), from `/proc`.
pub fn child_pids(pid: u32) -> Vec<u32> {
    children(pid)
}

fn free_port() -> Result<u16, HttpError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|source| HttpError::Bind {
        address: "127.0.0.1:0".into(),
        source,
    })?;
    let port = listener
        .local_addr()
        .map_err(HttpError::io("reading a free port"))?
        .port();
    Ok(port)
}

/// Fields of `/proc/PID/stat` after the parenthesized command name (which may hold spaces).
fn stat_fields(pid: u32) -> std::io::Result<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    Ok(after.split_whitespace().map(str::to_owned).collect())
}

fn process_cpu(pid: u32) -> std::io::Result<Duration> {
    let fields = stat_fields(pid)?;
    // After the name: state(0) ppid(1) ... utime(11) stime(12), in clock ticks.
    let ticks = |idx: usize| fields.get(idx).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Ok(Duration::from_nanos(
        (ticks(11) + ticks(12)) * 1_000_000_000 / per_second,
    ))
}

fn children(parent: u32) -> Vec<u32> {
    if parent == 0 {
        return Vec::new();
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat_fields(pid)
                .ok()
                .and_then(|fields| fields.get(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

fn is_nginx(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).starts_with("nginx"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parses_from_nginx_output() {
        assert_eq!(
            NginxVersion::parse("nginx version: nginx/1.22.1\n"),
            Some(NginxVersion(1, 22, 1))
        );
        assert_eq!(NginxVersion::parse("1.27"), Some(NginxVersion(1, 27, 0)));
        assert_eq!(NginxVersion::parse("nginx version: unknown"), None);
    }

    #[test]
    fn http2_syntax_follows_the_version() {
        let config = NginxConfig {
            upstream: Address::localhost(9000),
            ..NginxConfig::default()
        };
        let dir = Path::new("/tmp/x");
        let old = render_config(&config, NginxVersion(1, 22, 1), dir, 8080, false);
        assert!(old.contains("listen 127.0.0.1:8080 http2;"));
        assert!(!old.contains("http2 on;"));
        let new = render_config(&config, NginxVersion(1, 26, 0), dir, 8080, false);
        assert!(new.contains("listen 127.0.0.1:8080;"));
        assert!(new.contains("http2 on;"));
        assert!(new.contains("keepalive 8;"));
        assert!(new.contains("proxy_set_header Connection \"\";"));
    }
}
