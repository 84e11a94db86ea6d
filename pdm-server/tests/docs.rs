//! The API reference is kept true to the routers: every route a router declares is described in
//! `docs/api.md` (a forgotten step of CONTRIBUTING.md's "new HTTP route" checklist fails here).

use std::path::Path;

/// `/machines/{machine}/sensors/{sensor}` -> `/machines/{}/sensors/{}`: the docs abbreviate
/// parameter names (`{m}`), so only their places are compared.
fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// Every `.route("...")` path in the API's source files (the argument may sit on the next line).
fn declared_routes(dir: &Path) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("pdm-server/src/api")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file");
        for piece in text.split(".route(").skip(1) {
            let Some(path) = piece.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some((path, _)) = path.split_once('"') else {
                continue;
            };
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            routes.push((name.unwrap_or_default(), path.to_owned()));
        }
    }
    routes
}

#[test]
fn every_route_is_described_in_the_api_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("../docs/api.md")).expect("docs/api.md");
    let docs = shape(&docs);
    let routes = declared_routes(&root.join("src/api"));
    assert!(routes.len() >= 10, "the routers were not found: {routes:?}");
    let mut missing = Vec::new();
    for (file, path) in &routes {
        // The probes and `/metrics` are mounted at the root, everything else under `/api/v1`.
        let at_root = path.starts_with("/health") || path == "/metrics";
        let full = if at_root {
            shape(path)
        } else {
            format!("/api/v1{}", shape(path))
        };
        let described = docs.match_indices(&full).any(|(at, _)| {
            // The whole path, not a prefix of a longer one.
            let next = docs[at + full.len()..].chars().next();
            !matches!(next, Some(c) if c == '/' || c == '{' || c.is_alphanumeric() || c == '-')
        });
        if !described {
            missing.push(format!("{full} (src/api/{file})"));
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from docs/api.md: {missing:?}"
    );
}
