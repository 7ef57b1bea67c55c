//! Developing camera RAW sensor data with LibRaw (the `libraw` feature: Debian's `libraw-dev`,
//! linked dynamically, as its LGPL asks), for RAW files without a preview large enough to stand
//! in for the photo (see `raw`). LibRaw's defaults, as rawpy's `postprocess()` uses them: AHD
//! demosaicing, daylight white balance unless the camera's is asked for, sRGB, 8 bits, automatic
//! brightness, the camera's orientation applied.
//!
//! The C API is ten functions; they are declared here rather than through a binding crate,
//! whose versions follow newer LibRaw releases than Debian ships (0.20).

use std::ffi::{c_int, c_uint, c_ushort, c_void, CStr};
use std::path::Path;

use image::RgbImage;

use crate::error::{Error, Result};

#[repr(C)]
struct ProcessedImage {
    kind: c_int,
    height: c_ushort,
    width: c_ushort,
    colors: c_ushort,
    bits: c_ushort,
    data_size: c_uint,
    data: [u8; 1],
}

#[link(name = "raw")]
extern "C" {
    fn libraw_init(flags: c_uint) -> *mut c_void;
    fn libraw_open_buffer(data: *mut c_void, buffer: *const c_void, size: usize) -> c_int;
    fn libraw_unpack(data: *mut c_void) -> c_int;
    fn libraw_dcraw_process(data: *mut c_void) -> c_int;
    fn libraw_dcraw_make_mem_image(data: *mut c_void, errc: *mut c_int) -> *mut ProcessedImage;
    fn libraw_dcraw_clear_mem(image: *mut ProcessedImage);
    fn libraw_close(data: *mut c_void);
    fn libraw_strerror(errorcode: c_int) -> *const std::ffi::c_char;
}

/// LibRaw's handle, closed on drop.
struct Handle(*mut c_void);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a handle from libraw_init, closed once.
        unsafe { libraw_close(self.0) }
    }
}

fn message(code: c_int) -> String {
    // SAFETY: libraw_strerror returns a static, NUL-terminated string for any code.
    unsafe { CStr::from_ptr(libraw_strerror(code)) }
        .to_string_lossy()
        .into_owned()
}

/// Develops `bytes` (a RAW file) into 8-bit sRGB.
pub(super) fn develop(path: &Path, bytes: &[u8], kind: &str) -> Result<RgbImage> {
    let bad = |what: &str, code: c_int| {
        Error::image(
            path,
            format!(
                "camera RAW ({kind}): LibRaw cannot {what}: {}",
                message(code)
            ),
        )
    };
    // SAFETY: every call below gets the handle from libraw_init (checked non-null) and, for
    // open_buffer, a pointer and length of a live slice that outlives the handle; the processed
    // image is read within its data_size and freed once.
    unsafe {
        let raw = libraw_init(0);
        if raw.is_null() {
            return Err(Error::image(path, "LibRaw could not start"));
        }
        let handle = Handle(raw);
        let rc = libraw_open_buffer(handle.0, bytes.as_ptr().cast(), bytes.len());
        if rc != 0 {
            return Err(bad("read it", rc));
        }
        let rc = libraw_unpack(handle.0);
        if rc != 0 {
            return Err(bad("unpack its sensor data", rc));
        }
        let rc = libraw_dcraw_process(handle.0);
        if rc != 0 {
            return Err(bad("develop it", rc));
        }
        let mut rc = 0;
        let img = libraw_dcraw_make_mem_image(handle.0, &mut rc);
        if img.is_null() {
            return Err(bad("render it", rc));
        }
        let (w, h, colors, bits, size) = (
            (*img).width as u32,
            (*img).height as u32,
            (*img).colors,
            (*img).bits,
            (*img).data_size as usize,
        );
        let data = std::slice::from_raw_parts((*img).data.as_ptr(), size).to_vec();
        libraw_dcraw_clear_mem(img);
        let rgb = match (colors, bits) {
            (3, 8) if size == (w * h * 3) as usize => RgbImage::from_raw(w, h, data),
            (1, 8) if size == (w * h) as usize => image::GrayImage::from_raw(w, h, data)
                .map(|g| image::DynamicImage::ImageLuma8(g).to_rgb8()),
            _ => None,
        };
        rgb.ok_or_else(|| {
            Error::image(
                path,
                format!("camera RAW ({kind}): LibRaw returned {colors} colours of {bits} bits"),
            )
        })
    }
}
