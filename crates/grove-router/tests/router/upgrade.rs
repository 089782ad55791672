//! WebSocket and other protocol upgrades pass through the router to the app.

use grove_router::RouteTable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

/// An app that switches to `websocket` when asked, then echoes what it reads; the
/// request heads it saw go to `heads`.
async fn echoing_app(heads: tokio::sync::mpsc::UnboundedSender<String>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
    let addr = listener.local_addr().expect("app address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                let asks = head
                    .to_ascii_lowercase()
                    .contains("\r\nupgrade: websocket\r\n");
                let _ = heads.send(head);
                if !asks {
                    write(
                        &mut stream,
                        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain",
                    )
                    .await;
                    return;
                }
                write(
                    &mut stream,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                )
                .await;
                let mut buffer = [0u8; 1024];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// The echoing app behind the router, a raw connection to the router that sent
/// `request`, the head of the router's answer, and the heads the app saw.
struct Sent {
    app: std::net::SocketAddr,
    table: RouteTable,
    _router: Router,
    socket: tokio::net::TcpStream,
    answer: String,
    heads: tokio::sync::mpsc::UnboundedReceiver<String>,
}

async fn send(request: &str) -> Sent {
    let (heads_tx, heads) = tokio::sync::mpsc::unbounded_channel();
    let app = echoing_app(heads_tx).await;
    let table = RouteTable::new();
    table.set(OWNER, entries(app));
    let router = Router::start(&table).await;
    let mut socket = router.connect().await;
    write(&mut socket, request).await;
    let answer = read_head(&mut socket).await;
    Sent {
        app,
        table,
        _router: router,
        socket,
        answer,
        heads,
    }
}

#[tokio::test]
async fn a_websocket_is_switched_by_the_app_and_bytes_flow_both_ways() {
    let Sent {
        app,
        table,
        _router,
        mut socket,
        answer,
        mut heads,
    } = send(&format!(
        "GET /socket HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ))
    .await;
    let lower = answer.to_ascii_lowercase();
    assert!(
        answer.starts_with("HTTP/1.1 101 ")
            && lower.contains("\r\nupgrade: websocket\r\n")
            && lower.contains("\r\nconnection: upgrade\r\n"),
        "{answer}"
    );
    let seen = heads
        .recv()
        .await
        .expect("the app's request head")
        .to_ascii_lowercase();
    assert!(
        seen.contains("\r\nconnection: upgrade\r\n")
            && seen.contains("\r\nsec-websocket-version: 13\r\n")
            && seen.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"),
        "{seen}"
    );

    for message in ["hello", "and again"] {
        socket.write_all(message.as_bytes()).await.expect("write");
        let mut echoed = vec![0u8; message.len()];
        socket.read_exact(&mut echoed).await.expect("echo");
        assert_eq!(echoed, message.as_bytes());
    }
    assert_eq!(
        table.in_flight(app),
        0,
        "an open WebSocket is not a request a deploy waits for"
    );

    // The client closes its side: the app sees the end and closes too.
    socket.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(EVENTUALLY, socket.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?} {rest:?}");
}

#[tokio::test]
async fn an_app_that_does_not_switch_answers_as_usual() {
    let (heads_tx, _heads) = tokio::sync::mpsc::unbounded_channel();
    let app = echoing_app(heads_tx).await;
    let table = RouteTable::new();
    table.set(OWNER, entries(app));
    let router = Router::start(&table).await;

    let mut socket = router.connect().await;
    write(
        &mut socket,
        &format!(
            "GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: h2c-or-else\r\n\r\n"
        ),
    )
    .await;
    let answer = read_head(&mut socket).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let mut body = [0u8; 5];
    socket.read_exact(&mut body).await.expect("body");
    assert_eq!(&body, b"plain");
    assert!(
        !answer.to_ascii_lowercase().contains("upgrade:"),
        "no upgrade was made: {answer}"
    );
}
