use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

async fn amqp(svc: &TestService, tool: &str, args: &[&str]) -> Result<String, String> {
    let ep = &svc.svc().endpoints()[0];
    let host = ep.ip.to_string();
    let user = format!("--username={}", ep.username.clone().expect("username"));
    let password = format!("--password={}", ep.password.clone().expect("password"));
    let vhost = format!("--vhost={}", ep.path.clone().expect("vhost"));
    let mut all = vec!["-s", &host, "--port=5672", &user, &password, &vhost];
    all.extend_from_slice(args);
    client(tool, &all, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_keeps_durable_messages_across_kill_9() {
    let mut mq = start_service(
        "mq",
        "rabbitmq:3.10",
        json!({"vhosts": ["main"]}),
        Ipv4Addr::new(127, 77, 5, 1),
    )
    .await;
    let ep = &mq.svc().endpoints()[0];
    assert_eq!(
        (ep.name.as_str(), ep.scheme.as_str(), ep.port),
        ("rabbitmq", "amqp", 5672)
    );
    assert_eq!(ep.path.as_deref(), Some("main"));
    amqp(&mq, "amqp-declare-queue", &["-d", "-q", "jobs"])
        .await
        .expect("declare");
    amqp(&mq, "amqp-publish", &["-p", "-r", "jobs", "-b", "job-1"])
        .await
        .expect("publish");
    // Without publisher confirms (which amqp-publish doesn't use) a broker
    // owes nothing for a message it hasn't synced yet: give it the moment it
    // takes (its sync interval is 200 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let took = mq.kill_server_and_wait_healthy().await;
    eprintln!("rabbitmq healthy again {took:?} after kill -9");
    assert_eq!(
        amqp(&mq, "amqp-get", &["-q", "jobs"]).await.as_deref(),
        Ok("job-1")
    );
    // The default user of a fresh broker doesn't exist: only the endpoint's.
    let guest = client(
        "amqp-get",
        &[
            "-s",
            "127.77.5.1",
            "--username=guest",
            "--password=guest",
            "--vhost=main",
            "-q",
            "jobs",
        ],
        &[],
    )
    .await;
    assert!(guest.is_err(), "guest must not log in");
    mq.stop().await;
}

/// Two brokers on one host (two environments): each has its own Erlang node, epmd
/// and distribution port, so the second one starts while the first runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rabbitmq_instances_run_side_by_side() {
    let mut first = start_service(
        "queue",
        "rabbitmq:3.10",
        json!({"vhosts": ["main"]}),
        Ipv4Addr::new(127, 77, 6, 1),
    )
    .await;
    let mut second = start_service(
        "queue",
        "rabbitmq:3.10",
        json!({"vhosts": ["main"]}),
        Ipv4Addr::new(127, 77, 6, 2),
    )
    .await;
    for mq in [&first, &second] {
        mq.svc().health().await.expect("healthy");
        amqp(mq, "amqp-declare-queue", &["-d", "-q", "jobs"])
            .await
            .expect("declare");
    }
    amqp(
        &first,
        "amqp-publish",
        &["-p", "-r", "jobs", "-b", "only-in-first"],
    )
    .await
    .expect("publish");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        amqp(&first, "amqp-get", &["-q", "jobs"]).await.as_deref(),
        Ok("only-in-first")
    );
    assert!(
        amqp(&second, "amqp-get", &["-q", "jobs"]).await.is_err(),
        "the second broker's queue is its own (empty)"
    );
    first.stop().await;
    second.stop().await;
}
