//! vitrina: multimodal product search. A shop indexes its catalogue (product text and
//! image) once; shoppers search it by text or image.
//!
//! Data flows one way: [`catalog`] -> [`encoder`] -> [`index`] (built by [`indexing`])
//! -> [`search`].

pub mod catalog;
pub mod encoder;
pub mod index;
pub mod indexing;
pub mod search;
