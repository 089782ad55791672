//! Network namespaces of our own: one per environment, so that what an
//! environment's apps and services listen on (`127.0.0.1:$PORT`, their
//! `127.64.x.y` addresses) exists only for that environment.
//!
//! A [`NetNs`] is a namespace with nothing but a loopback interface, created by
//! one thread of ours (`grove-netns`) that unshares its network namespace and
//! stays in it for as long as a handle exists. That thread is also how the
//! daemon itself reaches into the namespace: a socket belongs to the namespace
//! of the thread that created it, and keeps it wherever it is used later, so
//! [`NetNs::connect_tcp`] has the thread create the socket and connects it on
//! the async runtime. Sandboxes join it with `nsenter --net` before bwrap runs
//! ([`crate::SandboxSpec::network`]).
//!
//! Nothing is named in `/run/netns` and no address is assigned outside it: the
//! namespace disappears with its last handle and last process, including when
//! the daemon crashes.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rustix::net::{AddressFamily, SocketFlags, SocketType};

type Job = Box<dyn FnOnce() + Send>;

/// A network namespace with only `lo`, up. Cheap to clone; the namespace lives
/// while a clone (or a process inside it) does. Two handles are equal when they
/// are the same namespace.
#[derive(Clone)]
pub struct NetNs {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    /// `/proc/thread-self/ns/net` of the namespace's thread.
    fd: OwnedFd,
    /// Work for the namespace's thread; the thread ends when this is dropped.
    jobs: std::sync::mpsc::Sender<Job>,
}

/// Live namespaces by id, for whoever holds only the id (the router's
/// connection pool keys on a URI authority).
static LIVE: Mutex<Vec<(u64, Weak<Inner>)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl NetNs {
    /// A fresh namespace. Needs `CAP_SYS_ADMIN` (the daemon runs as root).
    pub fn new() -> io::Result<NetNs> {
        let (jobs, receive) = std::sync::mpsc::channel::<Job>();
        let (created, wait_created) = std::sync::mpsc::sync_channel::<io::Result<OwnedFd>>(1);
        std::thread::Builder::new()
            .name("grove-netns".to_owned())
            .spawn(move || {
                let fd = enter_new_namespace();
                let ok = fd.is_ok();
                if created.send(fd).is_err() || !ok {
                    return;
                }
                // Serve until every handle is gone.
                while let Ok(job) = receive.recv() {
                    job();
                }
            })?;
        let fd = wait_created
            .recv()
            .map_err(|_| io::Error::other("the namespace thread ended early"))??;
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            fd,
            jobs,
        });
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|(_, weak)| weak.strong_count() > 0);
        live.push((inner.id, Arc::downgrade(&inner)));
        Ok(NetNs { inner })
    }

    /// The live namespace with this [`NetNs::id`], if any.
    pub fn by_id(id: u64) -> Option<NetNs> {
        let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, weak)| weak.upgrade())
            .map(|inner| NetNs { inner })
    }

    /// A number unique to this namespace within this process, never reused.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// A path that opens this namespace (for `nsenter --net=`), valid while this
    /// handle lives.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.inner.fd.as_raw_fd()
        ))
    }

    /// Runs `f` on a thread inside the namespace: sockets it creates belong to
    /// the namespace. `f` should be quick (it delays the namespace's other work).
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> io::Result<R> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| io::Error::other("the namespace's thread is gone"))?;
        result
            .await
            .map_err(|_| io::Error::other("the namespace's thread is gone"))
    }

    /// Like [`NetNs::run`], blocking the calling thread (not for async code).
    pub fn run_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> io::Result<R> {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| io::Error::other("the namespace's thread is gone"))?;
        result
            .recv()
            .map_err(|_| io::Error::other("the namespace's thread is gone"))
    }

    /// A TCP connection to `addr` as seen from inside the namespace.
    pub async fn connect_tcp(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let family = if addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let fd = self
            .run(move || {
                rustix::net::socket_with(
                    family,
                    SocketType::STREAM,
                    SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                    None,
                )
            })
            .await??;
        let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        socket.connect(addr).await
    }
}

/// The namespace's descriptor (for `setns`).
impl AsFd for NetNs {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

impl PartialEq for NetNs {
    fn eq(&self, other: &NetNs) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for NetNs {}

impl std::hash::Hash for NetNs {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}

impl fmt::Debug for NetNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetNs({})", self.inner.id)
    }
}

impl fmt::Display for NetNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "netns {}", self.inner.id)
    }
}

