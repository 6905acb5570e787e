//! vitrina: multimodal product search. A shop indexes its catalogue (product text and
//! image) once; shoppers search it by text or image.
//!
//! Data flows one way: [`catalog`] -> [`encoder`] -> [`store`] (kept in step by
//! [`indexing`]) -> [`search`] -> ([`server`] | [`eval`] | the CLI). [`train`] makes
//! the built-in image tower; [`embed`] writes vectors for other tools.

pub mod bench;
pub mod catalog;
pub mod embed;
pub mod encoder;
pub mod eval;
pub mod indexing;
pub mod progress;
pub mod search;
pub mod server;
pub mod store;
pub mod train;
