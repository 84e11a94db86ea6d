//! The fleet scenario of issue 10, smaller but real: 20 machines, a training day and three
//! monitored days, through the engine, the live path and the alarm stage on SQLite, with the
//! fleet default rules and the live path's default training. `eval fleet` runs the full week
//! (`docs/evaluation.md`, "Fleet scenario").

use benches::fleet::{self, FleetConfig, MIN_MACHINES};
use pdm_core::alarm::{FLATLINE_RULE, STALE_RULE};
use pdm_ingest::sim::FaultKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_alarmed_before_its_failure_point_and_false_alarms_are_rare() {
    let config = FleetConfig {
        machines: MIN_MACHINES,
        days: fleet::MIN_DAYS,
        seed: 2,
        ..FleetConfig::default()
    };
    let report = fleet::run(&config).await.expect("the scenario runs");
    println!("{}", report.table());
    assert_eq!(report.readings_skipped, 0, "the live path skipped readings");
    assert_eq!(
        report.faults.len(),
        FaultKind::ALL.len() * fleet::FAULTS_PER_KIND
    );
    for f in &report.faults {
        assert!(
            f.in_time(),
            "{} {} (start {:?}, failure {:?}) alarmed {:?}",
            f.fault.machine,
            f.fault.kind.as_str(),
            f.fault.start,
            f.fault.failure,
            f.first_alarm
        );
        // The data faults are found by the rules made for them, not by chance.
        let rule = f.first_alarm.as_ref().map(|(r, _)| r.as_str());
        match f.fault.kind {
            FaultKind::StuckSensor => assert_eq!(rule, Some(FLATLINE_RULE)),
            FaultKind::Dropout => assert_eq!(rule, Some(STALE_RULE)),
            _ => {}
        }
    }
    assert!(
        report.false_per_machine_week() <= 1.0,
        "{} false alarms over {:.1} machine-weeks: {:?}",
        report.false_alarms.len(),
        report.machine_weeks(),
        report.false_alarms
    );
    assert!(report.meets_target());
}
