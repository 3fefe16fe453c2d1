//! The dashboard (`web/`): static files compiled into the binary and served at `/` without an
//! API key (behind the other protection layers) (the pages carry no data; every number comes from API calls the browser makes with
//! the key the user gives). `GET /config.json` tells the pages where the API and its
//! WebSocket are (`--web-api-base`, `--web-ws-url`; empty means this server).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use mesh_core::config::WebArgs;

/// The dashboard's files: (path, content type, bytes).
const FILES: [(&str, &str, &[u8]); 7] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/app.js"),
    ),
    (
        "/charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/charts.js"),
    ),
    (
        "/dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/dom.js"),
    ),
    (
        "/forms.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/forms.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../web/style.css"),
    ),
    (
        "/examples.json",
        "application/json",
        include_bytes!("../../../web/examples.json"),
    ),
];

/// Whether `path` is one of the dashboard's files (served without an API key).
pub fn is_dashboard_file(path: &str) -> bool {
    path == "/config.json" || FILES.iter().any(|(p, _, _)| *p == path)
}

fn file(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The dashboard's routes.
pub fn routes<S: Clone + Send + Sync + 'static>(args: &WebArgs) -> Router<S> {
    let mut router = Router::new();
    for (path, content_type, body) in FILES {
        router = router.route(path, get(move || async move { file(content_type, body) }));
    }
    let config = args.config_json();
    router.route(
        "/config.json",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], config.clone()) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_served() {
        let html = std::str::from_utf8(FILES[0].2).unwrap();
        for asset in ["style.css", "app.js"] {
            assert!(html.contains(asset));
            assert!(FILES.iter().any(|(p, _, _)| *p == format!("/{asset}")));
        }
        let app = std::str::from_utf8(FILES[1].2).unwrap();
        assert!(app.contains("fetch(\"examples.json\")"));
        // Every module a script imports is served.
        let mut imported = 0;
        for (_, content_type, body) in FILES.iter().filter(|(p, _, _)| p.ends_with(".js")) {
            assert!(content_type.starts_with("text/javascript"));
            let script = std::str::from_utf8(body).unwrap();
            for module in script.split("from \"./").skip(1) {
                let name = &module[..module.find('"').unwrap()];
                assert!(
                    FILES.iter().any(|(p, _, _)| *p == format!("/{name}")),
                    "{name} is imported but not served"
                );
                imported += 1;
            }
        }
        assert!(
            imported >= 3,
            "app.js imports charts.js, dom.js and forms.js"
        );
        let (_, _, examples) = FILES
            .iter()
            .find(|(p, _, _)| *p == "/examples.json")
            .unwrap();
        let examples: serde_json::Value = serde_json::from_slice(examples).unwrap();
        for kind in mesh_agents::AgentKind::ALL {
            assert!(
                examples.get(kind.route()).is_some(),
                "no example for {}",
                kind.route()
            );
        }
    }
}
