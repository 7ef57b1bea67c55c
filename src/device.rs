//! Device choice, in one place (candle's convention). clipsearch is built CPU-first; with the
//! `cuda` feature a GPU is used when one is present, unless `CLIPSEARCH_DEVICE=cpu`.

use candle_core::Device;

/// The device every model of this process runs on.
pub fn select() -> Device {
    if std::env::var("CLIPSEARCH_DEVICE").as_deref() == Ok("cpu") {
        return Device::Cpu;
    }
    #[cfg(feature = "cuda")]
    if let Ok(dev) = Device::new_cuda(0) {
        return dev;
    }
    Device::Cpu
}

/// Tunes candle's CPU thread pool for this workload; call it first thing in `main`, before any
/// thread exists (it sets an environment variable, which is unsound to do while other threads
/// may read the environment). The clipsearch binary and the benchmarks call it.
///
/// candle runs elementwise operations on a pool whose idle workers spin 25,000 times before
/// they sleep, while its matrix products (gemm) and clipsearch's own parallel loops (the MLP
/// activation, image decoding) run on rayon's threads. With as many threads as cores, a
/// spinning pool worker takes a core from rayon's. With a spin of 1,000 the ViT-B/32 image
/// tower runs 1.14x faster at batch 8 and 1.2x at batch 1 on 2 vCPUs, a text query the same
/// (`cargo bench -p clipsearch --bench engine`, alternating `CANDLE_BARRIER_POOL_SPIN_LIMIT`),
/// and an index run, whose decoders compete for the cores too, 1.1x. A value already in the
/// environment wins.
///
/// candle also asks how many threads to use on every matrix product, and unless
/// `RAYON_NUM_THREADS` is set it counts the physical cores by reading `/proc/cpuinfo` each time:
/// about 100 reads per text query, which took it from 8.8 to 14.5 ms here. So rayon's global pool is built first
/// at its own default size, and then the variable is set to candle's answer, computed once:
/// the same thread counts as before, without the reads.
pub fn tune_cpu_pools() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, "1000");
    }
    const THREADS: &str = "RAYON_NUM_THREADS";
    if std::env::var_os(THREADS).is_none() {
        // An error means the pool exists already, sized before this variable: as wanted.
        let _ = rayon::ThreadPoolBuilder::new().build_global();
        std::env::set_var(THREADS, candle_core::utils::get_num_threads().to_string());
    }
}

/// Whether a test of a CPU kernel (`feature`: `vnni`, `avx2`) can run here. Where the CPU lacks
/// the feature the test says so and returns, unless `CLIPSEARCH_REQUIRE_<FEATURE>=1`: then it
/// fails, so that a kernel which went missing (a broken feature check, a build without it)
/// cannot pass. `.ci/run` sets the switch for each feature the CI machine's CPU has.
#[cfg(test)]
pub(crate) fn kernel_testable(feature: &str, available: bool) -> bool {
    let var = format!("CLIPSEARCH_REQUIRE_{}", feature.to_ascii_uppercase());
    let required = std::env::var(&var).as_deref() == Ok("1");
    assert!(
        available || !required,
        "{var}=1, but the {feature} kernel is not available on this CPU or in this build"
    );
    if !available {
        eprintln!("skipped: no {feature} on this CPU or in this build");
    }
    available
}
