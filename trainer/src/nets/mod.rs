//! The classifier networks in burn: the shared `layers`, `mobilenet_v3` (Small, the default) and
//! `mobilenet_v2`, torchvision's ImageNet weights loaded into either (`torchvision`), and the `net`
//! that is one or the other.

pub mod layers;
pub mod mobilenet_v2;
pub mod mobilenet_v3;
pub mod net;
pub mod torchvision;

pub use net::{Backbone, Net};
