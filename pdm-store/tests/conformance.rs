//! Conformance suite: every rule of `TelemetryStore` and `CatalogStore` (models, jobs, alarms,
//! webhooks and access included) runs against every backend, on the same code.
//!
//! SQLite runs in a temporary directory. PostgreSQL needs a server: set
//! `PDM_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); each test creates
//! its own database there and drops it afterwards, so tests run in parallel. Without the
//! variable the PostgreSQL tests print a SKIPPED line and pass, unless
//! `PDM_TEST_REQUIRE_SERVICES=1`, which makes them fail instead.

use std::future::Future;
use std::sync::Arc;

use anyhow::{ensure, Context as _, Result};
use pdm_core::{
    Batch, CatalogStore, DeadLetter, DeadLetterPrune, DeadLetterQuery, MachineKey, MachineUpdate,
    NewMachine, NewSensor, Origin, Point, RangeQuery, Reading, RejectKind, SensorKey, SensorUpdate,
    Store, StoreError, TelemetryStore, Timestamp,
};
use pdm_store::StoreOptions;

/// What a rule gets: a migrated, empty store, and a way to open more.
struct Ctx {
    store: Arc<dyn Store>,
    url: String,
    fresh: harness::Fresh,
}

impl Ctx {
    /// Another connection to the same database, as a second process would have.
    async fn reopen(&self, opts: &StoreOptions) -> Result<Arc<dyn Store>> {
        Ok(pdm_store::connect(&self.url, opts).await?)
    }

    /// The URL of another, empty database (not migrated).
    async fn empty_database(&self) -> Result<String> {
        self.fresh.create().await
    }
}

macro_rules! conformance {
    ($($rule:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    crate::harness::run_sqlite(crate::rules::$rule).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    crate::harness::run_postgres(crate::rules::$rule).await;
                }
            )*
        }
    };
}

conformance!(
    writes_are_idempotent_and_count_duplicates,
    replayed_batch_stores_nothing_twice,
    raw_range_is_half_open_ordered_and_limited,
    buckets_aggregate_exactly,
    buckets_align_negative_timestamps,
    latest_is_per_sensor_and_ordered_by_key,
    catalog_crud,
    keys_order_bytewise,
    deletes_cascade,
    unregistered_sensor_fails_the_whole_write,
    non_finite_values_are_invalid,
    dead_letters_round_trip,
    dead_letters_are_pruned_by_age_then_count,
    readings_are_pruned_by_age_on_every_sensor,
    million_timestamps_are_exact,
    negative_and_distant_timestamps_are_exact,
    values_round_trip_exactly,
    ensure_is_idempotent,
    ensure_is_safe_under_concurrency,
    stale_sensor_ids_recover,
    migrations_rerun_cleanly,
    schema_check_without_migrations,
    model_versions_count_per_machine,
    model_versions_are_distinct_under_concurrency,
    model_bytes_round_trip_exactly,
    activation_swaps_the_active_model,
    one_active_model_under_concurrent_activations,
    models_list_newest_first_in_pages,
    deleting_a_machine_deletes_its_models,
    job_lifecycle,
    jobs_cancel_only_before_they_finish,
    jobs_are_claimed_once_under_concurrency,
    running_jobs_fail_after_a_crash,
    jobs_list_newest_first_with_filters,
    predictions_are_idempotent_ordered_and_limited,
    prediction_buckets_aggregate_exactly,
    predictions_are_pruned_and_go_with_their_machine,
    machine_readings_are_ordered_ranged_and_limited,
    machine_readings_merge_many_sensors,
    registering_a_trained_model_finishes_its_job,
    registering_a_trained_model_needs_a_running_job,
    a_cancel_racing_a_registration_has_one_winner,
    alarm_episodes_with_events_and_outbox,
    concurrent_raises_open_one_alarm,
    alarms_list_newest_first_with_filters,
    alarm_rules_crud_with_fleet_defaults,
    deleting_a_machine_deletes_its_alarms_and_rules,
    machines_go_out_of_service_and_back,
    alarm_events_between_and_alarms_open_at,
    webhook_deliveries_fan_out_lease_order_and_retry,
    a_recovered_endpoint_gets_its_retries_at_once,
    claims_lease_only_the_deliveries_they_return,
    webhooks_crud_rotation_cascade_and_prune,
    users_crud_with_case_insensitive_email,
    roles_builtin_sync_and_custom_crud,
    refresh_rotation_spends_and_reuse_revokes,
    refresh_tokens_and_sessions_expire,
    concurrent_rotations_of_one_token_rotate_once,
    sessions_are_revoked_and_listed,
    reset_tokens_are_single_use_and_expire,
    concurrent_reset_consumption_has_one_winner,
    api_and_ingest_tokens,
    sign_in_failures_count_since,
    prune_access_deletes_only_what_ended,
    work_orders_crud_versions_codes_and_history,
    concurrent_updates_of_one_work_order_have_one_winner,
    the_audit_log_appends_filters_pages_and_prunes,
    comments_keep_their_edits_and_go_with_their_target,
    attachments_belong_to_one_owner_and_go_with_it,
    settings_are_replaced_by_compare_and_set,
    overview_counts_group_the_fleet,
);

fn m(s: &str) -> MachineKey {
    MachineKey::new(s).expect("valid machine key")
}

fn s(s: &str) -> SensorKey {
    SensorKey::new(s).expect("valid sensor key")
}

fn r(machine: &str, sensor: &str, ms: i64, value: f64) -> Reading {
    Reading {
        machine: m(machine),
        sensor: s(sensor),
        ts: Timestamp::from_millis(ms),
        value,
    }
}

fn batch(readings: Vec<Reading>) -> Batch {
    Batch {
        readings,
        dead_letters: vec![],
    }
}

fn range(machine: &str, sensor: &str, from: i64, to: i64, limit: u32) -> RangeQuery {
    RangeQuery {
        machine: m(machine),
        sensor: s(sensor),
        from: Timestamp::from_millis(from),
        to: Timestamp::from_millis(to),
        limit,
    }
}

fn points(v: &[(i64, f64)]) -> Vec<Point> {
    v.iter()
        .map(|&(ms, value)| Point {
            ts: Timestamp::from_millis(ms),
            value,
        })
        .collect()
}

async fn sensor(store: &dyn Store, machine: &str, key: &str) -> Result<()> {
    store.ensure_machine(&m(machine)).await?;
    store
        .create_sensor(
            &m(machine),
            &NewSensor {
                key: s(key),
                unit: None,
                min: None,
                max: None,
            },
        )
        .await?;
    Ok(())
}

fn is_not_found(r: &Result<impl std::fmt::Debug, StoreError>) -> bool {
    matches!(r, Err(StoreError::NotFound(_)))
}

mod rules {
    pub use super::access::*;
    pub use super::alarms::*;
    pub use super::audit::*;
    pub use super::comments::*;
    pub use super::live::*;
    pub use super::overview::*;
    pub use super::registry::*;
    pub use super::work_orders::*;
    use super::*;

    pub async fn writes_are_idempotent_and_count_duplicates(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "pump-1", "temp").await?;
        let first = batch(vec![
            r("pump-1", "temp", 1_000, 1.0),
            r("pump-1", "temp", 2_000, 2.0),
            r("pump-1", "temp", 3_000, 3.0),
        ]);
        let out = st.write(&first).await?;
        ensure!((out.inserted, out.duplicates) == (3, 0), "{out:?}");
        let out = st.write(&first).await?;
        ensure!((out.inserted, out.duplicates) == (0, 3), "{out:?}");

        // Partly new; the stored value of a duplicate key is kept (first value wins), also
        // for two readings of the same key inside one batch.
        let overlap = batch(vec![
            r("pump-1", "temp", 3_000, 99.0),
            r("pump-1", "temp", 4_000, 4.0),
            r("pump-1", "temp", 4_000, 44.0),
        ]);
        let out = st.write(&overlap).await?;
        ensure!((out.inserted, out.duplicates) == (1, 2), "{out:?}");
        let got = st.raw(&range("pump-1", "temp", 0, 10_000, 100)).await?;
        ensure!(
            got == points(&[(1_000, 1.0), (2_000, 2.0), (3_000, 3.0), (4_000, 4.0)]),
            "{got:?}"
        );
        ensure!(st.count_readings(&m("pump-1")).await? == 4);

