//! When, where and with what a photo was taken: the metadata people search by besides content.
//!
//! Read once per file at indexing time, from the bytes the decoder reads anyway ([`read`]): the
//! capture time (EXIF `DateTimeOriginal` with its offset and sub-seconds, else
//! `DateTimeDigitized`, else `DateTime`, else XMP, else the file's modification time, marked
//! as a guess), the GPS position, camera make, model and lens, orientation and the format.
//! A GPS position is turned into a place (city, region, country) offline ([`place`]), from
//! GeoNames' gazetteer compiled into the binary. The catalog keeps a [`PhotoMeta`] per file and
//! publishes it in the view; [`filter`] selects files by it.
//!
//! Times are the photo's own wall-clock time (what its camera's clock said, in the place it
//! was taken): "photos from June 14th" means that day where the photo was taken, which is
//! what people mean and the only time many cameras record (the UTC offset is optional in EXIF).
//!
//! Malformed metadata is a warning for that file, never a failure of its image.

pub mod filter;
mod photo;
pub mod place;
mod read;

pub use filter::{DateBound, Filter, SortOrder};
pub use photo::{camera_name, fold, Gps, PhotoMeta, Taken, TimeSource};
pub use place::Place;
pub use read::{read, read_file, ReadOutcome};