/// Moves the calling thread into a new network namespace, brings its `lo` up
/// and returns the namespace's descriptor.
fn enter_new_namespace() -> io::Result<OwnedFd> {
    unshare_network()?;
    let fd = rustix::fs::open(
        "/proc/thread-self/ns/net",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    loopback_up()?;
    Ok(fd)
}

#[allow(unsafe_code)]
fn unshare_network() -> io::Result<()> {
    // SAFETY: `unshare_unsafe` is unsafe because of `CLONE_FILES` (a thread
    // could lose descriptors others rely on). We unshare only the network
    // namespace, on a thread of our own that shares no descriptors' fate.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .map_err(io::Error::from)
}

/// `ip link set lo up` through rtnetlink (`RTM_NEWLINK` on interface 1, which
/// is `lo` in every new namespace), waiting for the kernel's acknowledgement.
fn loopback_up() -> io::Result<()> {
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const NLMSG_ERROR: u16 = 2;
    const IFF_UP: u32 = 1;
    const LOOPBACK_INDEX: i32 = 1;

    let socket = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None, // NETLINK_ROUTE
    )?;
    let mut message = Vec::with_capacity(32);
    message.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    message.extend_from_slice(&RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    message.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
    message.push(0); // ifi_family: AF_UNSPEC
    message.push(0); // padding
    message.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    message.extend_from_slice(&LOOPBACK_INDEX.to_ne_bytes()); // ifi_index
    message.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    message.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    rustix::net::send(&socket, &message, rustix::net::SendFlags::empty())?;

    let mut answer = [0u8; 256];
    let (len, _) = rustix::net::recv(&socket, &mut answer, rustix::net::RecvFlags::empty())?;
    let field = |at: usize| -> Option<[u8; 4]> { answer.get(at..at + 4)?.try_into().ok() };
    let kind = answer
        .get(4..6)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_ne_bytes);
    // An acknowledgement is an NLMSG_ERROR whose error code (after the header)
    // is 0; otherwise it is -errno.
    match (len >= 20, kind, field(16).map(i32::from_ne_bytes)) {
        (true, Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (true, Some(NLMSG_ERROR), Some(errno)) => {
            Err(io::Error::from_raw_os_error(errno.saturating_neg()))
        }
        _ => Err(io::Error::other(
            "unexpected answer from rtnetlink bringing up lo",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    fn listen_in(ns: &NetNs, ip: Ipv4Addr) -> TcpListener {
        ns.run_blocking(move || TcpListener::bind((ip, 0)))
            .expect("namespace thread")
            .expect("bind inside the namespace")
    }

    #[tokio::test]
    async fn a_listener_is_reachable_only_from_its_own_namespace() {
        let a = NetNs::new().expect("namespace a");
        let b = NetNs::new().expect("namespace b");
        assert_ne!(a, b);
        for ip in [Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 64, 3, 9)] {
            let listener = listen_in(&a, ip);
            listener.set_nonblocking(true).expect("nonblocking");
            let addr = listener.local_addr().expect("local address");

            let from_b = b.connect_tcp(addr).await;
            assert_eq!(
                from_b.map(drop).map_err(|e| e.kind()),
                Err(io::ErrorKind::ConnectionRefused),
                "{addr} from another namespace"
            );
            // The host may have a listener of its own on 127.0.0.1:P; what
            // counts is that nothing reached ours.
            let _from_host = tokio::net::TcpStream::connect(addr).await;
            assert_eq!(
                listener.accept().map(drop).map_err(|e| e.kind()),
                Err(io::ErrorKind::WouldBlock),
                "{addr} was reached from outside its namespace"
            );

            let _from_a = a
                .connect_tcp(addr)
                .await
                .expect("reachable from its own namespace");
            listener.set_nonblocking(false).expect("blocking");
            listener
                .accept()
                .expect("the connection from its own namespace");
        }
    }

    #[tokio::test]
    async fn the_namespace_has_only_loopback_and_ends_with_its_handles() {
        let ns = NetNs::new().expect("namespace");
        let id = ns.id();
        assert_eq!(NetNs::by_id(id), Some(ns.clone()));
        let interfaces = ns
            .run(|| std::fs::read_to_string("/proc/thread-self/net/dev"))
            .await
            .expect("namespace thread")
            .expect("read net/dev");
        let names: Vec<&str> = interfaces
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(names, ["lo"], "{interfaces}");
        drop(ns);
        assert_eq!(NetNs::by_id(id), None);
    }
}