        let out = st.write(&Batch::default()).await?;
        ensure!(out == Default::default(), "{out:?}");
        Ok(())
    }

    pub async fn replayed_batch_stores_nothing_twice(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        for (machine, sensors) in [("a", ["x", "y", "z"]), ("b", ["x", "y", "z"])] {
            for key in sensors {
                sensor(st, machine, key).await?;
            }
        }
        let mut readings = Vec::new();
        for i in 0..10_000i64 {
            let machine = if i % 2 == 0 { "a" } else { "b" };
            let key = ["x", "y", "z"][(i % 3) as usize];
            readings.push(r(machine, key, 1_700_000_000_000 + i, i as f64 * 0.5));
        }
        let b = batch(readings);
        let out = st.write(&b).await?;
        ensure!((out.inserted, out.duplicates) == (10_000, 0), "{out:?}");
        // A crash after commit but before the ack makes the source send it all again.
        let out = st.write(&b).await?;
        ensure!((out.inserted, out.duplicates) == (0, 10_000), "{out:?}");
        let total = st.count_readings(&m("a")).await? + st.count_readings(&m("b")).await?;
        ensure!(total == 10_000, "{total}");
        Ok(())
    }

    pub async fn raw_range_is_half_open_ordered_and_limited(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "a").await?;
        sensor(st, "m", "b").await?;
        // Written out of order, read back ordered.
        let mut readings: Vec<Reading> = (0..10)
            .rev()
            .map(|i| r("m", "a", i * 1_000, i as f64))
            .collect();
        readings.push(r("m", "b", 2_500, -1.0));
        st.write(&batch(readings)).await?;

        let got = st.raw(&range("m", "a", 2_000, 5_000, 100)).await?;
        ensure!(
            got == points(&[(2_000, 2.0), (3_000, 3.0), (4_000, 4.0)]),
            "{got:?}"
        );
        let got = st.raw(&range("m", "a", 1_999, 2_001, 100)).await?;
        ensure!(got == points(&[(2_000, 2.0)]), "{got:?}");
        let got = st.raw(&range("m", "a", 0, 10_000, 2)).await?;
        ensure!(got == points(&[(0, 0.0), (1_000, 1.0)]), "{got:?}");
        ensure!(st
            .raw(&range("m", "a", 3_000, 3_000, 100))
            .await?
            .is_empty());
        ensure!(st.raw(&range("m", "a", 0, 10_000, 0)).await?.is_empty());
        let all = st.raw(&range("m", "a", i64::MIN, i64::MAX, 1_000)).await?;
        ensure!(all.len() == 10, "{all:?}");
        let got = st.raw(&range("m", "b", 0, 10_000, 100)).await?;
        ensure!(got == points(&[(2_500, -1.0)]), "{got:?}");

        ensure!(is_not_found(&st.raw(&range("m", "nope", 0, 1, 1)).await));
        ensure!(is_not_found(&st.raw(&range("nope", "a", 0, 1, 1)).await));
        Ok(())
    }

    pub async fn buckets_aggregate_exactly(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "v").await?;
        st.write(&batch(vec![
            r("m", "v", 0, 1.0),
            r("m", "v", 250, 2.0),
            r("m", "v", 999, 6.0),
            r("m", "v", 1_000, 10.0),
            r("m", "v", 1_500, 20.0),
            // 2000..3000 empty: left out.
            r("m", "v", 3_001, -4.0),
            r("m", "v", 4_000, 7.0),
        ]))
        .await?;
        let got = st.buckets(&range("m", "v", 0, 10_000, 100), 1_000).await?;
        let want: Vec<(i64, f64, f64, f64, u64)> = vec![
            (0, 3.0, 1.0, 6.0, 3),
            (1_000, 15.0, 10.0, 20.0, 2),
            (3_000, -4.0, -4.0, -4.0, 1),
            (4_000, 7.0, 7.0, 7.0, 1),
        ];
        let got_t: Vec<_> = got
            .iter()
            .map(|b| (b.start.as_millis(), b.avg, b.min, b.max, b.count))
            .collect();
        ensure!(got_t == want, "{got_t:?}");

        // Limit counts buckets; bounds cut readings, not buckets.
        let got = st.buckets(&range("m", "v", 0, 10_000, 2), 1_000).await?;
        ensure!(
            got.len() == 2 && got[1].start.as_millis() == 1_000,
            "{got:?}"
        );
        let got = st.buckets(&range("m", "v", 250, 1_500, 100), 1_000).await?;
        let got_t: Vec<_> = got.iter().map(|b| (b.start.as_millis(), b.count)).collect();
        ensure!(got_t == vec![(0, 2), (1_000, 1)], "{got_t:?}");

        // Buckets are aligned to the epoch, not to `from`.
        let got = st
            .buckets(&range("m", "v", 900, 10_000, 100), 3_000)
            .await?;
        let got_t: Vec<_> = got.iter().map(|b| (b.start.as_millis(), b.count)).collect();
        ensure!(got_t == vec![(0, 3), (3_000, 2)], "{got_t:?}");

        let one = st
            .buckets(&range("m", "v", i64::MIN, i64::MAX, 10), 1_000_000_000)
            .await?;
        ensure!(one.len() == 1 && one[0].count == 7, "{one:?}");

        for bad in [0, -1_000] {
            let e = st.buckets(&range("m", "v", 0, 10_000, 100), bad).await;
            ensure!(matches!(e, Err(StoreError::Invalid(_))), "{e:?}");
        }
        ensure!(is_not_found(
            &st.buckets(&range("m", "nope", 0, 1, 1), 10).await
        ));
        Ok(())
    }

    pub async fn buckets_align_negative_timestamps(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "v").await?;
        st.write(&batch(vec![
            r("m", "v", -2_001, 1.0),
            r("m", "v", -2_000, 2.0),
            r("m", "v", -1_001, 3.0),
            r("m", "v", -1_000, 4.0),
            r("m", "v", -1, 5.0),
            r("m", "v", 0, 6.0),
        ]))
        .await?;
        let got = st
            .buckets(&range("m", "v", -10_000, 10_000, 100), 1_000)
            .await?;
        let got_t: Vec<_> = got
            .iter()
            .map(|b| (b.start.as_millis(), b.count, b.avg))
            .collect();
        ensure!(
            got_t
                == vec![
                    (-3_000, 1, 1.0),
                    (-2_000, 2, 2.5),
                    (-1_000, 2, 4.5),
                    (0, 1, 6.0)
                ],
            "{got_t:?}"
        );
        Ok(())
    }

    pub async fn latest_is_per_sensor_and_ordered_by_key(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        for key in ["vib", "amps", "temp", "silent"] {
            sensor(st, "m", key).await?;
        }
        sensor(st, "other", "temp").await?;
        st.write(&batch(vec![
            r("m", "temp", 5_000, 50.0),
            r("m", "temp", 9_000, 90.0),
            r("m", "temp", 7_000, 70.0),
            r("m", "vib", -5, 0.5),
            r("m", "amps", 1, 3.0),
            r("other", "temp", 100_000, 1.0),
        ]))
        .await?;
        let got: Vec<_> = st
            .latest(&m("m"))
            .await?
            .into_iter()
            .map(|l| (l.sensor.to_string(), l.ts.as_millis(), l.value))
            .collect();
        ensure!(
            got == vec![
                ("amps".to_string(), 1, 3.0),
                ("temp".to_string(), 9_000, 90.0),
                ("vib".to_string(), -5, 0.5)
            ],
            "{got:?}"
        );
        st.ensure_machine(&m("empty")).await?;
        ensure!(st.latest(&m("empty")).await?.is_empty());
        ensure!(is_not_found(&st.latest(&m("nope")).await));
        ensure!(st.count_readings(&m("empty")).await? == 0);
        ensure!(is_not_found(&st.count_readings(&m("nope")).await));
        st.ping().await?;
        Ok(())
    }

    pub async fn catalog_crud(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let before = Timestamp::now().as_millis();
        let pump = st
            .create_machine(&NewMachine {
                key: m("pump-1"),
                name: Some("Pump 1".into()),
                kind: Some("pump".into()),
                description: Some("hall 2".into()),
            })
            .await?;
        ensure!(
            pump.name == "Pump 1" && pump.kind.as_deref() == Some("pump"),
            "{pump:?}"
        );
        // Clocks of the test and the database may differ a little.
        let age = pump.created_at.as_millis() - before;
        ensure!(
            (-60_000..60_000).contains(&age),
            "created_at {pump:?} vs {before}"
        );
        ensure!(st.get_machine(&m("pump-1")).await? == pump);

        let dup = st
            .create_machine(&NewMachine {
                key: m("pump-1"),
                name: None,
                kind: None,
                description: None,
            })
            .await;
        match dup {
            Err(StoreError::Conflict(msg)) => ensure!(msg.contains("pump-1"), "{msg}"),
            other => anyhow::bail!("expected Conflict, got {other:?}"),
        }
        let plain = st
            .create_machine(&NewMachine {
                key: m("fan"),
                name: None,
                kind: None,
                description: None,
            })
            .await?;
        ensure!(plain.name == "fan", "name defaults to the key: {plain:?}");
        let keys: Vec<_> = st
            .list_machines()
            .await?
            .into_iter()
            .map(|x| x.key.to_string())
            .collect();
        ensure!(keys == ["fan", "pump-1"], "{keys:?}");
        // Pages by key.
        let page = |after: Option<&str>, limit| {
            let after = after.map(m);
            async move {
                let got = st.machines_after(after.as_ref(), limit).await?;
                Ok::<_, anyhow::Error>(
                    got.into_iter()
                        .map(|x| x.key.to_string())
                        .collect::<Vec<_>>(),
                )
            }
        };
        ensure!(page(None, 1).await? == ["fan"]);
        ensure!(page(Some("fan"), 5).await? == ["pump-1"]);
        ensure!(
            page(Some("fa"), 5).await? == ["fan", "pump-1"],
            "after a key that is no machine"
        );
        ensure!(page(Some("pump-1"), 5).await?.is_empty());

        let updated = st
            .update_machine(
                &m("pump-1"),
                &MachineUpdate {
                    name: Some("Main pump".into()),
                    kind: None,
                    description: Some(None),
                },
            )
            .await?;
        ensure!(
            updated.name == "Main pump"
                && updated.kind.as_deref() == Some("pump")
                && updated.description.is_none()
                && updated.created_at == pump.created_at,
            "{updated:?}"
        );
        let updated = st
            .update_machine(
                &m("pump-1"),
                &MachineUpdate {
                    name: None,
                    kind: Some(Some("centrifugal pump".into())),
                    description: None,
                },
            )
            .await?;
        ensure!(updated.name == "Main pump" && updated.kind.as_deref() == Some("centrifugal pump"));
        ensure!(is_not_found(
            &st.update_machine(&m("nope"), &MachineUpdate::default())
                .await
        ));
        ensure!(is_not_found(&st.get_machine(&m("nope")).await));

        let temp = st
            .create_sensor(
                &m("pump-1"),
                &NewSensor {
                    key: s("temp"),
                    unit: Some("degC".into()),
                    min: Some(-40.0),
                    max: Some(150.0),
                },
            )
            .await?;
        ensure!(
            temp.machine == m("pump-1")
                && temp.unit.as_deref() == Some("degC")
                && temp.min == Some(-40.0)
                && temp.max == Some(150.0),
            "{temp:?}"
        );
        ensure!(st.get_sensor(&m("pump-1"), &s("temp")).await? == temp);
        let dup = st
            .create_sensor(
                &m("pump-1"),
                &NewSensor {
                    key: s("temp"),
                    unit: None,
                    min: None,
                    max: None,
                },
            )
            .await;
        match dup {
            Err(StoreError::Conflict(msg)) => {
                ensure!(msg.contains("temp") && msg.contains("pump-1"), "{msg}")
            }
            other => anyhow::bail!("expected Conflict, got {other:?}"),
        }
        let bad_range = st
            .create_sensor(
                &m("pump-1"),
                &NewSensor {
                    key: s("bad"),
                    unit: None,
                    min: Some(2.0),
                    max: Some(1.0),
                },
            )
            .await;
        ensure!(
            matches!(bad_range, Err(StoreError::Invalid(_))),
            "{bad_range:?}"
        );
        let no_machine = st
            .create_sensor(
                &m("nope"),
                &NewSensor {
                    key: s("temp"),
                    unit: None,
                    min: None,
                    max: None,
                },
            )
            .await;
        ensure!(is_not_found(&no_machine), "{no_machine:?}");
        // The same sensor key on another machine is another sensor.
        sensor(st, "fan", "temp").await?;
        sensor(st, "fan", "amps").await?;

        let updated = st
            .update_sensor(
                &m("pump-1"),
                &s("temp"),
                &SensorUpdate {
                    unit: Some(None),
                    min: None,
                    max: Some(Some(120.5)),
                },
            )
            .await?;
        ensure!(
            updated.unit.is_none() && updated.min == Some(-40.0) && updated.max == Some(120.5),
            "{updated:?}"
        );
        let updated = st
            .update_sensor(
                &m("pump-1"),
                &s("temp"),
                &SensorUpdate {
                    unit: Some(Some("K".into())),
                    min: Some(None),
                    max: None,
                },
            )
            .await?;
        ensure!(
            updated.unit.as_deref() == Some("K")
                && updated.min.is_none()
                && updated.max == Some(120.5),
            "{updated:?}"
        );
        ensure!(is_not_found(
            &st.update_sensor(&m("pump-1"), &s("nope"), &SensorUpdate::default())
                .await
        ));
        ensure!(is_not_found(&st.get_sensor(&m("pump-1"), &s("nope")).await));
        ensure!(is_not_found(&st.get_sensor(&m("nope"), &s("temp")).await));

        let fan: Vec<_> = st
            .list_sensors(&m("fan"))
            .await?
            .into_iter()
            .map(|x| x.key.to_string())
            .collect();
        ensure!(fan == ["amps", "temp"], "{fan:?}");
        ensure!(is_not_found(&st.list_sensors(&m("nope")).await));
        let all: Vec<_> = st
            .list_all_sensors()
            .await?
            .into_iter()
            .map(|x| format!("{}/{}", x.machine, x.key))
            .collect();
        ensure!(all == ["fan/amps", "fan/temp", "pump-1/temp"], "{all:?}");

        st.delete_sensor(&m("fan"), &s("amps")).await?;
        ensure!(is_not_found(&st.get_sensor(&m("fan"), &s("amps")).await));
        ensure!(is_not_found(&st.delete_sensor(&m("fan"), &s("amps")).await));
        ensure!(is_not_found(
            &st.delete_sensor(&m("nope"), &s("amps")).await
        ));
        st.delete_machine(&m("fan")).await?;
        ensure!(is_not_found(&st.get_machine(&m("fan")).await));
        ensure!(is_not_found(&st.delete_machine(&m("fan")).await));
        let keys: Vec<_> = st
            .list_machines()
            .await?
            .into_iter()
            .map(|x| x.key.to_string())
            .collect();
        ensure!(keys == ["pump-1"], "{keys:?}");
        Ok(())
    }

    pub async fn keys_order_bytewise(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        // Locale collations ignore punctuation; the stores must order like Rust strings.
        let keys = ["a_b", "ab", "a-b", "a0", "b", "a"];
        for k in keys {
            st.ensure_machine(&m(k)).await?;
            sensor(st, "z", k).await?;
        }
        st.write(&batch(keys.iter().map(|k| r("z", k, 1, 1.0)).collect()))
            .await?;
        let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        want.sort();
        let machines: Vec<_> = st
            .list_machines()
            .await?
            .into_iter()
            .map(|x| x.key.to_string())
            .collect();
        let mut want_machines = want.clone();
        want_machines.push("z".into());
        ensure!(machines == want_machines, "{machines:?}");
        let sensors: Vec<_> = st
            .list_sensors(&m("z"))
            .await?
            .into_iter()
            .map(|x| x.key.to_string())
            .collect();
        ensure!(sensors == want, "{sensors:?}");
        let latest: Vec<_> = st
            .latest(&m("z"))
            .await?
            .into_iter()
            .map(|x| x.sensor.to_string())
            .collect();
        ensure!(latest == want, "{latest:?}");
        Ok(())
    }

    pub async fn deletes_cascade(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "a").await?;
        sensor(st, "m", "b").await?;
        sensor(st, "keep", "a").await?;
        st.write(&batch(vec![
            r("m", "a", 1, 1.0),
            r("m", "a", 2, 2.0),
            r("m", "b", 1, 3.0),
            r("keep", "a", 1, 4.0),
        ]))
        .await?;
        ensure!(st.count_readings(&m("m")).await? == 3);

        st.delete_sensor(&m("m"), &s("a")).await?;
        ensure!(st.count_readings(&m("m")).await? == 1);
        ensure!(is_not_found(&st.raw(&range("m", "a", 0, 10, 10)).await));
        // A sensor registered again under the same key starts empty: its old readings are
        // gone, and its id is not the old one.
        sensor(st, "m", "a").await?;
        ensure!(st.raw(&range("m", "a", 0, 10, 10)).await?.is_empty());
        let out = st.write(&batch(vec![r("m", "a", 2, 20.0)])).await?;
        ensure!(out.inserted == 1, "{out:?}");
        ensure!(st.raw(&range("m", "a", 0, 10, 10)).await? == points(&[(2, 20.0)]));

        st.delete_machine(&m("m")).await?;
        let all: Vec<_> = st
            .list_all_sensors()
            .await?
            .into_iter()
            .map(|x| x.machine.to_string())
            .collect();
        ensure!(all == ["keep"], "{all:?}");
        ensure!(is_not_found(&st.count_readings(&m("m")).await));
        let e = st.write(&batch(vec![r("m", "b", 5, 1.0)])).await;
        ensure!(matches!(e, Err(StoreError::Invalid(_))), "{e:?}");
        st.ensure_machine(&m("m")).await?;
        ensure!(st.count_readings(&m("m")).await? == 0);
        ensure!(st.count_readings(&m("keep")).await? == 1);
        Ok(())
    }

    pub async fn unregistered_sensor_fails_the_whole_write(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "known").await?;
        for b in [
            batch(vec![r("m", "known", 1, 1.0), r("m", "unknown", 1, 1.0)]),
            batch(vec![r("m", "known", 1, 1.0), r("ghost", "known", 1, 1.0)]),
        ] {
            match st.write(&b).await {
                Err(StoreError::Invalid(msg)) => {
                    let bad = b.readings.last().context("reading")?;
                    ensure!(
                        msg.contains(bad.sensor.as_str()) && msg.contains(bad.machine.as_str()),
                        "{msg}"
                    );
                }
                other => anyhow::bail!("expected Invalid, got {other:?}"),
            }
        }
        ensure!(
            st.count_readings(&m("m")).await? == 0,
            "a failed write stores nothing"
        );
        // Registered later, it is found (the cache is not negative).
        sensor(st, "m", "unknown").await?;
        let out = st
            .write(&batch(vec![
                r("m", "known", 1, 1.0),
                r("m", "unknown", 1, 1.0),
            ]))
            .await?;
        ensure!(out.inserted == 2, "{out:?}");
        Ok(())
    }

    pub async fn non_finite_values_are_invalid(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "v").await?;
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = st
                .write(&batch(vec![r("m", "v", 1, 1.0), r("m", "v", 2, v)]))
                .await;
            ensure!(matches!(e, Err(StoreError::Invalid(_))), "{v}: {e:?}");
        }
        ensure!(st.count_readings(&m("m")).await? == 0);
        Ok(())
    }

    pub async fn dead_letters_round_trip(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "v").await?;
        let all_bytes: Vec<u8> = (0..=255u8).collect();
        let letters = vec![
            DeadLetter {
                received_at: Timestamp::from_millis(1_700_000_000_001),
                origin: Origin::Mqtt,
                channel: "pdm/m/telemetry".into(),
                machine: Some("m".into()),
                kind: RejectKind::Malformed,
                reason: "expected JSON".into(),
                payload_head: all_bytes.clone(),
            },
            DeadLetter {
                received_at: Timestamp::from_millis(1_700_000_000_002),
                origin: Origin::Http,
                channel: "/api/v1/machines/x/telemetry".into(),
                machine: None,
                kind: RejectKind::BadKey,
                reason: "machine key \"X\" has 'X' at position 0".into(),
                payload_head: vec![],
            },
            DeadLetter {
                received_at: Timestamp::from_millis(1_700_000_000_003),
                origin: Origin::Simulator,
                channel: "sim".into(),
                machine: Some("m".into()),
                kind: RejectKind::OutOfRange,
                reason: "value 1e9 of sensor 'v' is outside its plausible range".into(),
                payload_head: b"{\"v\": 1e9}".to_vec(),
            },
        ];
        let out = st
            .write(&Batch {
                readings: vec![r("m", "v", 1, 1.0)],
                dead_letters: letters.clone(),
            })
            .await?;
        ensure!(out.inserted == 1 && out.dead_letters == 3, "{out:?}");
        let out = st
            .write(&Batch {
                readings: vec![],
                dead_letters: vec![letters[0].clone()],
            })
            .await?;
        ensure!(out.dead_letters == 1 && out.inserted == 0, "{out:?}");

        let q = |machine: Option<&str>, kind: Option<RejectKind>, limit| DeadLetterQuery {
            before: None,
            machine: machine.map(str::to_owned),
            kind,
            limit,
        };
        let got = st.dead_letters(&q(None, None, 100)).await?;
        ensure!(got.len() == 4, "{got:?}");
        ensure!(
            got.windows(2).all(|w| w[0].id > w[1].id),
            "newest first: {got:?}"
        );
        let in_order: Vec<_> = got.iter().rev().map(|d| d.letter.clone()).collect();
        let mut want = letters.clone();
        want.push(letters[0].clone());
        ensure!(in_order == want, "{in_order:?}");

        // Newest first, continued from the last id of a page.
        let first = st.dead_letters(&q(None, None, 3)).await?;
        let rest = st
            .dead_letters(&DeadLetterQuery {
                before: first.last().map(|d| d.id),
                ..q(None, None, 3)
            })
            .await?;
        let ids: Vec<_> = first.iter().chain(&rest).map(|d| d.id).collect();
        ensure!(
            ids == got.iter().map(|d| d.id).collect::<Vec<_>>(),
            "{ids:?}"
        );

        let got = st.dead_letters(&q(Some("m"), None, 100)).await?;
        ensure!(got.len() == 3 && got.iter().all(|d| d.letter.machine.as_deref() == Some("m")));
        let got = st
            .dead_letters(&q(None, Some(RejectKind::Malformed), 100))
            .await?;
        ensure!(
            got.len() == 2 && got[0].letter.payload_head == all_bytes,
            "{got:?}"
        );
        let got = st
            .dead_letters(&q(Some("m"), Some(RejectKind::OutOfRange), 100))
            .await?;
        ensure!(got.len() == 1 && got[0].letter == letters[2], "{got:?}");
        let got = st.dead_letters(&q(None, None, 2)).await?;
        ensure!(got.len() == 2 && got[0].letter == letters[0] && got[1].letter == letters[2]);
        ensure!(st.dead_letters(&q(Some("zz"), None, 10)).await?.is_empty());
        ensure!(st.dead_letters(&q(None, None, 0)).await?.is_empty());
        Ok(())
    }

    pub async fn dead_letters_are_pruned_by_age_then_count(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "v").await?;
        // More than two pruning chunks, received one millisecond apart.
        let base = 1_700_000_000_000i64;
        let letter = |i: i64| DeadLetter {
            received_at: Timestamp::from_millis(base + i),
            origin: Origin::Mqtt,
            channel: "pdm/m/telemetry".into(),
            machine: Some("m".into()),
            kind: RejectKind::Malformed,
            reason: format!("letter {i}"),
            payload_head: vec![],
        };
        let out = st
            .write(&Batch {
                readings: vec![r("m", "v", 1, 1.0)],
                dead_letters: (0..21_000).map(letter).collect(),
            })
            .await?;
        ensure!(out.dead_letters == 21_000, "{out:?}");
        let prune = |before: Option<i64>, keep: Option<u64>| DeadLetterPrune {
            received_before: before.map(|ms| Timestamp::from_millis(base + ms)),
            keep_newest: keep,
        };
        let all = DeadLetterQuery {
            before: None,
            limit: 100_000,
            ..DeadLetterQuery::default()
        };

        ensure!(st.prune_dead_letters(&prune(None, None)).await? == 0);
        let n = st.prune_dead_letters(&prune(Some(20_500), None)).await?;
        ensure!(n == 20_500, "by age: {n}");
        let left = st.dead_letters(&all).await?;
        ensure!(left.len() == 500, "{}", left.len());
        ensure!(
            left.iter()
                .all(|d| d.letter.received_at.as_millis() >= base + 20_500),
            "only letters received before the cutoff go"
        );

        let n = st.prune_dead_letters(&prune(None, Some(100))).await?;
        ensure!(n == 400, "by count: {n}");
        let left = st.dead_letters(&all).await?;
        let reasons: Vec<String> = left.iter().map(|d| d.letter.reason.clone()).collect();
        let newest: Vec<String> = (20_900..21_000)
            .rev()
            .map(|i| format!("letter {i}"))
            .collect();
        ensure!(reasons == newest, "the newest 100 are kept: {reasons:?}");

        // Idempotent, a generous limit deletes nothing, and neither limit touches readings.
        ensure!(
            st.prune_dead_letters(&prune(Some(20_500), Some(100)))
                .await?
                == 0
        );
        ensure!(
            st.prune_dead_letters(&prune(Some(-1), Some(1_000_000)))
                .await?
                == 0
        );
        ensure!(st.prune_dead_letters(&prune(None, Some(0))).await? == 100);
        ensure!(st.dead_letters(&all).await?.is_empty());
        ensure!(st.count_readings(&m("m")).await? == 1);

        // Cutoffs outside what a backend can represent are clamped, not errors.
        st.write(&Batch {
            readings: vec![],
            dead_letters: vec![letter(0)],
        })
        .await?;
        ensure!(
            st.prune_dead_letters(&prune(Some(i64::MIN / 2), None))
                .await?
                == 0
        );
        let far = DeadLetterPrune {
            received_before: Some(Timestamp::from_millis(i64::MAX)),
            keep_newest: None,
        };
        ensure!(st.prune_dead_letters(&far).await? == 1);

        // Age goes by receive time, not by id: an old letter stored last still goes.
        st.write(&Batch {
            readings: vec![],
            dead_letters: vec![letter(30_000), letter(0), letter(30_001)],
        })
        .await?;
        ensure!(st.prune_dead_letters(&prune(Some(1), None)).await? == 1);
        let left = st.dead_letters(&all).await?;
        let reasons: Vec<&str> = left.iter().map(|d| d.letter.reason.as_str()).collect();
        ensure!(reasons == ["letter 30001", "letter 30000"], "{reasons:?}");
        Ok(())
    }

    pub async fn readings_are_pruned_by_age_on_every_sensor(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "a").await?;
        sensor(st, "m", "b").await?;
        sensor(st, "n", "a").await?;
        // Sensor m/a: more than two chunks of old readings; the others a few each.
        let readings = (0..21_000)
            .map(|i| r("m", "a", i, 1.0))
            .chain((0..10).map(|i| r("m", "b", i * 5_000, 2.0)))
            .chain((0..10).map(|i| r("n", "a", 20_995 + i, 3.0)))
            .collect();
        st.write(&batch(readings)).await?;
        let deleted = st.prune_readings(Timestamp::from_millis(21_000)).await?;
        // m/a: 0..21000 all go; m/b: 0, 5000, 10000, 15000, 20000 go; n/a: 20995..20999 go.
        ensure!(deleted == 21_000 + 5 + 5, "{deleted}");
        ensure!(st.count_readings(&m("m")).await? == 5);
        ensure!(st.count_readings(&m("n")).await? == 5);
        let left = st.raw(&range("n", "a", 0, 1_000_000, 100)).await?;
        ensure!(
            left.iter().map(|p| p.ts.as_millis()).eq(21_000..21_005),
            "the cutoff is exclusive: {left:?}"
        );
        ensure!(
            st.prune_readings(Timestamp::from_millis(21_000)).await? == 0,
            "idempotent"
        );
        // Cutoffs outside what a backend can represent are clamped, not errors.
        ensure!(st.prune_readings(Timestamp::from_millis(i64::MIN)).await? == 0);
        ensure!(st.prune_readings(Timestamp::from_millis(i64::MAX)).await? == 10);
        ensure!(st.count_readings(&m("m")).await? == 0);
        Ok(())
    }

    pub async fn million_timestamps_are_exact(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "v").await?;
        // Every millisecond of a 1,000,000 ms span, with values that are exact binary
        // fractions only by accident; written in engine-sized batches.
        let base = 1_732_000_000_000i64;
        const N: i64 = 1_000_000;
        for chunk in 0..(N / 20_000) {
            let readings = (chunk * 20_000..(chunk + 1) * 20_000)
                .map(|i| r("m", "v", base + i, (i as f64) * 0.001 + 0.1))
                .collect();
            let out = st.write(&batch(readings)).await?;
            ensure!(out.inserted == 20_000, "{out:?}");
        }
        ensure!(st.count_readings(&m("m")).await? == N as u64);
        let got = st.raw(&range("m", "v", base, base + N, N as u32)).await?;
        ensure!(got.len() == N as usize, "{}", got.len());
        for (i, p) in got.iter().enumerate() {
            let i = i as i64;
            ensure!(
                p.ts.as_millis() == base + i && p.value == (i as f64) * 0.001 + 0.1,
                "point {i}: {p:?}"
            );
        }
        let got = st
            .raw(&range("m", "v", base + 123_456, base + 123_459, 10))
            .await?;
        let ts: Vec<_> = got.iter().map(|p| p.ts.as_millis() - base).collect();
        ensure!(ts == [123_456, 123_457, 123_458], "{ts:?}");
        let b = st
            .buckets(&range("m", "v", base, base + N, 10_000), 1_000)
            .await?;
        ensure!(
            b.len() == 1_000 && b.iter().all(|b| b.count == 1_000),
            "{}",
            b.len()
        );
        Ok(())
    }

    pub async fn negative_and_distant_timestamps_are_exact(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "v").await?;
        let ts = [
            -11_676_096_000_001, // 1599-12-31T23:59:59.999Z
            -86_400_000_123,
            -1_001,
            -1,
            0,
            1,
            999,
            1_700_000_000_123,
            16_725_225_600_999,  // 2500-01-01T00:00:00.999Z
            253_402_300_799_999, // 9999-12-31T23:59:59.999Z
        ];
        let readings = ts.iter().map(|&t| r("m", "v", t, t as f64)).collect();
        st.write(&batch(readings)).await?;
        let got = st.raw(&range("m", "v", i64::MIN, i64::MAX, 100)).await?;
        let want: Vec<_> = ts.iter().map(|&t| (t, t as f64)).collect();
        ensure!(got == points(&want), "{got:?}");
        let got = st.raw(&range("m", "v", -1_001, 1, 100)).await?;
        ensure!(
            got == points(&[(-1_001, -1_001.0), (-1, -1.0), (0, 0.0)]),
            "{got:?}"
        );
        let latest = st.latest(&m("m")).await?;
        ensure!(latest.len() == 1 && latest[0].ts.as_millis() == 253_402_300_799_999);
        Ok(())
    }

    pub async fn values_round_trip_exactly(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        sensor(st, "m", "v").await?;
        let values = [
            0.1,
            -0.0,
            1e-300,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            f64::MIN,
            std::f64::consts::PI,
            -123_456_789.123_456_79,
            3.0,
        ];
        let readings = values
            .iter()
            .enumerate()
            .map(|(i, &v)| r("m", "v", i as i64, v))
            .collect();
        st.write(&batch(readings)).await?;
        let got = st.raw(&range("m", "v", 0, 100, 100)).await?;
        let got_bits: Vec<u64> = got.iter().map(|p| p.value.to_bits()).collect();
        let want_bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        // -0.0 may come back as 0.0 (SQLite normalizes it); every other value bit for bit.
        for (i, (g, w)) in got_bits.iter().zip(&want_bits).enumerate() {
            let same = g == w || (values[i] == 0.0 && f64::from_bits(*g) == 0.0);
            ensure!(
                same,
                "value {i}: got {} want {}",
                f64::from_bits(*g),
                values[i]
            );
        }
        ensure!(got.len() == values.len());
        Ok(())
    }

    pub async fn ensure_is_idempotent(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let a = st.ensure_machine(&m("m")).await?;
        ensure!(a.name == "m" && a.kind.is_none(), "{a:?}");
        let b = st.ensure_machine(&m("m")).await?;
        ensure!(a == b, "{a:?} vs {b:?}");
        // An existing machine is returned as it is, not overwritten.
        st.create_machine(&NewMachine {
            key: m("named"),
            name: Some("Named".into()),
            kind: Some("fan".into()),
            description: None,
        })
        .await?;
        let named = st.ensure_machine(&m("named")).await?;
        ensure!(named.name == "Named" && named.kind.as_deref() == Some("fan"));

        // ensure_sensor registers the machine too.
        let x = st.ensure_sensor(&m("new"), &s("x")).await?;
        ensure!(
            x.machine == m("new") && x.key == s("x") && x.unit.is_none(),
            "{x:?}"
        );
        ensure!(st.get_machine(&m("new")).await?.name == "new");
        let y = st.ensure_sensor(&m("new"), &s("x")).await?;
        ensure!(x == y);
        st.create_sensor(
            &m("named"),
            &NewSensor {
                key: s("t"),
                unit: Some("A".into()),
                min: Some(0.0),
                max: None,
            },
        )
        .await?;
        let t = st.ensure_sensor(&m("named"), &s("t")).await?;
        ensure!(
            t.unit.as_deref() == Some("A") && t.min == Some(0.0),
            "{t:?}"
        );
        // Sensors created by ensure are writable at once.
        let out = st
            .write(&batch(vec![r("new", "x", 1, 1.0), r("named", "t", 1, 2.0)]))
            .await?;
        ensure!(out.inserted == 2, "{out:?}");
        Ok(())
    }

    pub async fn ensure_is_safe_under_concurrency(cx: Ctx) -> Result<()> {
        // Two handles, as two workers would have, racing on the same new keys.
        let other = cx.reopen(&StoreOptions::default()).await?;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let st = if i % 2 == 0 {
                cx.store.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                let machine = st.ensure_machine(&m("racy")).await?;
                let sensor = st.ensure_sensor(&m("racy"), &s("temp")).await?;
                let other = st
                    .ensure_sensor(&m("racy-2"), &s(&format!("s{}", i % 4)))
                    .await?;
                Ok::<_, StoreError>((machine, sensor, other))
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await??);
        }
        let (m0, s0, _) = &results[0];
        for (mi, si, _) in &results {
            ensure!(mi == m0 && si == s0, "{mi:?} {si:?} vs {m0:?} {s0:?}");
        }
        let keys: Vec<_> = cx
            .store
            .list_machines()
            .await?
            .into_iter()
            .map(|x| x.key.to_string())
            .collect();
        ensure!(keys == ["racy", "racy-2"], "{keys:?}");
        ensure!(cx.store.list_sensors(&m("racy")).await?.len() == 1);
        ensure!(cx.store.list_sensors(&m("racy-2")).await?.len() == 4);
        Ok(())
    }

    pub async fn stale_sensor_ids_recover(cx: Ctx) -> Result<()> {
        let st = cx.store.clone();
        sensor(&*st, "m", "v").await?;
        st.write(&batch(vec![r("m", "v", 1, 1.0)])).await?;
        // Another process deletes and registers the sensor again: our cached id is stale.
        let other = cx.reopen(&StoreOptions::default()).await?;
        other.delete_sensor(&m("m"), &s("v")).await?;
        sensor(&*other, "m", "v").await?;
        other.write(&batch(vec![r("m", "v", 5, 5.0)])).await?;
        // Reads see the current registration at once.
        let got = st.raw(&range("m", "v", 0, 10, 10)).await?;
        ensure!(got == points(&[(5, 5.0)]), "{got:?}");
        let out = st
            .write(&batch(vec![r("m", "v", 1, 10.0), r("m", "v", 2, 20.0)]))
            .await?;
        ensure!(out.inserted == 2, "{out:?}");
        let got = other.raw(&range("m", "v", 0, 10, 10)).await?;
        ensure!(got == points(&[(1, 10.0), (2, 20.0), (5, 5.0)]), "{got:?}");
        // Deleted for good: the write fails as unregistered.
        other.delete_sensor(&m("m"), &s("v")).await?;
        let e = st.write(&batch(vec![r("m", "v", 3, 1.0)])).await;
        ensure!(matches!(e, Err(StoreError::Invalid(_))), "{e:?}");
        Ok(())
    }

    pub async fn migrations_rerun_cleanly(cx: Ctx) -> Result<()> {
        sensor(&*cx.store, "m", "v").await?;
        cx.store.write(&batch(vec![r("m", "v", 1, 1.0)])).await?;
        // Already migrated at connect: rerunning applies nothing and keeps the data.
        for _ in 0..2 {
            let report = pdm_store::migrate(&cx.url, &StoreOptions::default()).await?;
            ensure!(
                report.applied.is_empty() && report.version >= 1,
                "{report:?}"
            );
        }
        let again = cx
            .reopen(&StoreOptions::default().with_migrate(false))
            .await?;
        ensure!(again.count_readings(&m("m")).await? == 1);
        let again = cx.reopen(&StoreOptions::default()).await?;
        ensure!(again.get_sensor(&m("m"), &s("v")).await?.key == s("v"));
        Ok(())
    }

    pub async fn schema_check_without_migrations(cx: Ctx) -> Result<()> {
        let url = cx.empty_database().await?;
        let no_migrate = StoreOptions::default().with_migrate(false);
        match pdm_store::connect(&url, &no_migrate).await {
            Err(StoreError::Invalid(msg)) => {
                ensure!(
                    msg.contains("version 0") && msg.contains("migrate"),
                    "{msg}"
                )
            }
            Ok(_) => anyhow::bail!("connected to an unmigrated database"),
            Err(e) => anyhow::bail!("expected Invalid, got {e:?}"),
        }
        let report = pdm_store::migrate(&url, &StoreOptions::default()).await?;
        ensure!(
            report.applied.first() == Some(&(1, "init")) && report.version >= 1,
            "{report:?}"
        );
        let report = pdm_store::migrate(&url, &StoreOptions::default()).await?;
        ensure!(report.applied.is_empty(), "{report:?}");
        let st = pdm_store::connect(&url, &no_migrate).await?;
        st.ensure_sensor(&m("m"), &s("v")).await?;
        // Upcasts for frontends that hold the two halves separately.
        let telemetry: Arc<dyn TelemetryStore> = st.clone();
        let catalog: Arc<dyn CatalogStore> = st;
        telemetry.ping().await?;
        ensure!(catalog.list_machines().await?.len() == 1);
        Ok(())
    }
}

