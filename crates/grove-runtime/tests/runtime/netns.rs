//! Sandboxes in network namespaces of ours: an environment's apps see each
//! other on loopback, and nothing of another environment's or of the host's.

use std::time::Duration;

use grove_runtime::{Instance, NetNs, Network, SandboxSpec};

use crate::support::{free_addr, run, spec};

/// A one-shot sandbox in `network` that tries to connect to 127.0.0.1:`port`
/// and prints `connect_ex`'s answer (0: connected, 111: refused).
async fn connect_from(network: &Network, port: u16) -> String {
    let app = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(
        app.path(),
        &format!(
            "python3 -c \"import socket; s = socket.socket(); s.settimeout(5); \
             print(s.connect_ex(('127.0.0.1', {port})))\""
        ),
    );
    spec.network = network.clone();
    let (outcome, lines) = run(&spec).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    lines.join("\n")
}

#[tokio::test]
async fn an_app_in_a_namespace_is_reachable_only_from_that_namespace() {
    let a = Network::Namespace(NetNs::new().expect("namespace a"));
    let b = Network::Namespace(NetNs::new().expect("namespace b"));
    let app = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    // A port nothing on the host listens on, so the host's answer is its own.
    let port = free_addr().port();
    let mut server = SandboxSpec::new(
        app.path(),
        "exec python3 -m http.server $PORT --bind 127.0.0.1",
    );
    server.env = vec![("PORT".into(), port.to_string())];
    server.network = a.clone();
    let instance = Instance::spawn(server, logs.path().join("app.log")).expect("spawn");
    // The readiness probe connects from inside the namespace.
    instance
        .wait_ready(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(30),
        )
        .await
        .expect("ready inside its namespace");

    assert_eq!(connect_from(&a, port).await, "0", "from its own namespace");
    assert_eq!(
        connect_from(&b, port).await,
        "111",
        "from another namespace"
    );
    assert_eq!(
        connect_from(&Network::Host, port).await,
        "111",
        "from the host"
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the daemon reached it on the host's loopback"
    );
    instance.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_namespaced_sandbox_gets_no_descriptor_of_the_namespace() {
    let netns = NetNs::new().expect("namespace");
    let app = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(
        app.path(),
        "readlink /proc/self/ns/net; for fd in /proc/self/fd/*; do readlink $fd; done; true",
    );
    spec.network = Network::Namespace(netns.clone());
    let (outcome, lines) = run(&spec).await;
    assert!(outcome.success(), "{outcome}: {lines:?}");
    let ours = std::fs::read_link(netns.path()).expect("namespace link");
    assert_eq!(
        lines.first().map(String::as_str),
        ours.to_str(),
        "{lines:?}"
    );
    assert!(
        !lines.iter().skip(1).any(|l| l.starts_with("net:")),
        "{lines:?}"
    );
}
