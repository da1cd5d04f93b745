//! Images in: decoding any image file (`decode`), resampling (`resize`), and turning the paths a
//! user names into the list of image files to read (`files`).

pub mod decode;
pub mod files;
pub mod resize;