/// The rules of the model registry and the job queue (`ModelStore`, `JobStore`).
mod registry {
    use std::collections::BTreeSet;

    use pdm_core::{
        Activation, Job, JobId, JobOutcome, JobQuery, JobStatus, ModelId, ModelQuery, ModelStatus,
        NewJob, NewModel,
    };

    use super::*;

    fn new_model(machine: &str, bytes: Vec<u8>) -> NewModel {
        NewModel {
            machine: m(machine),
            kind: "pipeline".into(),
            trained_from: Timestamp::from_millis(1_700_000_000_000),
            trained_to: Timestamp::from_millis(1_700_086_400_000),
            parameters: r#"{"n_trees":100}"#.into(),
            metrics: r#"{"rows":86400,"threshold":0.61}"#.into(),
            bytes,
        }
    }

    fn by(who: &str, ms: i64) -> Activation {
        Activation {
            by: who.into(),
            at: Timestamp::from_millis(ms),
            machine: None,
        }
    }

    fn all_models(machine: Option<&str>) -> ModelQuery {
        ModelQuery {
            machine: machine.map(m),
            before: None,
            limit: 1_000,
        }
    }

    fn new_job(kind: &str, machine: Option<&str>) -> NewJob {
        NewJob {
            kind: kind.into(),
            machine: machine.map(m),
            params: r#"{"from":0,"to":1000}"#.into(),
        }
    }

    fn all_jobs() -> JobQuery {
        JobQuery {
            limit: 1_000,
            ..JobQuery::default()
        }
    }

    fn is_conflict(r: &Result<impl std::fmt::Debug, StoreError>) -> bool {
        matches!(r, Err(StoreError::Conflict(_)))
    }

    fn is_invalid(r: &Result<impl std::fmt::Debug, StoreError>) -> bool {
        matches!(r, Err(StoreError::Invalid(_)))
    }

    pub async fn model_versions_count_per_machine(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        st.ensure_machine(&m("b")).await?;
        let mut versions = Vec::new();
        for machine in ["a", "a", "b", "a"] {
            versions.push(st.create_model(&new_model(machine, vec![1, 2, 3])).await?);
        }
        let got: Vec<_> = versions
            .iter()
            .map(|x| (x.machine.to_string(), x.version))
            .collect();
        ensure!(
            got == [
                ("a".into(), 1),
                ("a".into(), 2),
                ("b".into(), 1),
                ("a".into(), 3)
            ],
            "{got:?}"
        );
        let first = &versions[0];
        let want = new_model("a", vec![]);
        ensure!(
            first.kind == want.kind
                && first.trained_from == want.trained_from
                && first.trained_to == want.trained_to
                && first.parameters == want.parameters
                && first.metrics == want.metrics
                && first.size_bytes == 3
                && first.status == ModelStatus::Candidate
                && first.activated_by.is_none()
                && first.activated_at.is_none(),
            "{first:?}"
        );
        ensure!(st.get_model(first.id).await? == *first);
        ensure!(
            first.created_at.as_millis() > 1_600_000_000_000,
            "{first:?}"
        );

        let unknown = st.create_model(&new_model("nope", vec![1])).await;
        ensure!(is_not_found(&unknown), "{unknown:?}");
        let mut bad = new_model("a", vec![1]);
        bad.kind = " ".into();
        let e = st.create_model(&bad).await;
        ensure!(is_invalid(&e), "{e:?}");
        let mut bad = new_model("a", vec![1]);
        bad.trained_to = Timestamp::from_millis(bad.trained_from.as_millis() - 1);
        let e = st.create_model(&bad).await;
        ensure!(is_invalid(&e), "{e:?}");
        let e = st.get_model(ModelId(9_999)).await;
        ensure!(is_not_found(&e), "{e:?}");
        let e = st.model_bytes(ModelId(9_999)).await;
        ensure!(is_not_found(&e), "{e:?}");
        // Refused registrations took no version.
        let next = st.create_model(&new_model("a", vec![])).await?;
        ensure!(next.version == 4, "{next:?}");
        Ok(())
    }

    pub async fn model_versions_are_distinct_under_concurrency(cx: Ctx) -> Result<()> {
        cx.store.ensure_machine(&m("racy")).await?;
        let other = cx.reopen(&StoreOptions::default()).await?;
        let mut tasks = Vec::new();
        for i in 0..12 {
            let st = if i % 2 == 0 {
                cx.store.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                st.create_model(&new_model("racy", vec![i as u8])).await
            }));
        }
        let mut versions = BTreeSet::new();
        for t in tasks {
            versions.insert(t.await??.version);
        }
        ensure!(versions == (1..=12).collect(), "{versions:?}");
        Ok(())
    }

    pub async fn model_bytes_round_trip_exactly(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        // Every byte value, an empty file, and 2 MiB of noise (out of line on both backends).
        let every: Vec<u8> = (0..=255u8).cycle().take(1_000).collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..2 * 1024 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        for bytes in [every, Vec::new(), noise] {
            let rec = st.create_model(&new_model("a", bytes.clone())).await?;
            ensure!(rec.size_bytes == bytes.len() as u64, "{rec:?}");
            let back = st.model_bytes(rec.id).await?;
            ensure!(back == bytes, "model {} came back changed", rec.id);
        }
        // Listing gives sizes, never files (the type has no room for them).
        let sizes: Vec<_> = st
            .list_models(&all_models(Some("a")))
            .await?
            .into_iter()
            .map(|r| r.size_bytes)
            .collect();
        ensure!(sizes == [2 * 1024 * 1024, 0, 1_000], "{sizes:?}");
        Ok(())
    }

    pub async fn activation_swaps_the_active_model(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        st.ensure_machine(&m("b")).await?;
        ensure!(st.active_model(&m("a")).await?.is_none());
        let e = st.active_model(&m("nope")).await;
        ensure!(is_not_found(&e), "{e:?}");
        let v1 = st.create_model(&new_model("a", vec![1])).await?;
        let v2 = st.create_model(&new_model("a", vec![2])).await?;
        let other = st.create_model(&new_model("b", vec![3])).await?;
        st.activate_model(other.id, &by("ops", 5)).await?;

        let got = st.activate_model(v1.id, &by("alice", 1_000)).await?;
        ensure!(
            got.status == ModelStatus::Active
                && got.activated_by.as_deref() == Some("alice")
                && got.activated_at == Some(Timestamp::from_millis(1_000)),
            "{got:?}"
        );
        ensure!(st.active_model(&m("a")).await? == Some(got));

        let got = st.activate_model(v2.id, &by("bob", 2_000)).await?;
        ensure!(got.status == ModelStatus::Active, "{got:?}");
        let v1_now = st.get_model(v1.id).await?;
        ensure!(
            v1_now.status == ModelStatus::Retired
                && v1_now.activated_by.as_deref() == Some("alice"),
            "{v1_now:?}"
        );
        ensure!(st.active_model(&m("a")).await?.map(|x| x.id) == Some(v2.id));
        // Another machine's active model is untouched.
        ensure!(st.active_model(&m("b")).await?.map(|x| x.id) == Some(other.id));

        // Activating the active model changes nothing, not even who and when.
        let again = st.activate_model(v2.id, &by("carol", 3_000)).await?;
        ensure!(again == got, "{again:?} vs {got:?}");

        // A retired model may be activated again (a rollback).
        let back = st.activate_model(v1.id, &by("dave", 4_000)).await?;
        ensure!(
            back.status == ModelStatus::Active && back.activated_by.as_deref() == Some("dave"),
            "{back:?}"
        );
        ensure!(st.get_model(v2.id).await?.status == ModelStatus::Retired);

        // The machine named by the caller must be the model's.
        let mut wrong = by("eve", 5_000);
        wrong.machine = Some(m("b"));
        let e = st.activate_model(v2.id, &wrong).await;
        ensure!(is_conflict(&e), "{e:?}");
        ensure!(st.get_model(v2.id).await?.status == ModelStatus::Retired);
        let mut right = by("eve", 5_000);
        right.machine = Some(m("a"));
        ensure!(st.activate_model(v2.id, &right).await?.status == ModelStatus::Active);

        let e = st.activate_model(ModelId(9_999), &by("x", 0)).await;
        ensure!(is_not_found(&e), "{e:?}");
        Ok(())
    }

    pub async fn one_active_model_under_concurrent_activations(cx: Ctx) -> Result<()> {
        cx.store.ensure_machine(&m("a")).await?;
        let mut ids = Vec::new();
        for i in 0..8u8 {
            ids.push(cx.store.create_model(&new_model("a", vec![i])).await?.id);
        }
        let other = cx.reopen(&StoreOptions::default()).await?;
        let mut tasks = Vec::new();
        for round in 0..2 {
            for (i, &id) in ids.iter().enumerate() {
                let st = if (i + round) % 2 == 0 {
                    cx.store.clone()
                } else {
                    other.clone()
                };
                tasks.push(tokio::spawn(async move {
                    st.activate_model(id, &by("racer", i as i64)).await
                }));
            }
        }
        for t in tasks {
            t.await??;
        }
        let models = cx.store.list_models(&all_models(Some("a"))).await?;
        let active: Vec<_> = models
            .iter()
            .filter(|x| x.status == ModelStatus::Active)
            .collect();
        ensure!(active.len() == 1, "{models:?}");
        ensure!(
            models.iter().all(|x| x.status != ModelStatus::Candidate),
            "{models:?}"
        );
        ensure!(cx.store.active_model(&m("a")).await?.map(|x| x.id) == Some(active[0].id));
        Ok(())
    }

    pub async fn models_list_newest_first_in_pages(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        st.ensure_machine(&m("b")).await?;
        let mut a = Vec::new();
        let mut every = Vec::new();
        for i in 0..7 {
            let machine = if i % 3 == 2 { "b" } else { "a" };
            let id = st.create_model(&new_model(machine, vec![])).await?.id;
            if machine == "a" {
                a.push(id);
            }
            every.push(id);
        }
        a.reverse();
        every.reverse();
        let ids = |v: Vec<pdm_core::ModelRecord>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();
        ensure!(ids(st.list_models(&all_models(None)).await?) == every);
        // Pages of 2 of machine a, each continuing below the last id of the previous one.
        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = ids(st
                .list_models(&ModelQuery {
                    machine: Some(m("a")),
                    before,
                    limit: 2,
                })
                .await?);
            if page.is_empty() {
                break;
            }
            before = page.last().copied();
            pages.push(page);
        }
        ensure!(
            pages.len() == 3 && pages.concat() == a,
            "{pages:?} vs {a:?}"
        );
        ensure!(st.list_models(&all_models(Some("nope"))).await?.is_empty());
        Ok(())
    }

    pub async fn deleting_a_machine_deletes_its_models(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        st.ensure_machine(&m("b")).await?;
        let gone = st.create_model(&new_model("a", vec![1, 2])).await?;
        st.activate_model(gone.id, &by("x", 1)).await?;
        let kept = st.create_model(&new_model("b", vec![3])).await?;
        st.delete_machine(&m("a")).await?;
        let e = st.get_model(gone.id).await;
        ensure!(is_not_found(&e), "{e:?}");
        let e = st.model_bytes(gone.id).await;
        ensure!(is_not_found(&e), "{e:?}");
        let left: Vec<_> = st
            .list_models(&all_models(None))
            .await?
            .into_iter()
            .map(|x| x.id)
            .collect();
        ensure!(left == [kept.id], "{left:?}");
        // A machine registered again under the same key starts over at version 1.
        st.ensure_machine(&m("a")).await?;
        let again = st.create_model(&new_model("a", vec![])).await?;
        ensure!(again.version == 1 && again.id > kept.id, "{again:?}");
        ensure!(st.active_model(&m("a")).await?.is_none());
        Ok(())
    }

    pub async fn job_lifecycle(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let e = st.create_job(&new_job("", None)).await;
        ensure!(is_invalid(&e), "{e:?}");
        ensure!(st
            .claim_next_job("w1", Timestamp::from_millis(1))
            .await?
            .is_none());
        let queued = st.create_job(&new_job("train", Some("pump-1"))).await?;
        ensure!(
            queued.status == JobStatus::Queued
                && queued.kind == "train"
                && queued.machine == Some(m("pump-1"))
                && queued.params == new_job("train", None).params
                && queued.progress == 0.0
                && queued.message.is_none()
                && queued.result.is_none()
                && queued.worker.is_none()
                && queued.started_at.is_none()
                && queued.finished_at.is_none()
                && queued.created_at.as_millis() > 1_600_000_000_000,
            "{queued:?}"
        );
        ensure!(st.get_job(queued.id).await? == queued);
        // Progress only while running.
        let e = st.update_progress(queued.id, 0.5, None).await;
        ensure!(is_conflict(&e), "{e:?}");

        let running = st
            .claim_next_job("w1", Timestamp::from_millis(10_000))
            .await?
            .context("a queued job")?;
        ensure!(
            running.id == queued.id
                && running.status == JobStatus::Running
                && running.worker.as_deref() == Some("w1")
                && running.started_at == Some(Timestamp::from_millis(10_000)),
            "{running:?}"
        );
        ensure!(st
            .claim_next_job("w2", Timestamp::from_millis(1))
            .await?
            .is_none());

        let p = st
            .update_progress(running.id, 0.25, Some("reading"))
            .await?;
        ensure!(
            p.progress == 0.25 && p.message.as_deref() == Some("reading"),
            "{p:?}"
        );
        let p = st.update_progress(running.id, 0.5, None).await?;
        ensure!(
            p.progress == 0.5 && p.message.as_deref() == Some("reading"),
            "{p:?}"
        );
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let e = st.update_progress(running.id, bad, None).await;
            ensure!(is_invalid(&e), "{bad}: {e:?}");
        }

        let done = st
            .finish_job(
                running.id,
                &JobOutcome::Succeeded {
                    result: r#"{"model":7}"#.into(),
                    message: None,
                },
                Timestamp::from_millis(20_000),
            )
            .await?;
        ensure!(
            done.status == JobStatus::Succeeded
                && done.progress == 1.0
                && done.result.as_deref() == Some(r#"{"model":7}"#)
                && done.message.as_deref() == Some("reading")
                && done.finished_at == Some(Timestamp::from_millis(20_000)),
            "{done:?}"
        );
        // Finished is final.
        let failed = JobOutcome::Failed {
            message: "late".into(),
        };
        let e = st
            .finish_job(done.id, &failed, Timestamp::from_millis(1))
            .await;
        ensure!(is_conflict(&e), "{e:?}");
        let e = st.update_progress(done.id, 0.5, None).await;
        ensure!(is_conflict(&e), "{e:?}");
        ensure!(st.get_job(done.id).await? == done);

        // A failure keeps its reason and progress.
        st.create_job(&new_job("train", None)).await?;
        let j = st
            .claim_next_job("w1", Timestamp::from_millis(30_000))
            .await?
            .context("a queued job")?;
        st.update_progress(j.id, 0.3, None).await?;
        let f = st
            .finish_job(j.id, &failed, Timestamp::from_millis(31_000))
            .await?;
        ensure!(
            f.status == JobStatus::Failed
                && f.message.as_deref() == Some("late")
                && f.progress == 0.3
                && f.result.is_none(),
            "{f:?}"
        );

        for e in [
            st.get_job(JobId(9_999)).await,
            st.update_progress(JobId(9_999), 0.1, None).await,
            st.finish_job(JobId(9_999), &failed, Timestamp::from_millis(1))
                .await,
            st.cancel_job(JobId(9_999), "x", Timestamp::from_millis(1))
                .await,
        ] {
            ensure!(is_not_found(&e), "{e:?}");
        }
        Ok(())
    }

    pub async fn jobs_cancel_only_before_they_finish(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let at = Timestamp::from_millis(5_000);
        let queued = st.create_job(&new_job("train", None)).await?;
        let c = st.cancel_job(queued.id, "not needed", at).await?;
        ensure!(
            c.status == JobStatus::Cancelled
                && c.message.as_deref() == Some("not needed")
                && c.finished_at == Some(at),
            "{c:?}"
        );
        // A cancelled job is never claimed.
        ensure!(st.claim_next_job("w", at).await?.is_none());

        st.create_job(&new_job("train", None)).await?;
        let running = st.claim_next_job("w", at).await?.context("a queued job")?;
        let c = st.cancel_job(running.id, "operator", at).await?;
        ensure!(c.status == JobStatus::Cancelled, "{c:?}");
        // Its worker learns it at its next step, and cannot finish it.
        let e = st.update_progress(running.id, 0.9, None).await;
        ensure!(is_conflict(&e), "{e:?}");
        let ok = JobOutcome::Succeeded {
            result: "{}".into(),
            message: None,
        };
        let e = st.finish_job(running.id, &ok, at).await;
        ensure!(is_conflict(&e), "{e:?}");

        st.create_job(&new_job("train", None)).await?;
        let done = st.claim_next_job("w", at).await?.context("a queued job")?;
        st.finish_job(done.id, &ok, at).await?;
        for id in [queued.id, running.id, done.id] {
            let before = st.get_job(id).await?;
            let e = st.cancel_job(id, "again", at).await;
            ensure!(is_conflict(&e), "{id}: {e:?}");
            ensure!(st.get_job(id).await? == before);
        }
        Ok(())
    }

    pub async fn jobs_are_claimed_once_under_concurrency(cx: Ctx) -> Result<()> {
        let mut created = BTreeSet::new();
        for _ in 0..30 {
            created.insert(cx.store.create_job(&new_job("train", None)).await?.id);
        }
        let other = cx.reopen(&StoreOptions::default()).await?;
        let mut tasks = Vec::new();
        for w in 0..6 {
            let st = if w % 2 == 0 {
                cx.store.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                let worker = format!("w{w}");
                let mut mine: Vec<Job> = Vec::new();
                while let Some(j) = st
                    .claim_next_job(&worker, Timestamp::from_millis(1))
                    .await?
                {
                    mine.push(j);
                }
                Ok::<_, StoreError>((worker, mine))
            }));
        }
        let mut claimed = Vec::new();
        for t in tasks {
            let (worker, mine) = t.await??;
            // Each claimer takes the oldest queued job each time.
            ensure!(
                mine.windows(2).all(|w| w[0].id < w[1].id),
                "{worker}: {mine:?}"
            );
            for j in mine {
                ensure!(j.worker.as_deref() == Some(worker.as_str()), "{j:?}");
                claimed.push(j.id);
            }
        }
        let unique: BTreeSet<_> = claimed.iter().copied().collect();
        ensure!(
            unique.len() == claimed.len(),
            "a job was claimed twice: {claimed:?}"
        );
        ensure!(unique == created, "{unique:?} vs {created:?}");
        Ok(())
    }

    pub async fn running_jobs_fail_after_a_crash(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        for _ in 0..4 {
            st.create_job(&new_job("train", Some("pump-1"))).await?;
        }
        let at = Timestamp::from_millis(1_000);
        let a1 = st.claim_next_job("w1", at).await?.context("job")?;
        let b = st.claim_next_job("w2", at).await?.context("job")?;
        let a2 = st.claim_next_job("w1", at).await?.context("job")?;
        // w1 restarts (another process, as after kill -9): its jobs fail, w2's run on.
        let restarted = cx.reopen(&StoreOptions::default()).await?;
        let later = Timestamp::from_millis(2_000);
        let n = restarted
            .fail_running_jobs("w1", "the worker restarted while the job ran", later)
            .await?;
        ensure!(n == 2, "{n}");
        for id in [a1.id, a2.id] {
            let j = st.get_job(id).await?;
            ensure!(
                j.status == JobStatus::Failed
                    && j.message.as_deref() == Some("the worker restarted while the job ran")
                    && j.finished_at == Some(later),
                "{j:?}"
            );
        }
        ensure!(st.get_job(b.id).await?.status == JobStatus::Running);
        ensure!(restarted.fail_running_jobs("w1", "again", later).await? == 0);
        // The queued job is still there to claim; a retry is a new job with the same input.
        let queued = restarted
            .claim_next_job("w1", later)
            .await?
            .context("job")?;
        ensure!(queued.id > a2.id, "{queued:?}");
        let retry = st
            .create_job(&NewJob {
                kind: a1.kind.clone(),
                machine: a1.machine.clone(),
                params: a1.params.clone(),
            })
            .await?;
        ensure!(retry.status == JobStatus::Queued && retry.params == a1.params);
        Ok(())
    }

    pub async fn jobs_list_newest_first_with_filters(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let mut every = Vec::new();
        for (kind, machine) in [
            ("train", Some("a")),
            ("import", Some("a")),
            ("train", Some("b")),
            ("train", None),
            ("train", Some("a")),
        ] {
            every.push(st.create_job(&new_job(kind, machine)).await?.id);
        }
        // The oldest job runs.
        st.claim_next_job("w", Timestamp::from_millis(1)).await?;
        let ids = |v: Vec<Job>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
        let list = |q: JobQuery| async move { st.list_jobs(&q).await.map(ids) };
        let newest_first: Vec<_> = every.iter().rev().copied().collect();
        ensure!(list(all_jobs()).await? == newest_first);
        let q = JobQuery {
            kind: Some("train".into()),
            machine: Some(m("a")),
            ..all_jobs()
        };
        ensure!(list(q).await? == [every[4], every[0]]);
        let q = JobQuery {
            status: Some(JobStatus::Running),
            ..all_jobs()
        };
        ensure!(list(q).await? == [every[0]]);
        let q = JobQuery {
            status: Some(JobStatus::Queued),
            kind: Some("train".into()),
            before: Some(every[4]),
            limit: 1,
            ..all_jobs()
        };
        ensure!(list(q).await? == [every[3]]);
        let q = JobQuery {
            before: Some(every[2]),
            ..all_jobs()
        };
        ensure!(list(q).await? == [every[1], every[0]]);
        let q = JobQuery {
            machine: Some(m("nope")),
            ..all_jobs()
        };
        ensure!(list(q).await?.is_empty());
        Ok(())
    }
}

/// Predictions, a machine's readings in one read, and ending a training job with its model.
mod live {
    use pdm_core::{
        Activation, Contribution, JobOutcome, JobStatus, MachineRangeQuery, ModelId, ModelRecord,
        ModelStatus, NewJob, NewModel, Prediction, PredictionBucket, PredictionQuery,
    };

    use super::*;

    fn new_model(machine: &str) -> NewModel {
        NewModel {
            machine: m(machine),
            kind: "pipeline".into(),
            trained_from: Timestamp::from_millis(1_000),
            trained_to: Timestamp::from_millis(2_000),
            parameters: "{}".into(),
            metrics: "{}".into(),
            bytes: vec![1, 2, 3],
        }
    }

