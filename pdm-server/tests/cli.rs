//! The binary's commands as a user runs them: `demo`, `migrate`, `simulate`, and configuration
//! errors that name the setting (and never print a password).

mod common;

use std::process::{Command, Output};

fn pdm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdm-server"))
        .args(args)
        .env("PDM_LOG", "warn")
        .env_remove("PDM_DATABASE_URL")
        .env_remove("PDM_MQTT_URL")
        .output()
        .expect("run pdm-server")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn demo_stores_simulated_readings_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = pdm(&[
        "demo",
        "--duration",
        "6",
        "--http",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{}",
        stdout,
        text(&out.stderr)
    );
    assert!(
        stdout.contains("pdm demo") && stdout.contains("curl http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("motor-1") && stdout.contains("bearing_wear"),
        "{stdout}"
    );
    let stored: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("stopped: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no final line in {stdout}"));
    assert!(
        stored > 1_000,
        "the demo stored only {stored} readings: {stdout}"
    );
    assert!(data.join("pdm.db").exists());
}

#[test]
fn migrate_applies_once_then_reports_a_current_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    let first = pdm(&["migrate", "--data-dir", data]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("applied 0001_init"),
        "{}",
        text(&first.stdout)
    );
    let again = pdm(&["migrate", "--data-dir", data]);
    assert!(again.status.success());
    let latest = pdm_store::SQLITE_MIGRATIONS.last().map_or(0, |m| m.version);
    assert!(latest >= 1);
    assert!(
        text(&again.stdout).contains(&format!("schema current at version {latest}")),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn configuration_errors_name_the_setting_and_hide_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    let out = pdm(&[
        "serve",
        "--data-dir",
        data,
        "--database-url",
        "mysql://pdm:hunter2@db/pdm",
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("PDM_DATABASE_URL") && !stderr.contains("hunter2"),
        "{stderr}"
    );

    let file = dir.path().join("pdm.toml");
    std::fs::write(
        &file,
        "http = \"127.0.0.1:0\"\n[engine]\nqueue_capacity = 0\n",
    )
    .expect("write");
    let out = pdm(&[
        "serve",
        "--config",
        file.to_str().expect("utf-8 path"),
        "--data-dir",
        data,
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("engine.queue_capacity"), "{stderr}");

    std::fs::write(&file, "htpp = \"127.0.0.1:0\"\n").expect("write");
    let out = pdm(&["serve", "--config", file.to_str().expect("utf-8 path")]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("htpp") && stderr.contains("pdm.toml"),
        "{stderr}"
    );

    let out = pdm(&["demo", "--speed=0", "--data-dir", data]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--speed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn simulate_publishes_to_the_broker() {
    let Some(url) = common::mqtt_url() else {
        return;
    };
    let out = pdm(&[
        "simulate",
        "--mqtt-url",
        &url,
        "--machines",
        "2",
        "--speed",
        "60",
        "--duration",
        "2",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let published: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("published "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    assert!(published > 0, "{stdout}");
}
