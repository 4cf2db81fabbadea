//! Parsers from the three kube-proxy data-plane dumps to one
//! [`crate::model::ServiceMap`]. All of them are total: arbitrary input
//! yields a (possibly empty) map, never a panic, because the input comes
//! from a node we are in the middle of breaking.

pub mod iptables;
pub mod ipvs;
pub mod nft;

pub use iptables::parse_iptables;
pub use ipvs::parse_ipvs;
pub use nft::parse_nft;