    async fn model(st: &dyn Store, machine: &str) -> Result<ModelRecord> {
        st.ensure_machine(&m(machine)).await?;
        Ok(st.create_model(&new_model(machine)).await?)
    }

    fn pred(machine: &str, ms: i64, model: ModelId, score: f64) -> Prediction {
        Prediction {
            machine: m(machine),
            ts: Timestamp::from_millis(ms),
            model,
            score,
            threshold: 0.5,
            anomalous: score > 0.5,
            contributions: vec![],
            health: None,
            rul_s: None,
        }
    }

    fn pq(machine: &str, from: i64, to: i64, limit: u32) -> PredictionQuery {
        PredictionQuery {
            machine: m(machine),
            from: Timestamp::from_millis(from),
            to: Timestamp::from_millis(to),
            limit,
        }
    }

    fn is_conflict(r: &Result<impl std::fmt::Debug, StoreError>) -> bool {
        matches!(r, Err(StoreError::Conflict(_)))
    }

    fn is_invalid(r: &Result<impl std::fmt::Debug, StoreError>) -> bool {
        matches!(r, Err(StoreError::Invalid(_)))
    }

    pub async fn predictions_are_idempotent_ordered_and_limited(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let a = model(st, "a").await?;
        let b = model(st, "b").await?;
        ensure!(st.last_prediction(&m("a")).await?.is_none());
        ensure!(st.last_prediction(&m("nope")).await?.is_none());
        ensure!(st.write_predictions(&[]).await? == 0);

        let mut first = pred("a", 2_000, a.id, 0.9);
        first.contributions = vec![
            Contribution {
                sensor: s("temperature"),
                share: 0.8,
            },
            Contribution {
                sensor: s("vibration"),
                share: 0.2,
            },
        ];
        first.health = Some(0.75);
        first.rul_s = Some(86_400.5);
        // Written out of order, two machines in one call.
        let batch = vec![
            first.clone(),
            pred("a", 1_000, a.id, 0.1),
            pred("a", 3_000, a.id, 0.2),
            pred("b", 2_000, b.id, 0.3),
        ];
        ensure!(st.write_predictions(&batch).await? == 4);
        // Again, with a changed value and a duplicate inside the call: the first stays.
        let mut changed = first.clone();
        changed.score = 0.0;
        let again = vec![changed.clone(), changed, pred("a", 4_000, a.id, 0.4)];
        let n = st.write_predictions(&again).await?;
        ensure!(n == 1, "{n}");

        let got = st.predictions(&pq("a", 0, 10_000, 100)).await?;
        let want = vec![
            pred("a", 1_000, a.id, 0.1),
            first.clone(),
            pred("a", 3_000, a.id, 0.2),
            pred("a", 4_000, a.id, 0.4),
        ];
        ensure!(got == want, "{got:#?}");
        // Half open, limited, other machines apart.
        let got = st.predictions(&pq("a", 2_000, 4_000, 100)).await?;
        ensure!(got == want[1..3], "{got:#?}");
        let got = st.predictions(&pq("a", 0, 10_000, 2)).await?;
        ensure!(got == want[..2], "{got:#?}");
        ensure!(st.predictions(&pq("a", 0, 10_000, 0)).await?.is_empty());
        let got = st.predictions(&pq("a", i64::MIN, i64::MAX, 100)).await?;
        ensure!(got.len() == 4, "{got:#?}");
        let got = st.predictions(&pq("b", 0, 10_000, 100)).await?;
        ensure!(got == [pred("b", 2_000, b.id, 0.3)], "{got:#?}");
        ensure!(st.last_prediction(&m("a")).await? == Some(Timestamp::from_millis(4_000)));
        ensure!(st.last_prediction(&m("b")).await? == Some(Timestamp::from_millis(2_000)));

        // Unknown machine or model: NotFound, and nothing of the call is stored.
        let e = st
            .write_predictions(&[pred("a", 5_000, a.id, 0.1), pred("nope", 1, a.id, 0.1)])
            .await;
        ensure!(is_not_found(&e), "{e:?}");
        let e = st
            .write_predictions(&[
                pred("a", 5_000, a.id, 0.1),
                pred("a", 6_000, ModelId(9_999), 0.1),
            ])
            .await;
        ensure!(is_not_found(&e), "{e:?}");
        ensure!(st.last_prediction(&m("a")).await? == Some(Timestamp::from_millis(4_000)));
        let e = st.predictions(&pq("nope", 0, 1, 1)).await;
        ensure!(is_not_found(&e), "{e:?}");
        let mut bad = pred("a", 5_000, a.id, f64::NAN);
        ensure!(is_invalid(&st.write_predictions(&[bad.clone()]).await));
        bad.score = 0.1;
        bad.health = Some(f64::INFINITY);
        ensure!(is_invalid(&st.write_predictions(&[bad]).await));

        // The hot path: 10,000 in one call, then the same again.
        let many: Vec<_> = (0..10_000)
            .map(|i| pred("b", 1_000_000 + i * 1_000, b.id, (i % 10) as f64 / 10.0))
            .collect();
        ensure!(st.write_predictions(&many).await? == 10_000);
        ensure!(st.write_predictions(&many).await? == 0);
        let got = st
            .predictions(&pq("b", 1_000_000, i64::MAX, 20_000))
            .await?;
        ensure!(got == many, "{} predictions came back", got.len());
        Ok(())
    }

