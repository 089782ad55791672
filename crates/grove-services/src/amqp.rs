//! Just enough AMQP 0-9-1 for a health check: connect, authenticate (PLAIN),
//! open a vhost and a channel, close. What an app's first call does, so a
//! broker that passes it serves apps.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FRAME_METHOD: u8 = 1;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;

/// Connects as `user` to `vhost` and opens channel 1.
pub async fn check(
    network: &grove_runtime::Network,
    addr: SocketAddr,
    user: &str,
    password: &str,
    vhost: &str,
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, handshake(network, addr, user, password, vhost)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no AMQP handshake with {addr} within {timeout:?}")),
    }
}

async fn handshake(
    network: &grove_runtime::Network,
    addr: SocketAddr,
    user: &str,
    password: &str,
    vhost: &str,
) -> Result<(), String> {
    let mut stream = network
        .connect_tcp(addr)
        .await
        .map_err(|e| format!("could not connect to {addr}: {e}"))?;
    let io = |e: std::io::Error| format!("AMQP connection to {addr}: {e}");
    stream
        .write_all(b"AMQP\x00\x00\x09\x01")
        .await
        .map_err(io)?;

    expect(&mut stream, (10, 10), "connection.start").await?;
    let mut start_ok = method(10, 11);
    start_ok.extend_from_slice(&0u32.to_be_bytes()); // client properties: empty table
    short_str(&mut start_ok, "PLAIN");
    long_str(&mut start_ok, format!("\0{user}\0{password}").as_bytes());
    short_str(&mut start_ok, "en_US");
    send(&mut stream, 0, &start_ok).await.map_err(io)?;

    let tune = expect(&mut stream, (10, 30), "connection.tune").await?;
    let mut tune_ok = method(10, 31);
    tune_ok.extend_from_slice(tune.get(4..10).ok_or("short connection.tune")?); // channel-max, frame-max
    tune_ok.extend_from_slice(&0u16.to_be_bytes()); // no heartbeats
    send(&mut stream, 0, &tune_ok).await.map_err(io)?;

    let mut open = method(10, 40);
    short_str(&mut open, vhost);
    short_str(&mut open, "");
    open.push(0);
    send(&mut stream, 0, &open).await.map_err(io)?;
    expect(&mut stream, (10, 41), "connection.open-ok").await?;

    let mut channel_open = method(20, 10);
    short_str(&mut channel_open, "");
    send(&mut stream, 1, &channel_open).await.map_err(io)?;
    expect(&mut stream, (20, 11), "channel.open-ok").await?;

    let mut close = method(10, 50);
    close.extend_from_slice(&200u16.to_be_bytes());
    short_str(&mut close, "health check done");
    close.extend_from_slice(&[0, 0, 0, 0]);
    send(&mut stream, 0, &close).await.map_err(io)?;
    // The close-ok is a courtesy; the check has passed.
    let _ = tokio::time::timeout(Duration::from_secs(1), read_frame(&mut stream)).await;
    Ok(())
}

fn method(class: u16, method: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&method.to_be_bytes());
    out
}

fn short_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(255)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn long_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

async fn send(stream: &mut TcpStream, channel: u16, payload: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.push(FRAME_METHOD);
    frame.extend_from_slice(&channel.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame.push(FRAME_END);
    stream.write_all(&frame).await
}

/// The next method frame's payload.
async fn read_frame(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    loop {
        let mut header = [0u8; 7];
        stream.read_exact(&mut header).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "the broker closed the connection (wrong credentials or vhost?)".to_owned()
            } else {
                e.to_string()
            }
        })?;
        if &header[..4] == b"AMQP" {
            return Err("the broker does not speak AMQP 0-9-1".to_owned());
        }
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
        if size > 1 << 20 {
            return Err(format!("implausible AMQP frame of {size} bytes"));
        }
        let mut payload = vec![0u8; size + 1];
        stream
            .read_exact(&mut payload)
            .await
            .map_err(|e| e.to_string())?;
        if payload.pop() != Some(FRAME_END) {
            return Err("malformed AMQP frame".to_owned());
        }
        match header[0] {
            FRAME_METHOD => return Ok(payload),
            FRAME_HEARTBEAT => continue,
            other => return Err(format!("unexpected AMQP frame type {other}")),
        }
    }
}

async fn expect(
    stream: &mut TcpStream,
    (class, method): (u16, u16),
    name: &str,
) -> Result<Vec<u8>, String> {
    let payload = read_frame(stream).await?;
    let got = (
        u16::from_be_bytes([
            payload.first().copied().unwrap_or(0),
            payload.get(1).copied().unwrap_or(0),
        ]),
        u16::from_be_bytes([
            payload.get(2).copied().unwrap_or(0),
            payload.get(3).copied().unwrap_or(0),
        ]),
    );
    if got == (class, method) {
        return Ok(payload);
    }
    if got == (10, 50) || got == (20, 40) {
        // connection.close / channel.close: reply-code, reply-text.
        let code = payload
            .get(4..6)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .unwrap_or(0);
        let text = payload
            .get(6)
            .and_then(|len| payload.get(7..7 + usize::from(*len)))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        return Err(format!("the broker refused: {code} {text}"));
    }
    Err(format!(
        "expected {name}, got AMQP method {}.{}",
        got.0, got.1
    ))
}
