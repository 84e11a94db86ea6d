//! The deployment files hold to the server they deploy: the sample configuration is one the
//! server accepts, every `PDM_*` variable the compose file and the image set is one the server
//! reads, every secret the compose file needs is in `.env.example`, the image runs as an
//! unprivileged user with its health check on `/health/ready`, and the broker's ACL lets pdm
//! read the topics it subscribes to. (`scripts/test` also runs `docker compose config` and
//! `systemd-analyze verify` on them.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `PDM_[A-Z_]+` word of `text`.
fn pdm_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("PDM_") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start + 4;
        while end < bytes.len() && (bytes[end].is_ascii_uppercase() || bytes[end] == b'_') {
            end += 1;
        }
        if before_ok && end > start + 4 {
            out.insert(text[start..end].trim_end_matches('_').to_owned());
        }
        i = end;
    }
    out
}

/// The variables the server reads: every `"PDM_..."` string of its sources.
fn read_by_the_server() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![root().join("pdm-server/src")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).expect("src").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("source");
                for piece in text.split("\"PDM_").skip(1) {
                    if let Some((name, _)) = piece.split_once('"') {
                        out.insert(format!("PDM_{name}"));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn the_sample_configuration_is_accepted() {
    let path = root().join("deploy/pdm.toml");
    let cfg = pdm_server::config::ServerConfig::from_file(&path).expect("deploy/pdm.toml reads");
    cfg.check().expect("deploy/pdm.toml holds");
    assert!(cfg.mqtt.is_some(), "it ingests over MQTT");
    assert_eq!(cfg.auth.trusted_proxies, ["127.0.0.1"]);
}

#[test]
fn every_variable_the_deployment_sets_is_read_by_the_server() {
    let known = read_by_the_server();
    assert!(known.contains("PDM_DATABASE_URL"), "{known:?}");
    for file in [
        "docker-compose.yml",
        "Dockerfile",
        ".env.example",
        "deploy/pdm-server.service",
    ] {
        let unknown: Vec<String> = pdm_vars(&read(file))
            .into_iter()
            .filter(|v| !known.contains(v))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} sets variables the server never reads: {unknown:?}"
        );
    }
}

#[test]
fn every_secret_of_the_compose_file_is_in_the_example_env() {
    let compose = read("docker-compose.yml");
    let example = read(".env.example");
    let defined: BTreeSet<&str> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .collect();
    let mut used = BTreeSet::new();
    for piece in compose.split("${").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        used.insert(name);
    }
    assert!(used.len() >= 6, "{used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|u| !defined.contains(u.as_str()))
        .collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    assert!(
        std::fs::read_to_string(root().join(".gitignore"))
            .expect(".gitignore")
            .lines()
            .any(|l| l.trim() == ".env"),
        "a filled-in .env is never committed"
    );
}

#[test]
fn the_image_runs_unprivileged_and_checks_readiness() {
    let docker = read("Dockerfile");
    let user = docker
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(docker.contains("HEALTHCHECK") && docker.contains("/health/ready"));
    assert!(docker.contains("PDM_HTTP=0.0.0.0:8080") && docker.contains("EXPOSE 8080"));
    assert!(
        docker.contains("FROM debian:bookworm-slim"),
        "a small runtime image"
    );
    let compose = read("docker-compose.yml");
    assert!(compose.contains("condition: service_healthy"));
}

#[test]
fn the_broker_lets_pdm_read_what_it_subscribes_to() {
    let acl = read("deploy/mosquitto/acl");
    let mut lines = acl
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let mut pdm_reads = Vec::new();
    let mut user = "";
    for l in lines.by_ref() {
        if let Some(u) = l.strip_prefix("user ") {
            user = u.trim();
        } else if let Some(t) = l.strip_prefix("topic read ") {
            if user == "pdm-server" {
                pdm_reads.push(t.trim().to_owned());
            }
        }
    }
    assert_eq!(pdm_reads, [pdm_ingest::codec::DEFAULT_TOPIC_FILTER]);
    assert!(acl.contains(&format!(
        "pattern write {}%u{}",
        pdm_ingest::codec::TOPIC_PREFIX,
        pdm_ingest::codec::TOPIC_SUFFIX
    )));
    let conf = read("deploy/mosquitto/mosquitto.conf");
    assert!(conf.contains("allow_anonymous false") && conf.contains("password_file"));
}
