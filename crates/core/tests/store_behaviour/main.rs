//! The behaviour suite of the engine's `Store`: each behaviour is written once, as a function of a
//! store fixture (`common::stores::Fixture`), and run against every store: the SQLite journal
//! (`sqlite::<behaviour>`) and a group on PostgreSQL (`postgres::<behaviour>`, on the server of
//! `BEDROCK_BATCH_TEST_PG_URL`; it fails without it unless `BEDROCK_BATCH_SKIP_PG=1`, which says
//! so). `contract.rs` calls the `Store` trait directly; `engine.rs` runs the engine on the store
//! and the fake back-end of `tests/common`, in paused time. Where the stores differ on purpose,
//! the behaviour says how, by the fixture's `Kind`.
//!
//! What only one store does stays beside this suite: `store_postgres.rs` (connections, TLS,
//! migrations, groups, members and leaders) and the journal's unit tests in
//! `src/store/sqlite.rs` (a damaged file, the version-1 migration).
//!
//! One store: `cargo test -p bedrock-batch-core --test store_behaviour sqlite::` (or `postgres::`);
//! one behaviour on both: `... --test store_behaviour <behaviour name>`.

// `pub` here means shared by the files of this test crate, which exports nothing.
#![allow(unreachable_pub)]

#[path = "../common/mod.rs"]
mod common;
mod contract;
mod engine;

/// Instantiates every behaviour as a test per store: a module per store, a test per behaviour
/// (`#[test]` for the trait's contract, `#[tokio::test(start_paused = true)]` through the engine).
macro_rules! behaviours {
    (stores: [$($store:ident),+ $(,)?]; $lists:tt) => {
        $( behaviours!(@store $store $lists); )+
    };
    (@store $store:ident { contract: [$($c:ident),* $(,)?], engine: [$($e:ident),* $(,)?] $(,)? }) => {
        mod $store {
            $(
                #[test]
                fn $c() {
                    if let Some(f) = crate::common::stores::Fixture::$store(stringify!($c)) {
                        crate::contract::$c(&f);
                    }
                }
            )*
            $(
                #[tokio::test(start_paused = true)]
                async fn $e() {
                    if let Some(f) = crate::common::stores::Fixture::$store(stringify!($e)) {
                        crate::engine::$e(&f).await;
                    }
                }
            )*
        }
    };
}

behaviours! {
    stores: [sqlite, postgres];
    {
        contract: [
            batches_are_taken_up_by_state_after_a_restart_and_answers_are_found,
            lookups_take_many_keys_at_once_and_a_key_answered_twice_keeps_its_newest_answer,
            a_key_in_two_unfinished_batches_belongs_to_the_newest,
            jobs_are_listed_oldest_first_and_a_jobs_results_page_in_record_order,
            a_write_group_is_applied_whole_or_not_at_all,
            retention_prunes_finished_work_when_the_store_opens,
            one_client_holds_a_store_at_a_time_and_reads_still_work_after_close,
            a_reader_beside_the_client_sees_its_writes_and_takes_nothing_from_it,
            documents_are_kept_by_kind_and_id_in_the_order_first_put_and_survive_a_restart,
        ],
        engine: [
            a_finished_key_sent_again_after_a_restart_resolves_from_the_store_without_a_new_job,
            the_kth_send_of_the_same_content_maps_to_the_kth_answer_and_a_further_one_is_new,
            a_job_running_when_the_process_died_is_polled_again_and_its_answers_reach_later_senders,
            a_batch_whose_create_was_sent_but_whose_arn_was_not_recorded_is_created_again_with_the_same_token,
            a_record_sent_again_after_a_restart_goes_with_its_own_body,
            a_second_engine_is_refused_by_a_journal_and_joins_a_group,
        ],
    }
}
