//! An environment's access log: a line per request its routes answered, written by the
//! router's writer thread behind the requests.

use grove_router::{HttpAccess, RouteTable};
use hyper::{Method, StatusCode};

use crate::support::*;

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_answered_request_has_a_line_until_the_environment_goes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("router").join("access.log");
    let app = Upstream::start("app").await;
    let table = RouteTable::new();
    table.set(OWNER, entries(app.addr));
    table.set_access_log(OWNER, Some(path.clone()));
    let router = Router::start(&table).await;
    let client = router.client();

    let served = client
        .send_with(
            Method::GET,
            "/page?a=1",
            &[("user-agent", "probe \"quoted\""), ("referer", "http://x/")],
        )
        .await;
    assert_eq!(served.status, StatusCode::OK);
    // Refused by the router, not the app: logged all the same.
    let users = vec![("alice".to_string(), "secret".to_string())];
    table.set_access(OWNER, Some(HttpAccess::new(&users, vec![])));
    assert_eq!(
        client.get("/private").await.status,
        StatusCode::UNAUTHORIZED
    );
    eventually("two lines in the access log", || lines(&path).len() == 2).await;

    let logged = lines(&path);
    let first = &logged[0];
    assert!(
        first.starts_with("127.0.0.1 - - [")
            && first.contains(
                "] \"GET /page?a=1 HTTP/1.1\" 200 3 \"http://x/\" \"probe \\x22quoted\\x22\" "
            ),
        "{first}"
    );
    let seconds: f64 = first
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the time taken ends the line: {first}"));
    assert!(seconds >= 0.0, "{first}");
    assert!(
        logged[1].contains("\"GET /private HTTP/1.1\" 401 "),
        "{}",
        logged[1]
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("log").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the log is the environment's alone");

    // Gone with the environment's routes: a request answered 404 by nobody is not
    // written anywhere.
    table.set_access(OWNER, None);
    table.remove(OWNER);
    assert_eq!(client.get("/after").await.status, StatusCode::NOT_FOUND);
    table.set(OWNER, entries(app.addr));
    table.set_access_log(OWNER, Some(path.clone()));
    assert_eq!(client.get("/again").await.status, StatusCode::OK);
    eventually("the line of the request after the routes came back", || {
        lines(&path).len() == 3
    })
    .await;
    let logged = lines(&path);
    assert!(
        logged[2].contains("\"GET /again HTTP/1.1\" 200 "),
        "{}",
        logged[2]
    );
    assert!(!logged.iter().any(|l| l.contains("/after")), "{logged:?}");
}