    pub async fn prediction_buckets_aggregate_exactly(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let a = model(st, "a").await?;
        let with = |ms: i64, score: f64, health: Option<f64>, rul: Option<f64>| {
            let mut p = pred("a", ms, a.id, score);
            p.health = health;
            p.rul_s = rul;
            p
        };
        st.write_predictions(&[
            with(-1_500, 0.25, None, None),
            with(0, 0.25, Some(0.9), None),
            with(400, 0.75, Some(0.5), Some(100.0)),
            with(999, 1.0, Some(0.7), Some(50.0)),
            with(2_000, 0.5, None, None),
            with(3_100, 0.125, Some(0.1), Some(7.5)),
        ])
        .await?;
        let b = |start: i64,
                 count: u64,
                 anomalous: u64,
                 avg_score: f64,
                 max_score: f64,
                 min_health: Option<f64>,
                 min_rul_s: Option<f64>| PredictionBucket {
            start: Timestamp::from_millis(start),
            count,
            anomalous,
            avg_score,
            max_score,
            min_health,
            min_rul_s,
        };
        let got = st
            .prediction_buckets(&pq("a", -10_000, 10_000, 100), 1_000)
            .await?;
        let want = vec![
            b(-2_000, 1, 0, 0.25, 0.25, None, None),
            b(0, 3, 2, 2.0 / 3.0, 1.0, Some(0.5), Some(50.0)),
            b(2_000, 1, 0, 0.5, 0.5, None, None),
            b(3_000, 1, 0, 0.125, 0.125, Some(0.1), Some(7.5)),
        ];
        ensure!(got.len() == want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(&want) {
            ensure!(
                g.start == w.start
                    && g.count == w.count
                    && g.anomalous == w.anomalous
                    && (g.avg_score - w.avg_score).abs() < 1e-12
                    && g.max_score == w.max_score
                    && g.min_health == w.min_health
                    && g.min_rul_s == w.min_rul_s,
                "{g:?} != {w:?}"
            );
        }
        // Limited, range half open, one wide bucket.
        let got = st.prediction_buckets(&pq("a", 0, 10_000, 2), 1_000).await?;
        ensure!(got.len() == 2 && got[0].start.as_millis() == 0, "{got:#?}");
        let got = st
            .prediction_buckets(&pq("a", 0, 2_000, 100), 10_000)
            .await?;
        ensure!(
            got.len() == 1 && got[0].count == 3 && got[0].start.as_millis() == 0,
            "{got:#?}"
        );
        ensure!(st
            .prediction_buckets(&pq("a", 5_000, 9_000, 100), 1_000)
            .await?
            .is_empty());
        let e = st.prediction_buckets(&pq("a", 0, 1, 1), 0).await;
        ensure!(is_invalid(&e), "{e:?}");
        let e = st.prediction_buckets(&pq("nope", 0, 1, 1), 1_000).await;
        ensure!(is_not_found(&e), "{e:?}");
        Ok(())
    }

    pub async fn predictions_are_pruned_and_go_with_their_machine(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let a = model(st, "a").await?;
        let b = model(st, "b").await?;
        // More than one chunk of 10,000 on one machine.
        let many: Vec<_> = (0..12_000)
            .map(|i| pred("a", i * 10, a.id, 0.1))
            .chain((0..10).map(|i| pred("b", i * 10_000, b.id, 0.1)))
            .collect();
        ensure!(st.write_predictions(&many).await? == 12_010);
        let n = st
            .prune_predictions(Timestamp::from_millis(110_000))
            .await?;
        // a: 0..110_000 in steps of 10 (11,000); b: 0, 10_000, ..., 100_000 (10).
        ensure!(n == 11_010, "{n}");
        let left = st
            .predictions(&pq("a", i64::MIN, i64::MAX, 100_000))
            .await?;
        ensure!(
            left.len() == 1_000 && left[0].ts.as_millis() == 110_000,
            "{}",
            left.len()
        );
        ensure!(st
            .predictions(&pq("b", i64::MIN, i64::MAX, 100))
            .await?
            .is_empty());
        ensure!(
            st.prune_predictions(Timestamp::from_millis(110_000))
                .await?
                == 0
        );

        st.write_predictions(&[pred("b", 1, b.id, 0.1)]).await?;
        st.delete_machine(&m("a")).await?;
        ensure!(st.last_prediction(&m("a")).await?.is_none());
        // Registered again under the same key: nothing of the old machine comes back.
        st.ensure_machine(&m("a")).await?;
        ensure!(st
            .predictions(&pq("a", i64::MIN, i64::MAX, 100))
            .await?
            .is_empty());
        ensure!(st.last_prediction(&m("b")).await? == Some(Timestamp::from_millis(1)));
        Ok(())
    }

    fn mq(machine: &str, from: i64, to: i64, limit: u32) -> MachineRangeQuery {
        MachineRangeQuery {
            machine: m(machine),
            from: Timestamp::from_millis(from),
            to: Timestamp::from_millis(to),
            limit,
        }
    }

    pub async fn machine_readings_are_ordered_ranged_and_limited(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        for key in ["b", "a", "a_b", "a-b"] {
            sensor(st, "m", key).await?;
        }
        sensor(st, "other", "a").await?;
        st.ensure_machine(&m("empty")).await?;
        st.write(&batch(vec![
            r("m", "b", 2_000, 2.1),
            r("m", "a", 2_000, 2.0),
            r("m", "a_b", 1_000, 1.2),
            r("m", "a-b", 1_000, 1.1),
            r("m", "a", 1_000, 1.0),
            r("m", "b", 3_000, 3.1),
            r("m", "a", 4_000, 4.0),
            r("other", "a", 2_000, 99.0),
        ]))
        .await?;
        let want = vec![
            r("m", "a", 1_000, 1.0),
            r("m", "a-b", 1_000, 1.1),
            r("m", "a_b", 1_000, 1.2),
            r("m", "a", 2_000, 2.0),
            r("m", "b", 2_000, 2.1),
            r("m", "b", 3_000, 3.1),
            r("m", "a", 4_000, 4.0),
        ];
        let got = st.machine_readings(&mq("m", 0, 10_000, 100)).await?;
        ensure!(got == want, "{got:#?}");
        let got = st.machine_readings(&mq("m", 1_000, 4_000, 100)).await?;
        ensure!(got == want[..6], "{got:#?}");
        let got = st.machine_readings(&mq("m", 1_001, 4_001, 100)).await?;
        ensure!(got == want[3..], "{got:#?}");
        // A page may end inside an instant.
        let got = st.machine_readings(&mq("m", 0, 10_000, 4)).await?;
        ensure!(got == want[..4], "{got:#?}");
        let got = st.machine_readings(&mq("m", 0, 10_000, 2)).await?;
        ensure!(got == want[..2], "{got:#?}");
        ensure!(st
            .machine_readings(&mq("m", 0, 10_000, 0))
            .await?
            .is_empty());
        let got = st
            .machine_readings(&mq("m", i64::MIN, i64::MAX, 100))
            .await?;
        ensure!(got == want, "{got:#?}");
        let got = st.machine_readings(&mq("other", 0, 10_000, 100)).await?;
        ensure!(got == [r("other", "a", 2_000, 99.0)], "{got:#?}");
        ensure!(st
            .machine_readings(&mq("empty", 0, 10_000, 100))
            .await?
            .is_empty());
        let e = st.machine_readings(&mq("nope", 0, 10_000, 100)).await;
        ensure!(is_not_found(&e), "{e:?}");
        Ok(())
    }

    pub async fn machine_readings_merge_many_sensors(cx: Ctx) -> Result<()> {
        // More sensors than one statement reads: the groups are merged in order.
        let st = &*cx.store;
        let keys: Vec<String> = (0..130).map(|i| format!("s{i:03}")).collect();
        for k in &keys {
            sensor(st, "m", k).await?;
        }
        let mut readings = Vec::new();
        for (i, k) in keys.iter().enumerate().rev() {
            for t in 0..3 {
                readings.push(r("m", k, t * 1_000, (i * 10 + t as usize) as f64));
            }
        }
        st.write(&batch(readings)).await?;
        let mut want = Vec::new();
        for t in 0..3 {
            for (i, k) in keys.iter().enumerate() {
                want.push(r("m", k, t * 1_000, (i * 10 + t as usize) as f64));
            }
        }
        let got = st.machine_readings(&mq("m", 0, 10_000, 1_000)).await?;
        ensure!(
            got == want,
            "{} readings, first {:?}",
            got.len(),
            got.first()
        );
        let got = st.machine_readings(&mq("m", 0, 10_000, 200)).await?;
        ensure!(got == want[..200], "{} readings", got.len());
        let got = st.machine_readings(&mq("m", 1_000, 2_000, 1_000)).await?;
        ensure!(got == want[130..260], "{} readings", got.len());
        Ok(())
    }

    async fn running_job(st: &dyn Store, machine: &str) -> Result<pdm_core::Job> {
        let job = st
            .create_job(&NewJob {
                kind: "train".into(),
                machine: Some(m(machine)),
                params: "{}".into(),
            })
            .await?;
        let claimed = st
            .claim_next_job("w", Timestamp::from_millis(10))
            .await?
            .context("a queued job")?;
        ensure!(claimed.id == job.id, "{claimed:?}");
        Ok(claimed)
    }

    fn by(who: &str, ms: i64) -> Activation {
        Activation {
            by: who.into(),
            at: Timestamp::from_millis(ms),
            machine: None,
        }
    }

    pub async fn registering_a_trained_model_finishes_its_job(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        let v1 = st.create_model(&new_model("a")).await?;
        st.activate_model(v1.id, &by("ops", 5)).await?;

        // A candidate: registered, not activated.
        let job = running_job(st, "a").await?;
        let (rec, done) = st
            .register_trained_model(job.id, &new_model("a"), None, Timestamp::from_millis(100))
            .await?;
        ensure!(
            rec.version == 2 && rec.status == ModelStatus::Candidate && rec.size_bytes == 3,
            "{rec:?}"
        );
        ensure!(st.get_model(rec.id).await? == rec);
        let want = format!(r#"{{"model":{},"version":2,"activated":false}}"#, rec.id.0);
        ensure!(
            done.id == job.id
                && done.status == JobStatus::Succeeded
                && done.progress == 1.0
                && done.result.as_deref() == Some(want.as_str())
                && done.finished_at == Some(Timestamp::from_millis(100)),
            "{done:?}"
        );
        ensure!(st.get_job(job.id).await? == done);
        ensure!(st.active_model(&m("a")).await?.map(|x| x.id) == Some(v1.id));
        // Finished: registering again for it is a conflict.
        let e = st
            .register_trained_model(job.id, &new_model("a"), None, Timestamp::from_millis(101))
            .await;
        ensure!(is_conflict(&e), "{e:?}");

        // Activated: the previous active model is retired.
        let job = running_job(st, "a").await?;
        let (rec, done) = st
            .register_trained_model(
                job.id,
                &new_model("a"),
                Some(&Activation {
                    by: "auto-train".into(),
                    at: Timestamp::from_millis(200),
                    machine: Some(m("a")),
                }),
                Timestamp::from_millis(201),
            )
            .await?;
        ensure!(
            rec.version == 3
                && rec.status == ModelStatus::Active
                && rec.activated_by.as_deref() == Some("auto-train")
                && rec.activated_at == Some(Timestamp::from_millis(200)),
            "{rec:?}"
        );
        let want = format!(r#"{{"model":{},"version":3,"activated":true}}"#, rec.id.0);
        ensure!(
            done.status == JobStatus::Succeeded && done.result.as_deref() == Some(want.as_str()),
            "{done:?}"
        );
        ensure!(st.active_model(&m("a")).await? == Some(rec.clone()));
        ensure!(st.get_model(v1.id).await?.status == ModelStatus::Retired);
        ensure!(st.model_bytes(rec.id).await? == [1, 2, 3]);
        Ok(())
    }

    pub async fn registering_a_trained_model_needs_a_running_job(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        st.ensure_machine(&m("b")).await?;
        let at = Timestamp::from_millis(100);
        let queued = st
            .create_job(&NewJob {
                kind: "train".into(),
                machine: Some(m("a")),
                params: "{}".into(),
            })
            .await?;
        let e = st
            .register_trained_model(queued.id, &new_model("a"), None, at)
            .await;
        ensure!(is_conflict(&e), "{e:?}");
        let running = st
            .claim_next_job("w", Timestamp::from_millis(10))
            .await?
            .context("a queued job")?;
        st.cancel_job(running.id, "stop", Timestamp::from_millis(20))
            .await?;
        let e = st
            .register_trained_model(running.id, &new_model("a"), Some(&by("x", 1)), at)
            .await;
        ensure!(is_conflict(&e), "{e:?}");
        let e = st
            .register_trained_model(pdm_core::JobId(9_999), &new_model("a"), None, at)
            .await;
        ensure!(is_not_found(&e), "{e:?}");
        // A failing registration or activation leaves the job running and nothing registered.
        let job = running_job(st, "a").await?;
        let e = st
            .register_trained_model(job.id, &new_model("nope"), None, at)
            .await;
        ensure!(is_not_found(&e), "{e:?}");
        let e = st
            .register_trained_model(
                job.id,
                &new_model("a"),
                Some(&Activation {
                    by: "x".into(),
                    at,
                    machine: Some(m("b")),
                }),
                at,
            )
            .await;
        ensure!(is_conflict(&e), "{e:?}");
        let models = st
            .list_models(&pdm_core::ModelQuery {
                machine: None,
                before: None,
                limit: 100,
            })
            .await?;
        ensure!(models.is_empty(), "{models:?}");
        let j = st.get_job(job.id).await?;
        ensure!(
            j.status == JobStatus::Running && j.result.is_none(),
            "{j:?}"
        );
        st.finish_job(
            job.id,
            &JobOutcome::Failed {
                message: "done".into(),
            },
            at,
        )
        .await?;
        Ok(())
    }
    pub async fn a_cancel_racing_a_registration_has_one_winner(cx: Ctx) -> Result<()> {
        cx.store.ensure_machine(&m("a")).await?;
        let other = cx.reopen(&StoreOptions::default()).await?;
        let mut registered = 0;
        for round in 0..10 {
            let job = running_job(&*cx.store, "a").await?;
            let st = cx.store.clone();
            let register = tokio::spawn(async move {
                st.register_trained_model(
                    job.id,
                    &new_model("a"),
                    Some(&by("auto-train", round)),
                    Timestamp::from_millis(100),
                )
                .await
            });
            let st = other.clone();
            let cancel = tokio::spawn(async move {
                st.cancel_job(job.id, "stop", Timestamp::from_millis(100))
                    .await
            });
            let (reg, can) = (register.await?, cancel.await?);
            let models = cx
                .store
                .list_models(&pdm_core::ModelQuery {
                    machine: Some(m("a")),
                    before: None,
                    limit: 100,
                })
                .await?;
            let end = cx.store.get_job(job.id).await?;
            match (&reg, &can) {
                (Ok((rec, done)), Err(StoreError::Conflict(_))) => {
                    registered += 1;
                    ensure!(
                        done.status == JobStatus::Succeeded
                            && end == *done
                            && models.len() == registered
                            && models[0].id == rec.id,
                        "{reg:?} {can:?} {models:?}"
                    );
                }
                (Err(StoreError::Conflict(_)), Ok(cancelled)) => ensure!(
                    cancelled.status == JobStatus::Cancelled
                        && end == *cancelled
                        && models.len() == registered,
                    "{reg:?} {can:?} {models:?}"
                ),
                _ => anyhow::bail!("not exactly one winner: {reg:?} {can:?}"),
            }
        }
        Ok(())
    }
}

/// Alarms: transitions with their events and outbox rows, one open alarm per machine and rule,
/// listing, rules with fleet defaults (`AlarmStore`).
mod alarms {
    use pdm_core::alarm::{AlarmEvent, AlarmEventKind, Severity, StateName};
    use pdm_core::{AlarmId, AlarmQuery, AlarmTransition, NewAlarmRule, StoredAlarm};

    use super::*;

    fn ev(kind: AlarmEventKind, at: i64, severity: Severity) -> AlarmEvent {
        AlarmEvent {
            kind,
            at: Timestamp::from_millis(at),
            actor: "system".into(),
            reason: format!("{kind} at {at}"),
            severity,
        }
    }

    /// Opens an alarm of `machine` and `rule` raised at `at`.
    pub(super) fn raise(machine: &str, rule: &str, at: i64, severity: Severity) -> AlarmTransition {
        AlarmTransition {
            machine: m(machine),
            rule_id: rule.into(),
            alarm: None,
            expected_version: 0,
            state: StateName::ActiveUnacked,
            severity,
            state_json: format!(r#"{{"state":"active_unacknowledged","at":{at}}}"#),
            events: vec![ev(AlarmEventKind::Raised, at, severity)],
            closes: false,
        }
    }

    /// The next transition of `a`: `events`, to `state`, closing when `closes`.
    fn next(
        a: &StoredAlarm,
        state: StateName,
        events: Vec<AlarmEvent>,
        closes: bool,
    ) -> AlarmTransition {
        AlarmTransition {
            machine: a.machine.clone(),
            rule_id: a.rule_id.clone(),
            alarm: Some(a.id),
            expected_version: a.version,
            state,
            severity: events.last().map_or(a.severity, |e| e.severity),
            state_json: format!(r#"{{"state":"{state}"}}"#),
            events,
            closes,
        }
    }

    fn all(limit: u32) -> AlarmQuery {
        AlarmQuery {
            limit,
            ..AlarmQuery::default()
        }
    }

    async fn outbox_len(st: &dyn Store) -> Result<usize> {
        Ok(st.pending_outbox(10_000).await?.len())
    }

    pub async fn alarm_episodes_with_events_and_outbox(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        ensure!(st.open_alarm(&m("a"), "hot").await?.is_none());
        ensure!(is_not_found(&st.open_alarm(&m("nope"), "hot").await));
        ensure!(is_not_found(
            &st.record_transition(&raise("nope", "hot", 1, Severity::High))
                .await
        ));
        let mut empty = raise("a", "hot", 1, Severity::High);
        empty.events.clear();
        ensure!(matches!(
            st.record_transition(&empty).await,
            Err(StoreError::Invalid(_))
        ));

        let a = st
            .record_transition(&raise("a", "hot", 1_000, Severity::High))
            .await?;
        ensure!(a.version == 1 && a.closed_at.is_none(), "{a:?}");
        ensure!(a.opened_at == Timestamp::from_millis(1_000) && a.last_event_at == a.opened_at);
        ensure!(a.state == StateName::ActiveUnacked && a.severity == Severity::High);
        ensure!(a.state_json == r#"{"state":"active_unacknowledged","at":1000}"#);
        ensure!(st.open_alarm(&m("a"), "hot").await? == Some(a.clone()));
        ensure!(st.get_alarm(a.id).await? == a);
        ensure!(outbox_len(st).await? == 1);

        // A second raise while open is refused and writes nothing.
        let refused = st
            .record_transition(&raise("a", "hot", 1_500, Severity::Low))
            .await;
        ensure!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
        ensure!(st.alarm_events(a.id).await?.len() == 1);
        ensure!(outbox_len(st).await? == 1);

        // Acknowledge and escalate in one transition: two events, two outbox rows.
        let mut acked = ev(AlarmEventKind::Acknowledged, 2_000, Severity::High);
        acked.actor = "ana".into();
        let b = st
            .record_transition(&next(
                &a,
                StateName::ActiveAcked,
                vec![
                    acked.clone(),
                    ev(AlarmEventKind::Escalated, 2_500, Severity::Critical),
                ],
                false,
            ))
            .await?;
        ensure!(
            b.id == a.id && b.version == 2 && b.severity == Severity::Critical,
            "{b:?}"
        );
        ensure!(b.last_event_at == Timestamp::from_millis(2_500) && b.opened_at == a.opened_at);
        ensure!(outbox_len(st).await? == 3);

        // A transition computed from the stale version is refused and writes nothing.
        let stale = st
            .record_transition(&next(
                &a,
                StateName::Normal,
                vec![ev(AlarmEventKind::Cleared, 3_000, Severity::High)],
                true,
            ))
            .await;
        ensure!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
        ensure!(st.get_alarm(a.id).await? == b);
        ensure!(outbox_len(st).await? == 3);
        // Another rule's name on this alarm is invalid.
        let mut wrong = next(
            &b,
            StateName::Normal,
            vec![ev(AlarmEventKind::Cleared, 3_000, Severity::High)],
            true,
        );
        wrong.rule_id = "cold".into();
        ensure!(matches!(
            st.record_transition(&wrong).await,
            Err(StoreError::Invalid(_))
        ));
        ensure!(is_not_found(
            &st.record_transition(&AlarmTransition {
                alarm: Some(AlarmId(b.id.0 + 1000)),
                ..next(
                    &b,
                    StateName::Normal,
                    vec![ev(AlarmEventKind::Cleared, 3_000, Severity::High)],
                    true
                )
            })
            .await
        ));

        // Clearing closes the episode at the event's instant.
        let c = st
            .record_transition(&next(
                &b,
                StateName::Normal,
                vec![ev(AlarmEventKind::Cleared, 3_000, Severity::Critical)],
                true,
            ))
            .await?;
        ensure!(
            c.closed_at == Some(Timestamp::from_millis(3_000)) && c.version == 3,
            "{c:?}"
        );
        ensure!(st.open_alarm(&m("a"), "hot").await?.is_none());
        // A closed alarm takes no more transitions.
        let late = st
            .record_transition(&next(
                &c,
                StateName::Normal,
                vec![ev(AlarmEventKind::Cleared, 3_100, Severity::Low)],
                true,
            ))
            .await;
        ensure!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");

        let events = st.alarm_events(a.id).await?;
        let kinds: Vec<_> = events.iter().map(|e| e.event.kind).collect();
        ensure!(
            kinds
                == [
                    AlarmEventKind::Raised,
                    AlarmEventKind::Acknowledged,
                    AlarmEventKind::Escalated,
                    AlarmEventKind::Cleared
                ],
            "{events:?}"
        );
        ensure!(events[1].event == acked && events.iter().all(|e| e.alarm == a.id));
        ensure!(events.windows(2).all(|w| w[0].id < w[1].id));
        ensure!(is_not_found(&st.alarm_events(AlarmId(c.id.0 + 1000)).await));

        // A new episode for the same machine and rule.
        let d = st
            .record_transition(&raise("a", "hot", 4_000, Severity::Low))
            .await?;
        ensure!(d.id != a.id && d.closed_at.is_none());
        ensure!(st.open_alarm(&m("a"), "hot").await?.map(|x| x.id) == Some(d.id));

        // The outbox: every event once, oldest first, until delivered.
        let pending = st.pending_outbox(100).await?;
        ensure!(pending.len() == 5, "{pending:?}");
        ensure!(pending.windows(2).all(|w| w[0].id < w[1].id));
        ensure!(pending
            .iter()
            .all(|o| o.machine == m("a") && o.rule_id == "hot"));
        ensure!(pending[0].event == events[0] && pending[4].event.alarm == d.id);
        ensure!(st.pending_outbox(2).await?.len() == 2);
        let ids: Vec<i64> = pending[..3].iter().map(|o| o.id).collect();
        ensure!(
            st.mark_delivered(&ids, Timestamp::from_millis(9_000))
                .await?
                == 3
        );
        ensure!(
            st.mark_delivered(&ids, Timestamp::from_millis(9_001))
                .await?
                == 0
        );
        ensure!(
            st.mark_delivered(&[], Timestamp::from_millis(9_001))
                .await?
                == 0
        );
        let left = st.pending_outbox(100).await?;
        ensure!(left.iter().map(|o| o.id).collect::<Vec<_>>() == [pending[3].id, pending[4].id]);
        Ok(())
    }

    pub async fn concurrent_raises_open_one_alarm(cx: Ctx) -> Result<()> {
        cx.store.ensure_machine(&m("a")).await?;
        let other = cx.reopen(&StoreOptions::default()).await?;
        let mut tasks = Vec::new();
        for i in 0..16i64 {
            let st = if i % 2 == 0 {
                cx.store.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                st.record_transition(&raise("a", "hot", 1_000 + i, Severity::High))
                    .await
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            match t.await? {
                Ok(a) => won.push(a),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => anyhow::bail!("neither a winner nor a conflict: {e}"),
            }
        }
        ensure!(won.len() == 1, "{won:?}");
        let open = cx
            .store
            .list_alarms(&AlarmQuery {
                open: Some(true),
                ..all(100)
            })
            .await?;
        ensure!(open.len() == 1 && open[0] == won[0], "{open:?}");
        ensure!(cx.store.list_alarms(&all(100)).await?.len() == 1);
        ensure!(cx.store.alarm_events(won[0].id).await?.len() == 1);
        let outbox = cx.store.pending_outbox(100).await?;
        ensure!(
            outbox.len() == 1 && outbox[0].event.alarm == won[0].id,
            "{outbox:?}"
        );
        Ok(())
    }

    pub async fn alarms_list_newest_first_with_filters(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        st.ensure_machine(&m("b")).await?;
        let a1 = st
            .record_transition(&raise("a", "hot", 1_000, Severity::High))
            .await?;
        let a1 = st
            .record_transition(&next(
                &a1,
                StateName::Normal,
                vec![ev(AlarmEventKind::Cleared, 1_500, Severity::High)],
                true,
            ))
            .await?;
        let a2 = st
            .record_transition(&raise("a", "hot", 2_000, Severity::Low))
            .await?;
        let a3 = st
            .record_transition(&raise("a", "cold", 3_000, Severity::High))
            .await?;
        let b1 = st
            .record_transition(&raise("b", "hot", 4_000, Severity::Critical))
            .await?;
        let ids = |v: Vec<StoredAlarm>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();
        let list = |q: AlarmQuery| async move { st.list_alarms(&q).await.map(ids) };
        ensure!(list(all(100)).await? == [b1.id, a3.id, a2.id, a1.id]);
        ensure!(list(all(2)).await? == [b1.id, a3.id]);
        ensure!(
            list(AlarmQuery {
                before: Some(a3.id),
                ..all(100)
            })
            .await?
                == [a2.id, a1.id]
        );
        ensure!(
            list(AlarmQuery {
                machine: Some(m("a")),
                ..all(100)
            })
            .await?
                == [a3.id, a2.id, a1.id]
        );
        ensure!(list(AlarmQuery {
            machine: Some(m("zz")),
            ..all(100)
        })
        .await?
        .is_empty());
        ensure!(
            list(AlarmQuery {
                open: Some(false),
                ..all(100)
            })
            .await?
                == [a1.id]
        );
        ensure!(
            list(AlarmQuery {
                open: Some(true),
                ..all(100)
            })
            .await?
                == [b1.id, a3.id, a2.id]
        );
        ensure!(
            list(AlarmQuery {
                state: Some(StateName::Normal),
                ..all(100)
            })
            .await?
                == [a1.id]
        );
        ensure!(
            list(AlarmQuery {
                severity: Some(Severity::High),
                ..all(100)
            })
            .await?
                == [a3.id, a1.id]
        );
        ensure!(
            list(AlarmQuery {
                from: Some(Timestamp::from_millis(2_000)),
                to: Some(Timestamp::from_millis(4_000)),
                ..all(100)
            })
            .await?
                == [a3.id, a2.id]
        );
        ensure!(
            list(AlarmQuery {
                rule_id: Some("hot".into()),
                ..all(100)
            })
            .await?
                == [b1.id, a2.id, a1.id]
        );
        ensure!(
            list(AlarmQuery {
                machine: Some(m("a")),
                open: Some(true),
                severity: Some(Severity::Low),
                ..all(100)
            })
            .await?
                == [a2.id]
        );
        Ok(())
    }

    fn rule(machine: Option<&str>, id: &str, definition: &str, enabled: bool) -> NewAlarmRule {
        NewAlarmRule {
            machine: machine.map(m),
            rule_id: id.into(),
            definition: definition.into(),
            enabled,
        }
    }

    pub async fn alarm_rules_crud_with_fleet_defaults(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        st.ensure_machine(&m("b")).await?;
        ensure!(st.list_rules(None).await?.is_empty());
        ensure!(is_not_found(
            &st.put_rule(&rule(Some("nope"), "hot", "{}", true)).await
        ));
        ensure!(matches!(
            st.put_rule(&rule(None, " ", "{}", true)).await,
            Err(StoreError::Invalid(_))
        ));
        let fleet_hot = st.put_rule(&rule(None, "hot", r#"{"v":1}"#, true)).await?;
        ensure!(
            fleet_hot.machine.is_none()
                && fleet_hot.definition == r#"{"v":1}"#
                && fleet_hot.enabled
        );
        st.put_rule(&rule(None, "cold", "{}", true)).await?;
        let a_hot = st
            .put_rule(&rule(Some("a"), "hot", r#"{"v":2}"#, false))
            .await?;
        ensure!(a_hot.machine == Some(m("a")) && !a_hot.enabled && a_hot.id != fleet_hot.id);
        st.put_rule(&rule(Some("b"), "zap", "{}", true)).await?;

        // Replacing keeps the row (and its creation time), for the fleet default too.
        let again = st.put_rule(&rule(None, "hot", r#"{"v":3}"#, false)).await?;
        ensure!(again.id == fleet_hot.id && again.created_at == fleet_hot.created_at);
        ensure!(
            again.definition == r#"{"v":3}"#
                && !again.enabled
                && again.updated_at >= fleet_hot.updated_at
        );
        let a_again = st
            .put_rule(&rule(Some("a"), "hot", r#"{"v":4}"#, true))
            .await?;
        ensure!(a_again.id == a_hot.id && a_again.enabled);

        let key = |v: Vec<pdm_core::AlarmRuleRecord>| {
            v.into_iter()
                .map(|r| (r.machine.map(|k| k.to_string()), r.rule_id))
                .collect::<Vec<_>>()
        };
        let fleet = |id: &str| (None, id.to_owned());
        let of = |machine: &str, id: &str| (Some(machine.to_owned()), id.to_owned());
        ensure!(key(st.list_rules(None).await?) == [fleet("cold"), fleet("hot")]);
        ensure!(
            key(st.list_rules(Some(&m("a"))).await?)
                == [fleet("cold"), of("a", "hot"), fleet("hot")]
        );
        ensure!(
            key(st.list_rules(Some(&m("b"))).await?)
                == [fleet("cold"), fleet("hot"), of("b", "zap")]
        );

        ensure!(st.delete_rule(Some(&m("a")), "hot").await?);
        ensure!(!st.delete_rule(Some(&m("a")), "hot").await?);
        ensure!(!st.delete_rule(Some(&m("nope")), "hot").await?);
        ensure!(key(st.list_rules(Some(&m("a"))).await?) == [fleet("cold"), fleet("hot")]);
        ensure!(st.delete_rule(None, "hot").await?);
        ensure!(!st.delete_rule(None, "zap").await?);
        ensure!(key(st.list_rules(Some(&m("b"))).await?) == [fleet("cold"), of("b", "zap")]);
        Ok(())
    }

    pub async fn deleting_a_machine_deletes_its_alarms_and_rules(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        st.ensure_machine(&m("b")).await?;
        let a = st
            .record_transition(&raise("a", "hot", 1_000, Severity::High))
            .await?;
        st.record_transition(&next(
            &a,
            StateName::Normal,
            vec![ev(AlarmEventKind::Cleared, 1_500, Severity::High)],
            true,
        ))
        .await?;
        st.record_transition(&raise("a", "hot", 2_000, Severity::High))
            .await?;
        let b = st
            .record_transition(&raise("b", "hot", 3_000, Severity::High))
            .await?;
        st.put_rule(&rule(Some("a"), "hot", "{}", true)).await?;
        st.put_rule(&rule(None, "hot", "{}", true)).await?;
        ensure!(outbox_len(st).await? == 4);

        st.delete_machine(&m("a")).await?;
        ensure!(is_not_found(&st.get_alarm(a.id).await));
        ensure!(is_not_found(&st.alarm_events(a.id).await));
        ensure!(
            st.list_alarms(&all(100))
                .await?
                .into_iter()
                .map(|x| x.id)
                .collect::<Vec<_>>()
                == [b.id]
        );
        let outbox = st.pending_outbox(100).await?;
        ensure!(
            outbox.len() == 1 && outbox[0].machine == m("b"),
            "{outbox:?}"
        );
        let rules = st.list_rules(None).await?;
        ensure!(rules.len() == 1 && rules[0].machine.is_none(), "{rules:?}");
        // The machine can come back with no alarm open.
        st.ensure_machine(&m("a")).await?;
        ensure!(st.open_alarm(&m("a"), "hot").await?.is_none());
        st.record_transition(&raise("a", "hot", 5_000, Severity::Low))
            .await?;
        Ok(())
    }

    /// The inputs of the performance figures: events of a range by kind, with their alarm's
    /// machine and rule, by time; the episodes open at an instant.
    pub async fn alarm_events_between_and_alarms_open_at(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        st.ensure_machine(&m("b")).await?;
        // a/hot: raised 1000, acknowledged 1500, cleared 3000 (closed).
        let a1 = st
            .record_transition(&raise("a", "hot", 1_000, Severity::High))
            .await?;
        let mut acked = ev(AlarmEventKind::Acknowledged, 1_500, Severity::High);
        acked.actor = "ann".into();
        let a1 = st
            .record_transition(&next(&a1, StateName::ActiveAcked, vec![acked], false))
            .await?;
        st.record_transition(&next(
            &a1,
            StateName::Normal,
            vec![ev(AlarmEventKind::Cleared, 3_000, Severity::High)],
            true,
        ))
        .await?;
        // b/cold: raised 2000, still open. Written after a1's events, earlier in time.
        let b1 = st
            .record_transition(&raise("b", "cold", 2_000, Severity::Low))
            .await?;
        // a/hot again: raised 3000 (the instant a1 closed), open.
        let a2 = st
            .record_transition(&raise("a", "hot", 3_000, Severity::Medium))
            .await?;

        let kinds = [AlarmEventKind::Raised, AlarmEventKind::Cleared];
        let got = st
            .alarm_events_between(
                Timestamp::from_millis(0),
                Timestamp::from_millis(10_000),
                &kinds,
            )
            .await?;
        let seen: Vec<(String, String, AlarmEventKind, i64)> = got
            .iter()
            .map(|r| {
                (
                    r.machine.to_string(),
                    r.rule_id.clone(),
                    r.event.event.kind,
                    r.event.event.at.as_millis(),
                )
            })
            .collect();
        ensure!(
            seen == [
                ("a".into(), "hot".into(), AlarmEventKind::Raised, 1_000),
                ("b".into(), "cold".into(), AlarmEventKind::Raised, 2_000),
                ("a".into(), "hot".into(), AlarmEventKind::Cleared, 3_000),
                ("a".into(), "hot".into(), AlarmEventKind::Raised, 3_000),
            ],
            "{seen:?}"
        );
        ensure!(got[0].event.alarm == a1.id && got[1].event.alarm == b1.id);
        // Half-open: `to` excluded, `from` included; only the kinds asked for.
        let got = st
            .alarm_events_between(
                Timestamp::from_millis(1_500),
                Timestamp::from_millis(3_000),
                &[AlarmEventKind::Acknowledged, AlarmEventKind::Raised],
            )
            .await?;
        ensure!(
            got.iter()
                .map(|r| (r.event.event.kind, r.event.event.at.as_millis()))
                .collect::<Vec<_>>()
                == [
                    (AlarmEventKind::Acknowledged, 1_500),
                    (AlarmEventKind::Raised, 2_000)
                ],
            "{got:?}"
        );
        ensure!(got[0].event.event.actor == "ann");
        ensure!(st
            .alarm_events_between(
                Timestamp::from_millis(0),
                Timestamp::from_millis(10_000),
                &[]
            )
            .await?
            .is_empty());

        let open_at = |at: i64| async move {
            st.alarms_open_at(Timestamp::from_millis(at))
                .await
                .map(|v| v.into_iter().map(|x| x.id).collect::<Vec<_>>())
        };
        ensure!(open_at(999).await?.is_empty());
        ensure!(open_at(1_000).await? == [a1.id]);
        ensure!(open_at(2_500).await? == [a1.id, b1.id]);
        // At 3000 a1 is closed and a2 open.
        ensure!(open_at(3_000).await? == [b1.id, a2.id]);
        ensure!(open_at(i64::MAX / 4).await? == [b1.id, a2.id]);
        Ok(())
    }

    pub async fn machines_go_out_of_service_and_back(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        st.ensure_machine(&m("b")).await?;
        let note = |machine: &str, since: i64, reason: &str| pdm_core::ServiceNote {
            machine: m(machine),
            since: Timestamp::from_millis(since),
            by: "ann".into(),
            reason: reason.into(),
        };
        ensure!(st.out_of_service(None).await?.is_empty());
        ensure!(is_not_found(
            &st.put_out_of_service(&note("nope", 1, "x")).await
        ));
        ensure!(is_not_found(&st.clear_out_of_service(&m("nope")).await));
        ensure!(st
            .put_out_of_service(&note("b", 1_000, "bearing"))
            .await?
            .is_none());
        ensure!(st
            .put_out_of_service(&note("a", 2_000, "seal"))
            .await?
            .is_none());
        // Replacing returns the note it replaces.
        ensure!(
            st.put_out_of_service(&note("a", 3_000, "seal and pump"))
                .await?
                == Some(note("a", 2_000, "seal"))
        );
        ensure!(
            st.out_of_service(None).await?
                == [
                    note("a", 3_000, "seal and pump"),
                    note("b", 1_000, "bearing")
                ]
        );
        ensure!(st.out_of_service(Some(&m("b"))).await? == [note("b", 1_000, "bearing")]);
        ensure!(st.clear_out_of_service(&m("b")).await? == Some(note("b", 1_000, "bearing")));
        ensure!(st.clear_out_of_service(&m("b")).await?.is_none());
        ensure!(st.out_of_service(Some(&m("b"))).await?.is_empty());
        // Deleting the machine deletes its note.
        st.delete_machine(&m("a")).await?;
        ensure!(st.out_of_service(None).await?.is_empty());
        Ok(())
    }

    fn hook(url: &str) -> pdm_core::store::NewWebhook {
        pdm_core::store::NewWebhook {
            url: url.into(),
            description: None,
            secret: pdm_core::webhook::signing::generate_secret(),
            filter: Default::default(),
            enabled: true,
        }
    }

    fn delivery_to(
        w: pdm_core::WebhookId,
        row: &pdm_core::OutboxEntry,
    ) -> pdm_core::store::NewDelivery {
        pdm_core::store::NewDelivery {
            webhook: w,
            message_id: pdm_core::webhook::message_id(row.id),
            event_type: pdm_core::webhook::alarm_event_type(row),
            alarm_id: Some(row.event.alarm.0),
            payload: pdm_core::webhook::alarm_payload(row).expect("payload"),
        }
    }

    fn failed_attempt(at: i64) -> pdm_core::store::AttemptRecord {
        pdm_core::store::AttemptRecord {
            at: Timestamp::from_millis(at),
            status_code: Some(500),
            duration_ms: 12,
            error: Some("HTTP 500".into()),
        }
    }

    fn ok_attempt(at: i64) -> pdm_core::store::AttemptRecord {
        pdm_core::store::AttemptRecord {
            at: Timestamp::from_millis(at),
            status_code: Some(200),
            duration_ms: 3,
            error: None,
        }
    }

    /// A success after a failing streak (`EndpointChange::Recovered`) ends the streak and makes
    /// the endpoint's waiting retries due at once, except those the endpoint answered 429.
    pub async fn a_recovered_endpoint_gets_its_retries_at_once(cx: Ctx) -> Result<()> {
        use pdm_core::store::{AttemptRecord, EndpointChange, NextStep};
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        let a = st.create_webhook(&hook("https://a.example/h")).await?;
        let other = st.create_webhook(&hook("https://other.example/h")).await?;
        for rule in ["r1", "r2", "r3"] {
            st.record_transition(&raise("a", rule, 1_000, Severity::High))
                .await?;
        }
        let t = 10_000;
        let at = Timestamp::from_millis(t);
        for row in st.pending_outbox(10).await? {
            st.fan_out(
                row.id,
                &[delivery_to(a.id, &row), delivery_to(other.id, &row)],
                at,
            )
            .await?;
        }
        let lease = Timestamp::from_millis(t + 60_000);
        let mut claimed = st.claim_due(at, lease, 10).await?;
        claimed.retain(|d| d.webhook == a.id);
        ensure!(claimed.len() == 3, "{claimed:?}");
        let (d1, d2, d3) = (&claimed[0], &claimed[1], &claimed[2]);
        let later = Timestamp::from_millis(t + 300_000);
        st.record_attempt(
            d1.id,
            &failed_attempt(t),
            NextStep::RetryAt(later),
            &EndpointChange::Failing,
        )
        .await?;
        let too_many = AttemptRecord {
            at,
            status_code: Some(429),
            duration_ms: 2,
            error: Some("HTTP 429".into()),
        };
        let asked = Timestamp::from_millis(t + 3_600_000);
        st.record_attempt(
            d2.id,
            &too_many,
            NextStep::RetryAt(asked),
            &EndpointChange::Failing,
        )
        .await?;
        ensure!(st.get_webhook(a.id).await?.failing_since == Some(at));
        // The other endpoint's deliveries fail too, and stay scheduled.
        let mut theirs = st
            .claim_due(lease, Timestamp::from_millis(t + 120_000), 10)
            .await?;
        theirs.retain(|d| d.webhook == other.id);
        for d in &theirs {
            st.record_attempt(
                d.id,
                &failed_attempt(t),
                NextStep::RetryAt(later),
                &EndpointChange::Failing,
            )
            .await?;
        }

        let back = t + 61_000;
        st.record_attempt(
            d3.id,
            &ok_attempt(back),
            NextStep::Delivered,
            &EndpointChange::Recovered,
        )
        .await?;
        ensure!(st.get_webhook(a.id).await?.failing_since.is_none());
        let d1 = st.get_delivery(a.id, d1.id).await?;
        ensure!(
            d1.next_attempt_at == Some(Timestamp::from_millis(back)),
            "a 500 retry is due at once: {d1:?}"
        );
        let d2 = st.get_delivery(a.id, d2.id).await?;
        ensure!(
            d2.next_attempt_at == Some(asked),
            "a 429 keeps its time: {d2:?}"
        );
        for d in &theirs {
            let d = st.get_delivery(other.id, d.id).await?;
            ensure!(
                d.next_attempt_at == Some(later),
                "another endpoint's retry: {d:?}"
            );
        }
        let due = st
            .claim_due(
                Timestamp::from_millis(back),
                Timestamp::from_millis(back + 60_000),
                10,
            )
            .await?;
        ensure!(
            due.iter().map(|d| d.id).collect::<Vec<_>>() == vec![d1.id],
            "{due:?}"
        );
        Ok(())
    }

    /// A claim leases exactly the deliveries it returns, however many more are due: a lease
    /// the caller never heard of would hold a delivery back until it expires. Run as the
    /// dispatcher runs it when an endpoint comes back: many alarms' heads waiting for a retry,
    /// a probe (one delivery), a recovery making the rest due, claims of a few at a time.
    pub async fn claims_lease_only_the_deliveries_they_return(cx: Ctx) -> Result<()> {
        use pdm_core::store::{Delivery, DeliveryQuery, EndpointChange, NextStep};
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        let a = st.create_webhook(&hook("https://a.example/h")).await?;
        const ALARMS: usize = 40;
        for i in 0..ALARMS {
            st.record_transition(&raise("a", &format!("r{i}"), 1_000, Severity::High))
                .await?;
        }
        let t = 10_000;
        let at = Timestamp::from_millis(t);
        for row in st.pending_outbox(100).await? {
            st.fan_out(row.id, &[delivery_to(a.id, &row)], at).await?;
        }
        let leased = || async {
            let q = DeliveryQuery {
                webhook: a.id,
                status: None,
                before: None,
                limit: 1_000,
            };
            let mut ids: Vec<i64> = st
                .list_deliveries(&q)
                .await?
                .into_iter()
                .filter(|d| d.claimed_until.is_some())
                .map(|d| d.id)
                .collect();
            ids.sort_unstable();
            anyhow::Ok(ids)
        };
        let ids = |ds: &[Delivery]| {
            let mut ids: Vec<i64> = ds.iter().map(|d| d.id).collect();
            ids.sort_unstable();
            ids
        };

        let lease = Timestamp::from_millis(t + 60_000);
        let first = st.claim_due(at, lease, 5).await?;
        ensure!(first.len() == 5, "{} claimed of a limit of 5", first.len());
        ensure!(leased().await? == ids(&first), "leased beyond the claim");
        let rest = st.claim_due(at, lease, 100).await?;
        ensure!(rest.len() == ALARMS - 5, "{} claimed", rest.len());
        let later = Timestamp::from_millis(t + 300_000);
        for d in first.iter().chain(&rest) {
            st.record_attempt(
                d.id,
                &failed_attempt(t),
                NextStep::RetryAt(later),
                &EndpointChange::Failing,
            )
            .await?;
        }
        ensure!(leased().await?.is_empty());

        let probe_at = Timestamp::from_millis(t + 15_000);
        let probe = st
            .claim_probe(a.id, probe_at, Timestamp::from_millis(t + 75_000))
            .await?
            .context("a delivery to probe with")?;
        ensure!(
            leased().await? == vec![probe.id],
            "a probe leases one delivery"
        );
        st.record_attempt(
            probe.id,
            &ok_attempt(t + 15_000),
            NextStep::Delivered,
            &EndpointChange::Recovered,
        )
        .await?;
        ensure!(leased().await?.is_empty());

        let mut seen = Vec::new();
        for _ in 0..ALARMS {
            let now = Timestamp::from_millis(t + 16_000);
            let claimed = st
                .claim_due(now, Timestamp::from_millis(t + 76_000), 8)
                .await?;
            if claimed.is_empty() {
                break;
            }
            ensure!(
                claimed.len() <= 8,
                "{} claimed of a limit of 8",
                claimed.len()
            );
            let mut held = ids(&claimed);
            held.extend(&seen);
            held.sort_unstable();
            ensure!(leased().await? == held, "leased beyond the claim");
            seen.extend(claimed.iter().map(|d| d.id));
        }
        ensure!(
            seen.len() == ALARMS - 1,
            "every retry is due after the recovery: {} of {}",
            seen.len(),
            ALARMS - 1
        );
        Ok(())
    }

    /// Fan-out is idempotent and marks the row; claims are leased and keep one alarm's events
    /// in order per endpoint; attempts are logged and scheduled; a redelivery keeps its id.
    pub async fn webhook_deliveries_fan_out_lease_order_and_retry(cx: Ctx) -> Result<()> {
        use pdm_core::store::{DeliveryStatus, EndpointChange, NextStep};
        let st = &*cx.store;
        st.ensure_machine(&m("a")).await?;
        let a = st.create_webhook(&hook("https://a.example/h")).await?;
        let b = st.create_webhook(&hook("https://b.example/h")).await?;
        let ids =
            |v: Vec<pdm_core::store::Webhook>| v.into_iter().map(|w| w.id).collect::<Vec<_>>();
        ensure!(ids(st.webhooks_after(None, 1).await?) == [a.id]);
        ensure!(ids(st.webhooks_after(Some(a.id), 5).await?) == [b.id]);
        ensure!(st.webhooks_after(Some(b.id), 5).await?.is_empty());
        let alarm = st
            .record_transition(&raise("a", "hot", 1_000, Severity::High))
            .await?;
        st.record_transition(&next(
            &alarm,
            StateName::ActiveUnacked,
            vec![ev(AlarmEventKind::Escalated, 2_000, Severity::Critical)],
            false,
        ))
        .await?;
        let rows = st.pending_outbox(10).await?;
        ensure!(rows.len() == 2, "{rows:?}");
        let (r1, r2) = (&rows[0], &rows[1]);
        let t = 10_000;
        let at = Timestamp::from_millis(t);
        let n = st
            .fan_out(r1.id, &[delivery_to(a.id, r1), delivery_to(b.id, r1)], at)
            .await?;
        ensure!(n == 2, "{n}");
        let again = st
            .fan_out(r1.id, &[delivery_to(a.id, r1), delivery_to(b.id, r1)], at)
            .await?;
        ensure!(again == 0, "a second fan-out creates nothing: {again}");
        ensure!(st.pending_outbox(10).await?.len() == 1);
        ensure!(st.fan_out(r2.id, &[delivery_to(a.id, r2)], at).await? == 1);
        ensure!(st.pending_outbox(10).await?.is_empty());
        ensure!(is_not_found(&st.fan_out(999_999, &[], at).await));

        let lease = |ms: i64| Timestamp::from_millis(ms + 60_000);
        let claimed = st.claim_due(at, lease(t), 10).await?;
        ensure!(
            claimed.len() == 2 && claimed.iter().all(|d| d.outbox_id == Some(r1.id)),
            "the second event waits for the first at the same endpoint: {claimed:?}"
        );
        ensure!(claimed
            .iter()
            .all(|d| d.message_id == format!("msg_{}", r1.id)));
        ensure!(
            st.claim_due(at, lease(t), 10).await?.is_empty(),
            "leased deliveries are not claimed twice"
        );
        let da = claimed
            .iter()
            .find(|d| d.webhook == a.id)
            .context("a's delivery")?
            .clone();
        let db = claimed
            .iter()
            .find(|d| d.webhook == b.id)
            .context("b's delivery")?
            .clone();

        // A failure: retried later, the endpoint failing since the attempt.
        let retry_at = Timestamp::from_millis(t + 5_000);
        let d = st
            .record_attempt(
                da.id,
                &failed_attempt(t),
                NextStep::RetryAt(retry_at),
                &EndpointChange::Failing,
            )
            .await?;
        ensure!(
            d.status == DeliveryStatus::Pending && d.attempts == 1 && d.last_status == Some(500)
        );
        ensure!(d.next_attempt_at == Some(retry_at) && d.claimed_until.is_none());
        ensure!(st.get_webhook(a.id).await?.failing_since == Some(at));
        ensure!(
            st.claim_due(at, lease(t), 10).await?.is_empty(),
            "not due yet"
        );
        // b's lease expires: another worker takes it over.
        let taken = st.claim_due(lease(t), lease(t + 60_000), 10).await?;
        ensure!(
            taken.iter().map(|d| d.id).collect::<Vec<_>>() == vec![db.id, da.id],
            "an expired lease and a due retry: {taken:?}"
        );
        let d = st
            .record_attempt(
                da.id,
                &ok_attempt(t + 60_000),
                NextStep::Delivered,
                &EndpointChange::Healthy,
            )
            .await?;
        ensure!(d.status == DeliveryStatus::Delivered && d.attempts == 2);
        ensure!(st.get_webhook(a.id).await?.failing_since.is_none());
        ensure!(matches!(
            st.record_attempt(
                da.id,
                &ok_attempt(t),
                NextStep::Delivered,
                &EndpointChange::Healthy
            )
            .await,
            Err(StoreError::Conflict(_))
        ));
        let attempts = st.delivery_attempts(da.id).await?;
        ensure!(
            attempts.iter().map(|a| a.status_code).collect::<Vec<_>>()
                == vec![Some(500), Some(200)],
            "{attempts:?}"
        );
        ensure!(attempts[0].error.as_deref() == Some("HTTP 500") && attempts[1].error.is_none());
        // Now the second event of the alarm may go to a.
        let next_one = st.claim_due(lease(t), lease(t + 60_000), 10).await?;
        ensure!(
            next_one.len() == 1 && next_one[0].outbox_id == Some(r2.id),
            "{next_one:?}"
        );

        // Failed for good, then redelivered with the same id.
        let d = st
            .record_attempt(
                db.id,
                &failed_attempt(t),
                NextStep::Failed,
                &EndpointChange::Disable("gone".into()),
            )
            .await?;
        ensure!(d.status == DeliveryStatus::Failed);
        let wb = st.get_webhook(b.id).await?;
        ensure!(!wb.enabled && wb.disabled_reason.as_deref() == Some("gone"));
        let again = st.redeliver(b.id, db.id, at).await?;
        ensure!(again.status == DeliveryStatus::Pending && again.message_id == db.message_id);
        ensure!(
            st.claim_due(lease(t + 60_000), lease(t + 120_000), 10)
                .await?
                .iter()
                .all(|d| d.webhook != b.id),
            "a disabled endpoint's deliveries wait"
        );
        ensure!(
            is_not_found(&st.redeliver(a.id, db.id, at).await),
            "another webhook's delivery"
        );
        ensure!(is_not_found(&st.get_delivery(a.id, db.id).await));
        ensure!(st.get_delivery(b.id, db.id).await?.id == db.id);

        let page = st
            .list_deliveries(&pdm_core::store::DeliveryQuery {
                webhook: a.id,
                status: None,
                before: None,
                limit: 10,
            })
            .await?;
        ensure!(page.len() == 2 && page[0].id > page[1].id, "newest first");
        let delivered = st
            .list_deliveries(&pdm_core::store::DeliveryQuery {
                webhook: a.id,
                status: Some(DeliveryStatus::Delivered),
                before: None,
                limit: 10,
            })
            .await?;
        ensure!(delivered.len() == 1 && delivered[0].id == da.id);
        Ok(())
    }

    /// Endpoints: CRUD, rotation, test deliveries; cascades from endpoints and machines;
    /// pruning keeps pending deliveries.
    pub async fn webhooks_crud_rotation_cascade_and_prune(cx: Ctx) -> Result<()> {
        use pdm_core::store::{DeliveryQuery, EndpointChange, NextStep, WebhookUpdate};
        let st = &*cx.store;
        let mut new = hook("https://a.example/h");
        new.description = Some("ops".into());
        new.filter.severities = vec![Severity::High];
        new.filter.machines = vec![m("a")];
        let w = st.create_webhook(&new).await?;
        ensure!(w.url == new.url && w.secret == new.secret && w.enabled);
        ensure!(w.filter == new.filter && w.description.as_deref() == Some("ops"));
        ensure!(st.get_webhook(w.id).await? == w);
        ensure!(is_not_found(
            &st.get_webhook(pdm_core::WebhookId(999_999)).await
        ));
        let u = st
            .update_webhook(
                w.id,
                &WebhookUpdate {
                    url: Some("https://b.example/h".into()),
                    description: Some(None),
                    filter: None,
                    enabled: Some(false),
                },
            )
            .await?;
        ensure!(u.url == "https://b.example/h" && u.description.is_none() && !u.enabled);
        ensure!(u.filter == new.filter, "filters kept");
        let u = st
            .update_webhook(
                w.id,
                &WebhookUpdate {
                    enabled: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        ensure!(u.enabled && u.disabled_reason.is_none());
        ensure!(is_not_found(
            &st.update_webhook(pdm_core::WebhookId(999_999), &WebhookUpdate::default())
                .await
        ));
        let secret = pdm_core::webhook::signing::generate_secret();
        let r = st
            .rotate_secret(w.id, &secret, Timestamp::from_millis(5_000))
            .await?;
        ensure!(r.secret == secret && r.previous_secret.as_deref() == Some(w.secret.as_str()));
        ensure!(r.signing_secrets(Timestamp::from_millis(4_999)).len() == 2);
        ensure!(r.signing_secrets(Timestamp::from_millis(5_000)).len() == 1);

        // A test delivery, claimed by its creator.
        let test = pdm_core::store::NewDelivery {
            webhook: w.id,
            message_id: "msg_test_1".into(),
            event_type: "webhook.test".into(),
            alarm_id: None,
            payload: "{}".into(),
        };
        let t = st
            .create_delivery(
                &test,
                Timestamp::from_millis(1),
                Timestamp::from_millis(60_000),
            )
            .await?;
        ensure!(t.outbox_id.is_none() && t.claimed_until == Some(Timestamp::from_millis(60_000)));
        ensure!(st
            .claim_due(Timestamp::from_millis(2), Timestamp::from_millis(3), 10)
            .await?
            .is_empty());
        let mut other = test.clone();
        other.webhook = pdm_core::WebhookId(999_999);
        ensure!(is_not_found(
            &st.create_delivery(&other, Timestamp::from_millis(1), Timestamp::from_millis(2))
                .await
        ));
        st.record_attempt(
            t.id,
            &ok_attempt(1),
            NextStep::Delivered,
            &EndpointChange::Unchanged,
        )
        .await?;

        // Deliveries of a machine's alarms go with the machine.
        st.ensure_machine(&m("a")).await?;
        st.record_transition(&raise("a", "hot", 1_000, Severity::High))
            .await?;
        let rows = st.pending_outbox(10).await?;
        st.fan_out(
            rows[0].id,
            &[delivery_to(w.id, &rows[0])],
            Timestamp::from_millis(1_000),
        )
        .await?;
        let q = DeliveryQuery {
            webhook: w.id,
            status: None,
            before: None,
            limit: 10,
        };
        ensure!(st.list_deliveries(&q).await?.len() == 2);
        // Pruning keeps pending deliveries and the outbox rows they need.
        let pruned = st
            .prune_webhooks(Timestamp::from_millis(i64::MAX / 4))
            .await?;
        ensure!(pruned == 1, "the delivered test delivery: {pruned}");
        ensure!(st.list_deliveries(&q).await?.len() == 1);
        st.delete_machine(&m("a")).await?;
        ensure!(
            st.list_deliveries(&q).await?.is_empty(),
            "gone with the machine"
        );

        ensure!(st.delete_webhook(w.id).await?);
        ensure!(!st.delete_webhook(w.id).await?);
        ensure!(is_not_found(&st.list_deliveries(&q).await));
        ensure!(st.list_webhooks().await?.is_empty());
        ensure!(st.webhooks_after(None, 10).await?.is_empty());
        Ok(())
    }
}

mod access {
    use pdm_core::store::{
        ApiTokenId, NewApiToken, NewSession, NewUser, Permission, Role, Rotation, SessionId,
        TokenHash, TokenScope, User, UserId, UserUpdate,
    };

    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    /// A distinct token hash per `name`, shaped like the real ones (64 hex digits).
    fn h(name: &str) -> TokenHash {
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        TokenHash(format!("{hex:0>64}"))
    }

    fn new_user(email: &str, role: &str) -> NewUser {
        NewUser {
            email: email.into(),
            name: format!("Name of {email}"),
            role: role.into(),
            password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash-of-{email}"),
        }
    }

    /// The built-in roles and a user of `role`, created at 1,000 ms.
    async fn user(st: &dyn Store, email: &str, role: &str) -> Result<User> {
        st.sync_builtin_roles(&Role::builtin()).await?;
        Ok(st.create_user(&new_user(email, role), t(1_000)).await?)
    }

    /// A session of `user` started at `at`, its first refresh token `refresh` live for 10 s,
    /// the session for 100 s.
    fn sign_in(user: UserId, refresh: &str, at: i64) -> NewSession {
        NewSession {
            user,
            refresh: h(refresh),
            refresh_expires_at: t(at + 10_000),
            expires_at: t(at + 100_000),
            at: t(at),
            user_agent: Some("curl/8".into()),
            client_addr: Some("192.0.2.1".into()),
        }
    }

    fn custom(name: &str, permissions: Vec<Permission>) -> Role {
        Role {
            name: name.into(),
            description: format!("the {name} role"),
            permissions,
            builtin: true,
        }
    }

    fn api_token(name: &str, scope: TokenScope, by: Option<UserId>) -> NewApiToken {
        NewApiToken {
            name: name.into(),
            scope,
            hash: h(name),
            prefix: format!("pdm_{}", &name[..name.len().min(4)]),
            created_by: by,
            at: t(1_000),
            expires_at: None,
        }
    }

    fn is_conflict(r: &Result<impl std::fmt::Debug, StoreError>) -> bool {
        matches!(r, Err(StoreError::Conflict(_)))
    }

    pub async fn users_crud_with_case_insensitive_email(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        ensure!(st.count_users().await? == 0);
        let a = user(st, "Ada@Example.COM", "admin").await?;
        ensure!(
            a.email == "ada@example.com" && a.role == "admin" && a.active,
            "{a:?}"
        );
        ensure!(a.created_at == t(1_000) && a.updated_at == t(1_000) && a.last_sign_in.is_none());
        ensure!(a.password_hash.starts_with("$argon2id$"));
        ensure!(
            !format!("{a:?}").contains("argon2id"),
            "Debug shows no hash: {a:?}"
        );
        ensure!(st.get_user(a.id).await? == a);
        ensure!(st.user_by_email("ADA@example.com").await?.as_ref() == Some(&a));
        ensure!(st.user_by_email("bob@example.com").await?.is_none());
        ensure!(is_not_found(&st.get_user(UserId(999_999)).await));

        // The email is taken in any case; the role must exist.
        ensure!(is_conflict(
            &st.create_user(&new_user("ADA@example.com", "viewer"), t(2_000))
                .await
        ));
        ensure!(is_not_found(
            &st.create_user(&new_user("bob@example.com", "nope"), t(2_000))
                .await
        ));
        let b = st
            .create_user(&new_user("bob@example.com", "viewer"), t(2_000))
            .await?;
        let c = st
            .create_user(&new_user("cy@example.com", "engineer"), t(3_000))
            .await?;
        ensure!(st.count_users().await? == 3);
        let ids = |v: Vec<User>| v.into_iter().map(|u| u.id).collect::<Vec<_>>();
        ensure!(ids(st.list_users(None, 10).await?) == vec![a.id, b.id, c.id]);
        ensure!(ids(st.list_users(None, 2).await?) == vec![a.id, b.id]);
        ensure!(ids(st.list_users(Some(b.id), 2).await?) == vec![c.id]);
        ensure!(st.list_users(Some(c.id), 2).await?.is_empty());

        let u = st
            .update_user(
                b.id,
                &UserUpdate {
                    name: Some("Bob".into()),
                    role: Some("engineer".into()),
                    active: Some(false),
                    password_hash: Some("$argon2id$new".into()),
                },
                t(5_000),
            )
            .await?;
        ensure!(
            u.name == "Bob" && u.role == "engineer" && !u.active,
            "{u:?}"
        );
        ensure!(u.password_hash == "$argon2id$new" && u.updated_at == t(5_000));
        ensure!(u.created_at == b.created_at && u.email == b.email);
        let same = st
            .update_user(b.id, &UserUpdate::default(), t(6_000))
            .await?;
        ensure!(same.name == "Bob" && !same.active && same.role == "engineer");
        let back = st
            .update_user(
                b.id,
                &UserUpdate {
                    active: Some(true),
                    ..UserUpdate::default()
                },
                t(7_000),
            )
            .await?;
        ensure!(back.active && back.password_hash == "$argon2id$new");
        ensure!(is_not_found(
            &st.update_user(
                b.id,
                &UserUpdate {
                    role: Some("nope".into()),
                    ..UserUpdate::default()
                },
                t(8_000),
            )
            .await
        ));
        ensure!(st.get_user(b.id).await?.role == "engineer", "unchanged");
        ensure!(is_not_found(
            &st.update_user(UserId(999_999), &UserUpdate::default(), t(8_000))
                .await
        ));

        st.touch_sign_in(a.id, t(9_000)).await?;
        ensure!(st.get_user(a.id).await?.last_sign_in == Some(t(9_000)));
        ensure!(is_not_found(
            &st.touch_sign_in(UserId(999_999), t(9_000)).await
        ));
        Ok(())
    }

    pub async fn roles_builtin_sync_and_custom_crud(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        ensure!(st.list_roles().await?.is_empty());
        let builtin = Role::builtin();
        st.sync_builtin_roles(&builtin).await?;
        st.sync_builtin_roles(&builtin).await?;
        let mut sorted = builtin.clone();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        ensure!(st.list_roles().await? == sorted, "idempotent, by name");
        ensure!(st.get_role("viewer").await? == builtin[2]);
        ensure!(is_not_found(&st.get_role("nope").await));

        // A release granting a built-in role more applies it at the next start.
        let mut next = builtin.clone();
        next[2].permissions.push(Permission::OpsRead);
        st.sync_builtin_roles(&next).await?;
        ensure!(st.get_role("viewer").await?.grants(Permission::OpsRead));

        // Custom roles: created, then replaced; stored sorted without repeats, never built in.
        let perms = vec![
            Permission::AlarmsAct,
            Permission::MachinesRead,
            Permission::AlarmsAct,
        ];
        ensure!(st.put_role(&custom("operator", perms)).await?, "created");
        let op = st.get_role("operator").await?;
        ensure!(!op.builtin && op.description == "the operator role");
        ensure!(
            op.permissions == vec![Permission::MachinesRead, Permission::AlarmsAct],
            "{op:?}"
        );
        let mut changed = custom("operator", vec![Permission::AlarmsRead]);
        changed.description = "reads alarms".into();
        ensure!(!st.put_role(&changed).await?, "replaced");
        let op = st.get_role("operator").await?;
        ensure!(op.permissions == vec![Permission::AlarmsRead] && op.description == "reads alarms");
        ensure!(is_conflict(&st.put_role(&custom("admin", vec![])).await));
        ensure!(st.get_role("admin").await? == builtin[0], "untouched");
        ensure!(matches!(
            st.put_role(&custom("Bad Name", vec![])).await,
            Err(StoreError::Invalid(_))
        ));

        // Deleting: not built-in ones, not while held by a user or a token.
        ensure!(is_conflict(&st.delete_role("admin").await));
        ensure!(is_not_found(&st.delete_role("nope").await));
        let u = st
            .create_user(&new_user("op@example.com", "operator"), t(1_000))
            .await?;
        ensure!(is_conflict(&st.delete_role("operator").await));
        st.update_user(
            u.id,
            &UserUpdate {
                role: Some("viewer".into()),
                ..UserUpdate::default()
            },
            t(2_000),
        )
        .await?;
        let tok = st
            .create_api_token(&api_token(
                "script",
                TokenScope::Api {
                    role: "operator".into(),
                },
                None,
            ))
            .await?;
        ensure!(is_conflict(&st.delete_role("operator").await));
        ensure!(st.revoke_api_token(tok.id, t(3_000)).await?);
        ensure!(
            is_conflict(&st.delete_role("operator").await),
            "a revoked token still names its role"
        );

        ensure!(st.put_role(&custom("unused", vec![])).await?);
        st.delete_role("unused").await?;
        ensure!(is_not_found(&st.get_role("unused").await));
        ensure!(is_not_found(&st.delete_role("unused").await));

        // A role dropped from the built-in list becomes a custom one.
        st.sync_builtin_roles(&builtin[..2]).await?;
        ensure!(!st.get_role("viewer").await?.builtin);
        ensure!(st.get_role("engineer").await?.builtin);
        Ok(())
    }

    pub async fn refresh_rotation_spends_and_reuse_revokes(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let u = user(st, "a@example.com", "viewer").await?;
        ensure!(is_not_found(
            &st.create_session(&sign_in(UserId(999_999), "r0", 1_000))
                .await
        ));
        let s = st.create_session(&sign_in(u.id, "r1", 1_000)).await?;
        ensure!(s.user == u.id && s.created_at == t(1_000) && s.last_used_at == t(1_000));
        ensure!(s.expires_at == t(101_000) && s.revoked_at.is_none());
        ensure!(s.user_agent.as_deref() == Some("curl/8"));
        ensure!(s.client_addr.as_deref() == Some("192.0.2.1"));
        ensure!(st.get_session(s.id).await? == s);
        ensure!(is_not_found(&st.get_session(SessionId(999_999)).await));
        ensure!(is_conflict(
            &st.create_session(&sign_in(u.id, "r1", 1_000)).await
        ));

        ensure!(
            st.rotate_refresh(&h("nope"), &h("x"), t(20_000), t(2_000))
                .await?
                == Rotation::Unknown
        );
        let Rotation::Rotated { session, user } = st
            .rotate_refresh(&h("r1"), &h("r2"), t(12_000), t(2_000))
            .await?
        else {
            anyhow::bail!("a live token rotates");
        };
        ensure!(
            session.id == s.id && session.last_used_at == t(2_000),
            "{session:?}"
        );
        ensure!(session.revoked_at.is_none() && user == u);
        let Rotation::Rotated { session, .. } = st
            .rotate_refresh(&h("r2"), &h("r3"), t(13_000), t(3_000))
            .await?
        else {
            anyhow::bail!("its successor rotates");
        };
        ensure!(session.last_used_at == t(3_000));

        // The spent `r1` again: a theft; the session ends, with every token in it.
        let Rotation::Reused { session } = st
            .rotate_refresh(&h("r1"), &h("r4"), t(14_000), t(4_000))
            .await?
        else {
            anyhow::bail!("a spent token is a reuse");
        };
        ensure!(session.id == s.id && session.revoked_at == Some(t(4_000)));
        ensure!(session.revoked_reason.as_deref() == Some("refresh token reused"));
        ensure!(st.get_session(s.id).await? == session);
        ensure!(
            st.rotate_refresh(&h("r3"), &h("r5"), t(15_000), t(5_000))
                .await?
                == Rotation::Expired,
            "the live token of a revoked session is refused"
        );
        ensure!(
            st.rotate_refresh(&h("r4"), &h("r6"), t(15_000), t(5_000))
                .await?
                == Rotation::Unknown,
            "the reuse stored no successor"
        );
        let Rotation::Reused { session } = st
            .rotate_refresh(&h("r2"), &h("r7"), t(15_000), t(6_000))
            .await?
        else {
            anyhow::bail!("still a reuse");
        };
        ensure!(
            session.revoked_at == Some(t(4_000)),
            "first revocation kept"
        );

        // A deactivated user's session still rotates: the server refuses then.
        let s = st.create_session(&sign_in(u.id, "d1", 10_000)).await?;
        st.update_user(
            u.id,
            &UserUpdate {
                active: Some(false),
                ..UserUpdate::default()
            },
            t(10_500),
        )
        .await?;
        match st
            .rotate_refresh(&h("d1"), &h("d2"), t(21_000), t(11_000))
            .await?
        {
            Rotation::Rotated { session, user } => {
                ensure!(session.id == s.id && !user.active)
            }
            other => anyhow::bail!("{other:?}"),
        }
        Ok(())
    }

    pub async fn refresh_tokens_and_sessions_expire(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let u = user(st, "a@example.com", "viewer").await?;
        // The token lives until 11,000 ms.
        let s = st.create_session(&sign_in(u.id, "r1", 1_000)).await?;
        ensure!(
            st.rotate_refresh(&h("r1"), &h("r2"), t(30_000), t(11_000))
                .await?
                == Rotation::Expired
        );
        ensure!(st.get_session(s.id).await? == s, "nothing changed");
        ensure!(
            st.rotate_refresh(&h("r2"), &h("r3"), t(30_000), t(11_000))
                .await?
                == Rotation::Unknown
        );

        // A live token of a session past its absolute end (101,000 ms).
        let s = st.create_session(&sign_in(u.id, "q1", 1_000)).await?;
        let Rotation::Rotated { .. } = st
            .rotate_refresh(&h("q1"), &h("q2"), t(200_000), t(10_999))
            .await?
        else {
            anyhow::bail!("live until its expiry");
        };
        ensure!(
            st.rotate_refresh(&h("q2"), &h("q3"), t(300_000), t(101_000))
                .await?
                == Rotation::Expired
        );
        let after = st.get_session(s.id).await?;
        ensure!(after.revoked_at.is_none() && after.last_used_at == t(10_999));
        Ok(())
    }

    pub async fn concurrent_rotations_of_one_token_rotate_once(cx: Ctx) -> Result<()> {
        let u = user(&*cx.store, "a@example.com", "viewer").await?;
        let s = cx.store.create_session(&sign_in(u.id, "r1", 1_000)).await?;
        let other = cx.reopen(&StoreOptions::default()).await?;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let st = if i % 2 == 0 {
                cx.store.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                st.rotate_refresh(&h("r1"), &h(&format!("next{i}")), t(20_000), t(2_000))
                    .await
            }));
        }
        let (mut rotated, mut reused) = (Vec::new(), 0);
        for task in tasks {
            match task.await?? {
                Rotation::Rotated { session, .. } => rotated.push(session),
                Rotation::Reused { session } => {
                    ensure!(session.revoked_at.is_some(), "{session:?}");
                    reused += 1;
                }
                other => anyhow::bail!("neither rotated nor reused: {other:?}"),
            }
        }
        ensure!(
            rotated.len() == 1 && reused == 7,
            "{rotated:?}, {reused} reused"
        );
        let after = cx.store.get_session(s.id).await?;
        ensure!(
            after.revoked_reason.as_deref() == Some("refresh token reused"),
            "{after:?}"
        );
        Ok(())
    }

    pub async fn sessions_are_revoked_and_listed(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let a = user(st, "a@example.com", "viewer").await?;
        let b = st
            .create_user(&new_user("b@example.com", "viewer"), t(1_000))
            .await?;
        let now = Timestamp::now().as_millis();
        let s1 = st.create_session(&sign_in(a.id, "a1", now)).await?;
        let s2 = st.create_session(&sign_in(a.id, "a2", now)).await?;
        let s3 = st.create_session(&sign_in(a.id, "a3", now)).await?;
        // Long past its end.
        let old = st.create_session(&sign_in(a.id, "a4", 1_000)).await?;
        let sb = st.create_session(&sign_in(b.id, "b1", now)).await?;
        let ids =
            |v: Vec<pdm_core::store::Session>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        ensure!(ids(st.list_sessions(a.id, false).await?) == vec![s3.id, s2.id, s1.id]);
        ensure!(ids(st.list_sessions(a.id, true).await?) == vec![old.id, s3.id, s2.id, s1.id]);
        ensure!(st.list_sessions(UserId(999_999), true).await?.is_empty());

        ensure!(st.revoke_session(s2.id, "logout", t(now + 1)).await?);
        ensure!(!st.revoke_session(s2.id, "again", t(now + 2)).await?);
        ensure!(
            !st.revoke_session(old.id, "logout", t(now + 2)).await?,
            "an expired session ended already"
        );
        ensure!(is_not_found(
            &st.revoke_session(SessionId(999_999), "logout", t(now))
                .await
        ));
        let s2 = st.get_session(s2.id).await?;
        ensure!(
            s2.revoked_at == Some(t(now + 1)) && s2.revoked_reason.as_deref() == Some("logout")
        );
        ensure!(ids(st.list_sessions(a.id, false).await?) == vec![s3.id, s1.id]);
        ensure!(
            st.rotate_refresh(&h("a2"), &h("a2n"), t(now + 10_000), t(now + 3))
                .await?
                == Rotation::Expired
        );

        ensure!(
            st.revoke_user_sessions(a.id, "password reset", t(now + 4))
                .await?
                == 2
        );
        ensure!(st.list_sessions(a.id, false).await?.is_empty());
        ensure!(st.list_sessions(a.id, true).await?.len() == 4);
        let s1 = st.get_session(s1.id).await?;
        ensure!(s1.revoked_reason.as_deref() == Some("password reset"));
        ensure!(
            st.get_session(s2.id).await?.revoked_reason.as_deref() == Some("logout"),
            "an ended session keeps why it ended"
        );
        ensure!(st.revoke_user_sessions(a.id, "again", t(now + 5)).await? == 0);
        ensure!(
            ids(st.list_sessions(b.id, false).await?) == vec![sb.id],
            "b untouched"
        );
        Ok(())
    }

    pub async fn reset_tokens_are_single_use_and_expire(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let u = user(st, "a@example.com", "viewer").await?;
        ensure!(is_not_found(
            &st.create_reset_token(UserId(999_999), &h("x"), t(10_000), t(1_000))
                .await
        ));
        st.create_reset_token(u.id, &h("p1"), t(10_000), t(1_000))
            .await?;
        st.create_reset_token(u.id, &h("p2"), t(10_000), t(2_000))
            .await?;
        ensure!(is_conflict(
            &st.create_reset_token(u.id, &h("p1"), t(10_000), t(1_000))
                .await
        ));
        ensure!(st
            .consume_reset_token(&h("nope"), t(3_000))
            .await?
            .is_none());
        ensure!(st.consume_reset_token(&h("p1"), t(3_000)).await? == Some(u.id));
        ensure!(
            st.consume_reset_token(&h("p1"), t(3_001)).await?.is_none(),
            "single use"
        );
        ensure!(
            st.consume_reset_token(&h("p2"), t(10_000)).await?.is_none(),
            "expired at its expiry"
        );
        st.create_reset_token(u.id, &h("p3"), t(10_000), t(2_000))
            .await?;
        ensure!(
            st.consume_reset_token(&h("p3"), t(9_999)).await? == Some(u.id),
            "earlier tokens stay live"
        );
        Ok(())
    }

    pub async fn concurrent_reset_consumption_has_one_winner(cx: Ctx) -> Result<()> {
        let u = user(&*cx.store, "a@example.com", "viewer").await?;
        cx.store
            .create_reset_token(u.id, &h("p1"), t(10_000), t(1_000))
            .await?;
        let other = cx.reopen(&StoreOptions::default()).await?;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let st = if i % 2 == 0 {
                cx.store.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                st.consume_reset_token(&h("p1"), t(2_000)).await
            }));
        }
        let mut won = Vec::new();
        for task in tasks {
            if let Some(id) = task.await?? {
                won.push(id);
            }
        }
        ensure!(won == vec![u.id], "{won:?}");
        Ok(())
    }

    pub async fn api_and_ingest_tokens(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let u = user(st, "a@example.com", "admin").await?;
        st.ensure_machine(&m("pump-1")).await?;
        st.ensure_machine(&m("pump-2")).await?;
        let ingest = |name: &str, machine: &str| {
            api_token(
                name,
                TokenScope::Ingest {
                    machine: m(machine),
                },
                Some(u.id),
            )
        };
        let viewer = TokenScope::Api {
            role: "viewer".into(),
        };
        let mut new = api_token("script", viewer.clone(), Some(u.id));
        new.expires_at = Some(t(50_000));
        let a = st.create_api_token(&new).await?;
        ensure!(
            a.name == "script" && a.scope == viewer && a.prefix == "pdm_scri",
            "{a:?}"
        );
        ensure!(a.created_by == Some(u.id) && a.created_at == t(1_000));
        ensure!(
            a.expires_at == Some(t(50_000)) && a.last_used_at.is_none() && a.revoked_at.is_none()
        );
        let i1 = st.create_api_token(&ingest("dev1", "pump-1")).await?;
        let i2 = st.create_api_token(&ingest("dev2", "pump-2")).await?;
        let i3 = st.create_api_token(&ingest("dev3", "pump-1")).await?;
        ensure!(
            i1.scope
                == TokenScope::Ingest {
                    machine: m("pump-1")
                }
        );
        ensure!(i1.expires_at.is_none());

        ensure!(is_conflict(
            &st.create_api_token(&ingest("dev1", "pump-2")).await
        ));
        ensure!(is_not_found(
            &st.create_api_token(&ingest("dev9", "no-such-machine"))
                .await
        ));
        ensure!(is_not_found(
            &st.create_api_token(&api_token(
                "other",
                TokenScope::Api {
                    role: "nope".into()
                },
                None
            ))
            .await
        ));
        ensure!(is_not_found(
            &st.create_api_token(&api_token("other", viewer.clone(), Some(UserId(999_999))))
                .await
        ));
        ensure!(matches!(
            st.create_api_token(&api_token("", viewer.clone(), None))
                .await,
            Err(StoreError::Invalid(_))
        ));

        ensure!(st.api_token_by_hash(&h("script")).await?.as_ref() == Some(&a));
        ensure!(st.api_token_by_hash(&h("dev2")).await?.as_ref() == Some(&i2));
        ensure!(st.api_token_by_hash(&h("nope")).await?.is_none());
        ensure!(
            st.list_api_tokens(None).await? == vec![a.clone(), i1.clone(), i2.clone(), i3.clone()]
        );
        ensure!(st.api_tokens_after(None, 2).await? == vec![a.clone(), i1.clone()]);
        ensure!(st.api_tokens_after(Some(i1.id), 5).await? == vec![i2.clone(), i3.clone()]);
        ensure!(st.api_tokens_after(Some(i3.id), 5).await?.is_empty());
        ensure!(st.list_api_tokens(Some(&m("pump-1"))).await? == vec![i1.clone(), i3.clone()]);
        ensure!(is_not_found(&st.list_api_tokens(Some(&m("nope"))).await));
        st.ensure_machine(&m("pump-3")).await?;
        ensure!(st.list_api_tokens(Some(&m("pump-3"))).await?.is_empty());

        // Uses are recorded at most once a minute.
        let last_used = |id: ApiTokenId| async move {
            let all = st.list_api_tokens(None).await?;
            let tok = all.into_iter().find(|x| x.id == id).context("token")?;
            anyhow::Ok(tok.last_used_at)
        };
        st.touch_api_token(a.id, t(100_000)).await?;
        ensure!(last_used(a.id).await? == Some(t(100_000)));
        st.touch_api_token(a.id, t(130_000)).await?;
        st.touch_api_token(a.id, t(160_000)).await?;
        ensure!(
            last_used(a.id).await? == Some(t(100_000)),
            "within the minute"
        );
        st.touch_api_token(a.id, t(160_001)).await?;
        ensure!(last_used(a.id).await? == Some(t(160_001)));
        st.touch_api_token(ApiTokenId(999_999), t(1)).await?;
        ensure!(last_used(i1.id).await?.is_none());

        ensure!(st.revoke_api_token(a.id, t(200_000)).await?);
        ensure!(!st.revoke_api_token(a.id, t(300_000)).await?);
        ensure!(is_not_found(
            &st.revoke_api_token(ApiTokenId(999_999), t(1)).await
        ));
        let revoked = st.api_token_by_hash(&h("script")).await?.context("kept")?;
        ensure!(revoked.revoked_at == Some(t(200_000)), "{revoked:?}");

        // A machine's ingest tokens go with it.
        st.delete_machine(&m("pump-1")).await?;
        ensure!(st.api_token_by_hash(&h("dev1")).await?.is_none());
        let left: Vec<_> = st
            .list_api_tokens(None)
            .await?
            .into_iter()
            .map(|x| x.id)
            .collect();
        ensure!(left == vec![a.id, i2.id], "{left:?}");
        Ok(())
    }

    pub async fn sign_in_failures_count_since(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let keys = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        st.record_sign_in_failure(&keys("user:a@example.com", "addr:192.0.2.1"), t(1_000))
            .await?;
        st.record_sign_in_failure(&keys("user:a@example.com", "addr:192.0.2.2"), t(2_000))
            .await?;
        st.record_sign_in_failure(&keys("user:b@example.com", "addr:192.0.2.1"), t(3_000))
            .await?;
        st.record_sign_in_failure(&[], t(3_000)).await?;
        ensure!(st.sign_in_failures("user:a@example.com", t(0)).await? == 2);
        ensure!(
            st.sign_in_failures("user:a@example.com", t(2_000)).await? == 1,
            "at or after"
        );
        ensure!(st.sign_in_failures("user:a@example.com", t(2_001)).await? == 0);
        ensure!(st.sign_in_failures("addr:192.0.2.1", t(0)).await? == 2);
        ensure!(st.sign_in_failures("nobody", t(0)).await? == 0);
        ensure!(
            st.sign_in_failures("user:a@example.com", t(i64::MIN))
                .await?
                == 2
        );
        Ok(())
    }

    pub async fn prune_access_deletes_only_what_ended(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let u = user(st, "a@example.com", "viewer").await?;
        let failures = vec!["user:a@example.com".to_string()];
        st.record_sign_in_failure(&failures, t(1_000)).await?;
        st.record_sign_in_failure(&failures, t(60_000)).await?;
        // Reset tokens: one spent, one expired, one live.
        st.create_reset_token(u.id, &h("spent"), t(100_000), t(1_000))
            .await?;
        ensure!(st.consume_reset_token(&h("spent"), t(2_000)).await.is_ok());
        st.create_reset_token(u.id, &h("expired"), t(5_000), t(1_000))
            .await?;
        st.create_reset_token(u.id, &h("live"), t(100_000), t(1_000))
            .await?;
        // Sessions: one revoked (2 tokens), one expired (1 token), one live (2 tokens, one
        // spent, which detects a reuse and must stay).
        let revoked = st.create_session(&sign_in(u.id, "s1", 1_000)).await?;
        ensure!(matches!(
            st.rotate_refresh(&h("s1"), &h("s1b"), t(11_000), t(2_000))
                .await?,
            Rotation::Rotated { .. }
        ));
        st.revoke_session(revoked.id, "logout", t(3_000)).await?;
        let mut short = sign_in(u.id, "e1", 1_000);
        short.expires_at = t(20_000);
        st.create_session(&short).await?;
        let live = sign_in(u.id, "l1", 40_000);
        st.create_session(&live).await?;
        ensure!(matches!(
            st.rotate_refresh(&h("l1"), &h("l2"), t(60_000), t(41_000))
                .await?,
            Rotation::Rotated { .. }
        ));

        let pruned = st.prune_access(t(50_000)).await?;
        ensure!(
            pruned == 1 + 2 + 3,
            "1 failure, 2 reset tokens, 3 refresh tokens: {pruned}"
        );
        ensure!(st.sign_in_failures("user:a@example.com", t(0)).await? == 1);
        ensure!(st.consume_reset_token(&h("live"), t(6_000)).await? == Some(u.id));
        ensure!(
            st.rotate_refresh(&h("s1b"), &h("x"), t(11_000), t(4_000))
                .await?
                == Rotation::Unknown
        );
        ensure!(
            matches!(
                st.rotate_refresh(&h("l1"), &h("x"), t(60_000), t(42_000))
                    .await?,
                Rotation::Reused { .. }
            ),
            "a live session's spent token is kept"
        );
        ensure!(
            st.list_sessions(u.id, true).await?.len() == 3,
            "sessions are kept"
        );
        // The reuse ended the live session (its 2 tokens go now) and the live reset token was
        // spent.
        ensure!(st.prune_access(t(50_000)).await? == 3);
        ensure!(st.prune_access(t(50_000)).await? == 0);
        Ok(())
    }
}

mod harness {
    use super::*;

    /// Makes empty databases of the backend under test and removes them at the end.
    #[derive(Clone)]
    pub enum Fresh {
        Sqlite(Arc<tempfile::TempDir>),
        #[cfg(feature = "postgres")]
        Postgres(Arc<pdm_testkit::pg::TestDatabases>),
    }

    impl Fresh {
        pub async fn create(&self) -> Result<String> {
            match self {
                Fresh::Sqlite(dir) => Ok(format!(
                    "sqlite://{}/{}/pdm.db",
                    dir.path().display(),
                    pdm_testkit::unique_ident("db")
                )),
                #[cfg(feature = "postgres")]
                Fresh::Postgres(databases) => databases.create("pdm_test").await,
            }
        }

        async fn cleanup(&self) {
            #[cfg(feature = "postgres")]
            if let Fresh::Postgres(databases) = self {
                databases.drop_all().await;
            }
        }
    }

    async fn run<F, Fut>(fresh: Fresh, rule: F)
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let url = fresh.create().await.expect("create a test database");
        let store = pdm_store::connect(&url, &StoreOptions::default())
            .await
            .expect("connect to the test database");
        let cx = Ctx {
            store,
            url,
            fresh: fresh.clone(),
        };
        // Run on its own task so that a panic still lets the databases be dropped.
        let outcome = tokio::spawn(rule(cx)).await;
        fresh.cleanup().await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e:?}"),
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("{e}"),
            },
        }
    }

    pub async fn run_sqlite<F, Fut>(rule: F)
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let dir = tempfile::tempdir().expect("temporary directory");
        run(Fresh::Sqlite(Arc::new(dir)), rule).await;
    }

    /// Runs `rule` on PostgreSQL; skips loudly (or fails under `PDM_TEST_REQUIRE_SERVICES=1`)
    /// without `PDM_TEST_DATABASE_URL`.
    #[cfg(feature = "postgres")]
    pub async fn run_postgres<F, Fut>(rule: F)
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let Some(databases) = pdm_testkit::pg::TestDatabases::from_env() else {
            return;
        };
        run(Fresh::Postgres(Arc::new(databases)), rule).await;
    }
}

mod work_orders {
    use pdm_core::alarm::Severity;
    use pdm_core::store::{WorkOrderQuery, WorkOrderSort};
    use pdm_core::workorder::{
        self, default_codes, Code, CodeKind, Label, NewWorkOrder, Priority, Status, WorkOrder,
        WorkOrderChange,
    };

    use super::*;

    fn new(
        machine: &str,
        title: &str,
        priority: Priority,
        alarms: Vec<pdm_core::AlarmId>,
    ) -> NewWorkOrder {
        NewWorkOrder {
            title: title.into(),
            description: "as **written**".into(),
            machine: m(machine),
            alarms,
            priority,
            assignee: None,
            due_at: None,
            created_by: "ana".into(),
            at: Timestamp::from_millis(1_000),
        }
    }

    /// `w` changed by `change` under the lifecycle's rules, stored.
    async fn change(
        st: &dyn Store,
        w: &WorkOrder,
        change: WorkOrderChange,
        at: i64,
    ) -> Result<WorkOrder, StoreError> {
        let next = workorder::apply(w, &change, Timestamp::from_millis(at))
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        st.update_work_order(&next, "bob", &serde_json::json!({"by": "test"}))
            .await
    }

    pub async fn work_orders_crud_versions_codes_and_history(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        ensure!(st.seed_codes(&default_codes()).await?);
        ensure!(!st.seed_codes(&default_codes()).await?, "seeded once");
        ensure!(st
            .list_codes(Some(CodeKind::Remedy))
            .await?
            .iter()
            .any(|c| c.code == "replaced"));
        st.ensure_machine(&m("pump-1")).await?;
        st.ensure_machine(&m("pump-2")).await?;
        let a1 = st
            .record_transition(&super::alarms::raise(
                "pump-1",
                "hot",
                1_000,
                Severity::High,
            ))
            .await?;
        let a2 = st
            .record_transition(&super::alarms::raise(
                "pump-2",
                "hot",
                1_000,
                Severity::High,
            ))
            .await?;

        // Created at version 1 with its alarms and a `created` event.
        let w = st
            .create_work_order(&new("pump-1", "Bearing noise", Priority::High, vec![a1.id]))
            .await?;
        ensure!(
            w.version == 1 && w.status == Status::Open && w.alarms == vec![a1.id],
            "{w:?}"
        );
        ensure!(st.get_work_order(w.id).await? == w);
        ensure!(st.alarm_work_orders(a1.id).await? == vec![w.id]);
        ensure!(matches!(
            st.create_work_order(&new("pump-1", "x", Priority::Low, vec![a2.id])).await,
            Err(StoreError::Invalid(m)) if m.contains("another machine")
        ));
        ensure!(is_not_found(
            &st.create_work_order(&new(
                "pump-1",
                "x",
                Priority::Low,
                vec![pdm_core::AlarmId(999_999)]
            ))
            .await
        ));
        ensure!(is_not_found(
            &st.create_work_order(&new("nope", "x", Priority::Low, vec![]))
                .await
        ));
        let mut unknown_user = new("pump-1", "x", Priority::Low, vec![]);
        unknown_user.assignee = Some(pdm_core::store::UserId(424_242));
        ensure!(is_not_found(&st.create_work_order(&unknown_user).await));

        // A change moves the version; a stale one is refused and writes nothing.
        let started = change(
            st,
            &w,
            WorkOrderChange {
                status: Some(Status::InProgress),
                ..Default::default()
            },
            2_000,
        )
        .await?;
        ensure!(started.version == 2 && started.status == Status::InProgress);
        let stale = change(
            st,
            &w,
            WorkOrderChange {
                title: Some("Other".into()),
                ..Default::default()
            },
            2_100,
        )
        .await;
        ensure!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
        ensure!(st.get_work_order(w.id).await?.title == "Bearing noise");

        // Codes: not in the list, retired, then a proper resolution.
        let bad = change(
            st,
            &started,
            WorkOrderChange {
                remedy: Some(Some("magic".into())),
                ..Default::default()
            },
            2_200,
        )
        .await;
        ensure!(
            matches!(&bad, Err(StoreError::Invalid(m)) if m.contains("not in the remedy list")),
            "{bad:?}"
        );
        ensure!(
            !st.put_code(&Code {
                kind: CodeKind::Remedy,
                code: "replaced".into(),
                description: "Replaced".into(),
                active: false
            })
            .await?
        );
        let retired = change(
            st,
            &started,
            WorkOrderChange {
                remedy: Some(Some("replaced".into())),
                ..Default::default()
            },
            2_200,
        )
        .await;
        ensure!(
            matches!(&retired, Err(StoreError::Invalid(m)) if m.contains("retired")),
            "{retired:?}"
        );
        ensure!(
            st.put_code(&Code {
                kind: CodeKind::Remedy,
                code: "reseated".into(),
                description: "Reseated".into(),
                active: true
            })
            .await?
        );
        let resolved = change(
            st,
            &started,
            WorkOrderChange {
                status: Some(Status::Resolved),
                remedy: Some(Some("reseated".into())),
                failure_mode: Some(Some("vibration".into())),
                cause: Some(Some("wear".into())),
                label: Some(Some(Label::TrueFault)),
                add_time_min: Some(45),
                ..Default::default()
            },
            3_000,
        )
        .await?;
        ensure!(
            resolved.version == 3 && resolved.resolved_at == Some(Timestamp::from_millis(3_000))
        );
        ensure!(resolved.label == Some(Label::TrueFault) && resolved.time_spent_min == 45);
        let history = st.work_order_history(w.id).await?;
        let kinds: Vec<_> = history
            .iter()
            .map(|e| (e.action.as_str(), e.version))
            .collect();
        ensure!(
            kinds == [("created", 1), ("updated", 2), ("updated", 3)],
            "{kinds:?}"
        );
        ensure!(history[0].actor == "ana" && history[1].actor == "bob");
        ensure!(
            history[0].changes["title"] == "Bearing noise",
            "{}",
            history[0].changes
        );
        // The alarm is judged now: its label, and its window from raised to its last event.
        let judged = st.labelled_alarms(Some(&m("pump-1"))).await?;
        ensure!(judged.len() == 1, "{judged:?}");
        let (machine, a) = &judged[0];
        ensure!(machine == &m("pump-1") && a.alarm == a1.id && a.label == Label::TrueFault);
        ensure!(a.opened_at == Timestamp::from_millis(1_000) && a.ended_at == a.opened_at);
        ensure!(st.labelled_alarms(Some(&m("pump-2"))).await?.is_empty());
        ensure!(st.labelled_alarms(None).await?.len() == 1);

        // Lists: filters, orders and pages.
        let mut due = new("pump-2", "Due soon", Priority::Low, vec![]);
        due.due_at = Some(Timestamp::from_millis(5_000));
        let due = st.create_work_order(&due).await?;
        let urgent = st
            .create_work_order(&new("pump-2", "Urgent", Priority::Urgent, vec![]))
            .await?;
        let titles = |v: Vec<WorkOrder>| v.into_iter().map(|w| w.title).collect::<Vec<_>>();
        let q = |f: &dyn Fn(&mut WorkOrderQuery)| {
            let mut q = WorkOrderQuery {
                limit: 10,
                ..Default::default()
            };
            f(&mut q);
            q
        };
        ensure!(
            titles(st.list_work_orders(&q(&|_| {})).await?)
                == ["Urgent", "Due soon", "Bearing noise"]
        );
        ensure!(
            titles(
                st.list_work_orders(&q(&|q| q.sort = WorkOrderSort::Priority))
                    .await?
            ) == ["Urgent", "Bearing noise", "Due soon"]
        );
        ensure!(
            titles(
                st.list_work_orders(&q(&|q| q.sort = WorkOrderSort::Due))
                    .await?
            )[0] == "Due soon"
        );
        ensure!(
            titles(
                st.list_work_orders(&q(&|q| q.status = vec![Status::Resolved]))
                    .await?
            ) == ["Bearing noise"]
        );
        ensure!(
            titles(
                st.list_work_orders(&q(&|q| q.machine = Some(m("pump-2"))))
                    .await?
            ) == ["Urgent", "Due soon"]
        );
        ensure!(
            titles(
                st.list_work_orders(&q(&|q| q.priority = Some(Priority::Low)))
                    .await?
            ) == ["Due soon"]
        );
        ensure!(
            titles(
                st.list_work_orders(&q(&|q| q.overdue_at = Some(Timestamp::from_millis(6_000))))
                    .await?
            ) == ["Due soon"]
        );
        ensure!(st
            .list_work_orders(&q(&|q| q.overdue_at = Some(Timestamp::from_millis(4_000))))
            .await?
            .is_empty());
        ensure!(
            titles(
                st.list_work_orders(&q(&|q| {
                    q.before = Some(urgent.id);
                    q.limit = 1;
                }))
                .await?
            ) == ["Due soon"]
        );
        ensure!(
            titles(
                st.list_work_orders(&q(&|q| {
                    q.sort = WorkOrderSort::Priority;
                    q.offset = 1;
                    q.limit = 1;
                }))
                .await?
            ) == ["Bearing noise"]
        );
        ensure!(due.version == 1);

        // A machine takes its work orders with it.
        st.delete_machine(&m("pump-2")).await?;
        ensure!(is_not_found(&st.get_work_order(urgent.id).await));
        ensure!(st.list_work_orders(&q(&|_| {})).await?.len() == 1);
        Ok(())
    }

    pub async fn concurrent_updates_of_one_work_order_have_one_winner(cx: Ctx) -> Result<()> {
        let st = cx.store.clone();
        st.seed_codes(&default_codes()).await?;
        st.ensure_machine(&m("pump-1")).await?;
        let w = st
            .create_work_order(&new("pump-1", "Race", Priority::Medium, vec![]))
            .await?;
        let mut tasks = Vec::new();
        for i in 0..6u32 {
            let (st, w) = (st.clone(), w.clone());
            tasks.push(tokio::spawn(async move {
                let c = WorkOrderChange {
                    title: Some(format!("edit {i}")),
                    ..Default::default()
                };
                change(&*st, &w, c, 2_000 + i64::from(i)).await
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            match t.await? {
                Ok(w) => won.push(w),
                Err(StoreError::Stale(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        ensure!(won.len() == 1, "{} writers won", won.len());
        let stored = st.get_work_order(w.id).await?;
        ensure!(stored == won[0] && stored.version == 2, "{stored:?}");
        ensure!(st.work_order_history(w.id).await?.len() == 2);
        Ok(())
    }
}

mod audit {
    use pdm_core::store::{AuditQuery, NewAuditEntry};

    use super::*;

    fn entry(at: i64, actor: &str, action: &str, status: u16) -> NewAuditEntry {
        NewAuditEntry {
            at: Timestamp::from_millis(at),
            actor: actor.into(),
            role: Some("admin".into()),
            action: action.into(),
            target: Some("machines/pump-1".into()),
            fields: vec!["key".into(), "name".into()],
            client_addr: Some("198.51.100.7".into()),
            status,
        }
    }

    pub async fn the_audit_log_appends_filters_pages_and_prunes(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let a = st
            .record_audit(&entry(1_000, "ana", "POST /machines", 201))
            .await?;
        let b = st
            .record_audit(&entry(2_000, "bob", "sign_in_failed", 401))
            .await?;
        let c = st
            .record_audit(&entry(3_000, "ana", "PATCH /machines/{machine}", 200))
            .await?;
        ensure!(a < b && b < c);
        let q = |f: &dyn Fn(&mut AuditQuery)| {
            let mut q = AuditQuery {
                limit: 10,
                ..Default::default()
            };
            f(&mut q);
            q
        };
        let ids =
            |v: Vec<pdm_core::store::AuditEntry>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let all = st.list_audit(&q(&|_| {})).await?;
        ensure!(all.len() == 3 && all[0].id == c, "newest first: {all:?}");
        ensure!(
            all[2].fields == ["key", "name"]
                && all[2].client_addr.as_deref() == Some("198.51.100.7")
        );
        ensure!(all[2].at == Timestamp::from_millis(1_000) && all[2].status == 201);
        ensure!(ids(st.list_audit(&q(&|q| q.actor = Some("ana".into()))).await?) == [c, a]);
        ensure!(ids(st.list_audit(&q(&|q| q.success = Some(false))).await?) == [b]);
        ensure!(ids(st.list_audit(&q(&|q| q.success = Some(true))).await?) == [c, a]);
        ensure!(
            ids(st
                .list_audit(&q(&|q| q.action = Some("sign_in_failed".into())))
                .await?)
                == [b]
        );
        ensure!(
            ids(st
                .list_audit(&q(&|q| {
                    q.from = Some(Timestamp::from_millis(2_000));
                    q.to = Some(Timestamp::from_millis(3_000));
                }))
                .await?)
                == [b]
        );
        ensure!(
            ids(st
                .list_audit(&q(&|q| {
                    q.before = Some(c);
                    q.limit = 1;
                }))
                .await?)
                == [b]
        );
        ensure!(st.prune_audit(Timestamp::from_millis(2_500)).await? == 2);
        ensure!(ids(st.list_audit(&q(&|_| {})).await?) == [c]);
        Ok(())
    }
}

mod comments {
    use pdm_core::alarm::Severity;
    use pdm_core::comment::{CommentTarget, NewComment};
    use pdm_core::workorder::{NewWorkOrder, Priority};

    use super::*;

    pub async fn comments_keep_their_edits_and_go_with_their_target(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("pump-1")).await?;
        let alarm = st
            .record_transition(&super::alarms::raise(
                "pump-1",
                "hot",
                1_000,
                Severity::High,
            ))
            .await?;
        let w = st
            .create_work_order(&NewWorkOrder {
                title: "Look".into(),
                description: String::new(),
                machine: m("pump-1"),
                alarms: vec![alarm.id],
                priority: Priority::Low,
                assignee: None,
                due_at: None,
                created_by: "ana".into(),
                at: Timestamp::from_millis(1_000),
            })
            .await?;
        let new = |target, body: &str, at| NewComment {
            target,
            author: "ana".into(),
            author_user: None,
            body: body.into(),
            at: Timestamp::from_millis(at),
        };
        let on_wo = CommentTarget::WorkOrder(w.id);
        let on_alarm = CommentTarget::Alarm(alarm.id);
        let a = st.add_comment(&new(on_wo, "<b>first</b>", 2_000)).await?;
        let b = st
            .add_comment(&new(on_alarm, "on the alarm", 2_100))
            .await?;
        ensure!(a.body == "<b>first</b>" && a.edited_at.is_none() && a.edits.is_empty());
        ensure!(is_not_found(
            &st.add_comment(&new(
                CommentTarget::Alarm(pdm_core::AlarmId(999_999)),
                "x",
                1
            ))
            .await
        ));
        ensure!(is_not_found(
            &st.list_comments(CommentTarget::WorkOrder(pdm_core::workorder::WorkOrderId(
                999_999
            )))
            .await
        ));
        let edited = st
            .edit_comment(a.id, "second", Timestamp::from_millis(3_000))
            .await?;
        let edited = st
            .edit_comment(edited.id, "third", Timestamp::from_millis(4_000))
            .await?;
        ensure!(edited.body == "third" && edited.edited_at == Some(Timestamp::from_millis(4_000)));
        let previous: Vec<_> = edited.edits.iter().map(|e| e.previous.as_str()).collect();
        ensure!(previous == ["<b>first</b>", "second"], "{previous:?}");
        ensure!(st.list_comments(on_wo).await? == vec![edited.clone()]);
        ensure!(st.get_comment(b.id).await?.target == on_alarm);
        ensure!(is_not_found(
            &st.edit_comment(
                pdm_core::comment::CommentId(999_999),
                "x",
                Timestamp::from_millis(1)
            )
            .await
        ));
        ensure!(st.delete_comment(b.id).await? && !st.delete_comment(b.id).await?);
        // A machine takes its work orders and alarms, and their comments, with it.
        st.delete_machine(&m("pump-1")).await?;
        ensure!(is_not_found(&st.get_comment(a.id).await));
        Ok(())
    }
}

mod overview {
    use pdm_core::alarm::Severity;
    use pdm_core::attachment::{AttachmentOwner, Kind, NewAttachment};
    use pdm_core::comment::{CommentTarget, NewComment};
    use pdm_core::workorder::{NewWorkOrder, Priority};

    use super::*;

    fn file(
        owner: AttachmentOwner,
        comment: Option<pdm_core::comment::CommentId>,
        n: u8,
    ) -> NewAttachment {
        NewAttachment {
            owner,
            comment,
            name: format!("f{n}.txt"),
            kind: Kind::Text,
            size: u64::from(n) * 10,
            sha256: "0".repeat(64),
            stored_as: format!("{n:032x}"),
            uploader: "ana".into(),
            uploader_user: None,
            at: Timestamp::from_millis(5_000 + i64::from(n)),
        }
    }

    async fn work_order(
        st: &dyn Store,
        due: Option<i64>,
    ) -> Result<pdm_core::workorder::WorkOrder> {
        Ok(st
            .create_work_order(&NewWorkOrder {
                title: "Look".into(),
                description: String::new(),
                machine: m("pump-1"),
                alarms: vec![],
                priority: Priority::Low,
                assignee: None,
                due_at: due.map(Timestamp::from_millis),
                created_by: "ana".into(),
                at: Timestamp::from_millis(1_000),
            })
            .await?)
    }

    pub async fn attachments_belong_to_one_owner_and_go_with_it(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        st.ensure_machine(&m("pump-1")).await?;
        let alarm = st
            .record_transition(&super::alarms::raise(
                "pump-1",
                "hot",
                1_000,
                Severity::High,
            ))
            .await?;
        let w = work_order(st, None).await?;
        let on_wo = AttachmentOwner::WorkOrder(w.id);
        let on_alarm = AttachmentOwner::Alarm(alarm.id);
        let c = st
            .add_comment(&NewComment {
                target: CommentTarget::WorkOrder(w.id),
                author: "ana".into(),
                author_user: None,
                body: "photo".into(),
                at: Timestamp::from_millis(2_000),
            })
            .await?;
        let a = st.add_attachment(&file(on_wo, None, 1)).await?;
        let b = st.add_attachment(&file(on_wo, Some(c.id), 2)).await?;
        st.add_attachment(&file(on_alarm, None, 3)).await?;
        ensure!(a.name == "f1.txt" && a.kind == Kind::Text && a.size == 10 && a.comment.is_none());
        ensure!(st.get_attachment(b.id).await?.comment == Some(c.id));
        // A comment on another owner, an unknown owner, a name stored twice: refused.
        ensure!(matches!(
            st.add_attachment(&file(on_alarm, Some(c.id), 4)).await,
            Err(StoreError::Invalid(_))
        ));
        ensure!(is_not_found(
            &st.add_attachment(&file(
                AttachmentOwner::Alarm(pdm_core::AlarmId(999_999)),
                None,
                5
            ))
            .await
        ));
        ensure!(st.add_attachment(&file(on_wo, None, 1)).await.is_err());
        let ids: Vec<_> = st
            .list_attachments(on_wo)
            .await?
            .iter()
            .map(|x| x.id)
            .collect();
        ensure!(ids == vec![a.id, b.id], "{ids:?}");
        ensure!(is_not_found(
            &st.list_attachments(AttachmentOwner::WorkOrder(
                pdm_core::workorder::WorkOrderId(999_999)
            ))
            .await
        ));
        let usage = st.attachment_usage().await?;
        ensure!(usage.files == 3 && usage.bytes == 60, "{usage:?}");
        let mut files = st.attachment_files().await?;
        files.sort();
        ensure!(
            files
                == vec![
                    format!("{:032x}", 1),
                    format!("{:032x}", 2),
                    format!("{:032x}", 3)
                ]
        );
        // The comment takes its attachment; deleting one is reported once.
        st.delete_comment(c.id).await?;
        ensure!(is_not_found(&st.get_attachment(b.id).await));
        ensure!(st.delete_attachment(a.id).await? && !st.delete_attachment(a.id).await?);
        // The machine takes its alarms' and work orders' attachments.
        st.delete_machine(&m("pump-1")).await?;
        ensure!(st.attachment_usage().await? == pdm_core::attachment::Usage::default());
        Ok(())
    }

    pub async fn settings_are_replaced_by_compare_and_set(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        ensure!(st.settings().await?.is_none());
        let doc = serde_json::json!({"uploads": {"max_bytes": 4096}});
        let first = st
            .put_settings(&doc, 0, "ana", Timestamp::from_millis(1_000))
            .await?;
        ensure!(first.version == 1 && first.doc == doc);
        ensure!(matches!(
            st.put_settings(&doc, 0, "bob", Timestamp::from_millis(1_100))
                .await,
            Err(StoreError::Stale(_))
        ));
        let doc2 = serde_json::json!({});
        let second = st
            .put_settings(&doc2, 1, "bob", Timestamp::from_millis(2_000))
            .await?;
        ensure!(second.version == 2);
        ensure!(matches!(
            st.put_settings(&doc, 1, "ana", Timestamp::from_millis(2_100))
                .await,
            Err(StoreError::Stale(_))
        ));
        let read = st.settings().await?.expect("stored");
        ensure!(read == second, "{read:?}");
        Ok(())
    }

    pub async fn overview_counts_group_the_fleet(cx: Ctx) -> Result<()> {
        let st = &*cx.store;
        let now = Timestamp::from_millis(1_000_000);
        ensure!(st.overview_counts(now, now).await? == pdm_core::store::OverviewCounts::default());
        st.ensure_machine(&m("pump-1")).await?;
        st.ensure_machine(&m("pump-2")).await?;
        st.record_transition(&super::alarms::raise(
            "pump-1",
            "hot",
            1_000,
            Severity::High,
        ))
        .await?;
        st.record_transition(&super::alarms::raise(
            "pump-2",
            "hot",
            1_000,
            Severity::High,
        ))
        .await?;
        st.record_transition(&super::alarms::raise("pump-2", "vib", 1_000, Severity::Low))
            .await?;
        work_order(st, Some(500_000)).await?;
        work_order(st, Some(2_000_000)).await?;
        work_order(st, None).await?;
        let c = st.overview_counts(now, now).await?;
        ensure!(c.machines == 2, "{c:?}");
        ensure!(
            c.open_alarms
                == vec![
                    ("high".into(), "active_unacknowledged".into(), 2),
                    ("low".into(), "active_unacknowledged".into(), 1)
                ],
            "{c:?}"
        );
        ensure!(c.work_orders == vec![("open".into(), 3)], "{c:?}");
        ensure!(c.overdue_work_orders == 1, "{c:?}");
        ensure!(st.latest_predictions().await?.is_empty());
        Ok(())
    }
}
