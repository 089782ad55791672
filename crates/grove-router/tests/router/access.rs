//! An environment's HTTP access control, enforced by the proxy before the app.

use grove_router::{AddressRule, HttpAccess, RouteTable};
use hyper::{Method, StatusCode};

use crate::support::*;

fn rule(allow: bool, network: &str) -> AddressRule {
    AddressRule {
        allow,
        network: network.parse().expect("network"),
    }
}

#[tokio::test]
async fn basic_auth_and_address_rules_are_enforced_before_the_app() {
    let app = Upstream::start("app").await;
    let table = RouteTable::new();
    table.set(OWNER, entries(app.addr));
    let router = Router::start(&table).await;
    let client = router.client();
    let users = vec![("alice".to_string(), "secret".to_string())];

    table.set_access(OWNER, Some(HttpAccess::new(&users, vec![])));
    let refused = client.get("/").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let raw = client
        .send_with(
            Method::GET,
            "/",
            &[("authorization", "Basic YWxpY2U6c2VjcmV0")],
        )
        .await;
    assert_eq!((raw.status, raw.body.as_str()), (StatusCode::OK, "app"));

    // The router's clients come from 127.0.0.1: denied, unless credentials are given.
    let rules = vec![rule(true, "127.0.0.2/32"), rule(false, "0.0.0.0/0")];
    table.set_access(OWNER, Some(HttpAccess::new(&[], rules.clone())));
    assert_eq!(client.get("/").await.status, StatusCode::FORBIDDEN);
    table.set_access(OWNER, Some(HttpAccess::new(&users, rules)));
    assert_eq!(client.get("/").await.status, StatusCode::UNAUTHORIZED);
    table.set_access(
        OWNER,
        Some(HttpAccess::new(&[], vec![rule(true, "127.0.0.0/8")])),
    );
    assert_eq!(client.get("/").await.status, StatusCode::OK);

    // Lifted.
    table.set_access(OWNER, None);
    assert_eq!(client.get("/").await.status, StatusCode::OK);
    assert_eq!(app.served(), 3, "refused requests never reached the app");
}
