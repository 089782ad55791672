//! The headline: a steady stream of requests across redeploys, none failing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use grove_router::RouteTable;
use hyper::{Method, StatusCode};

use crate::support::*;

const REDEPLOYS: usize = 10;
/// ~50 requests per second.
const REQUEST_INTERVAL: Duration = Duration::from_millis(20);
/// What each request takes the app, so that some are in flight at every switch.
const LATENCY: Duration = Duration::from_millis(30);
/// What the `deploy` hook of each redeploy takes.
const DEPLOY_HOOK: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_redeploys_under_constant_traffic_fail_no_request() {
    let first = Upstream::with_latency("v0", LATENCY).await;
    let table = RouteTable::new();
    table.set(OWNER, entries(first.addr));
    let router = Router::start(&table).await;
    let client = router.client();

    // The traffic: a request every 20 ms, each in its own task so that held requests
    // do not slow the stream down; GETs mostly, some POSTs (never held) and PUTs.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut requests = Vec::new();
            let mut tick = tokio::time::interval(REQUEST_INTERVAL);
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let (method, body) = match n % 5 {
                    0 => (Method::POST, "{\"order\":1}"),
                    1 => (Method::PUT, ""),
                    _ => (Method::GET, ""),
                };
                let client = client.clone();
                requests.push(tokio::spawn(async move {
                    let reply = client.send(method.clone(), &format!("/r/{n}"), body).await;
                    (method, reply)
                }));
                n += 1;
            }
            let mut outcomes = Vec::new();
            for request in requests {
                outcomes.push(request.await.expect("request task"));
            }
            outcomes
        }
    });

    eventually("traffic reaches the first upstream", || first.served() >= 5).await;
    let mut upstreams = vec![first];
    for version in 1..=REDEPLOYS {
        let new = Upstream::with_latency(&format!("v{version}"), LATENCY).await;
        let old = upstreams.last().expect("a running upstream");
        table.hold(OWNER, EVENTUALLY);
        tokio::time::sleep(DEPLOY_HOOK).await;
        table.set(OWNER, entries(new.addr));
        assert!(
            table.drained(old.addr, EVENTUALLY).await,
            "{} drained",
            old.name
        );
        old.stop().await;
        table.release(OWNER);
        eventually(&format!("{} serves", new.name), || new.served() >= 5).await;
        upstreams.push(new);
    }
    stop.store(true, Ordering::SeqCst);
    let outcomes = traffic.await.expect("traffic task");

    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(_, reply)| !matches!(reply, Ok(reply) if reply.status == StatusCode::OK))
        .collect();
    // Each upstream was waited for until it had served 5: the stream never stopped.
    assert!(outcomes.len() >= (REDEPLOYS + 1) * 5, "{}", outcomes.len());
    assert!(failed.is_empty(), "failed requests: {failed:#?}");
    for upstream in &upstreams {
        let answered = outcomes
            .iter()
            .filter(|(_, reply)| matches!(reply, Ok(r) if r.body == upstream.name))
            .count();
        assert!(answered > 0, "{} answered nothing", upstream.name);
        assert_eq!(answered, upstream.served(), "{}", upstream.name);
    }
    eprintln!(
        "{} requests across {REDEPLOYS} redeploys, 0 failed",
        outcomes.len()
    );
}
