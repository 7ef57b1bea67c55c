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
