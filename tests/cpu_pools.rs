//! `clipsearch::device::tune_cpu_pools` in a process of its own (it sets environment variables,
//! which only a process's first thread may do): candle's thread count is answered from the
//! environment afterwards (no `/proc/cpuinfo` read per matrix product), with the value candle
//! chose itself, and rayon's global pool keeps its own default size. A value the user set wins.

#[test]
fn thread_counts_are_unchanged_and_cached() {
    let before = std::env::var("RAYON_NUM_THREADS").ok();
    let candle_default = candle_core::utils::get_num_threads();
    let logical = std::thread::available_parallelism().unwrap().get();
    clipsearch::device::tune_cpu_pools();
    let after = std::env::var("RAYON_NUM_THREADS").unwrap();
    match before {
        Some(user) => assert_eq!(after, user, "the user's value was replaced"),
        None => {
            assert_eq!(after, candle_default.to_string());
            assert_eq!(
                rayon::current_num_threads(),
                logical,
                "rayon's pool was resized"
            );
        }
    }
    assert_eq!(candle_core::utils::get_num_threads(), candle_default);
    assert!(std::env::var("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_ok());
}
