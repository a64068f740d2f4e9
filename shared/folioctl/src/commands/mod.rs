//! One module per group of commands; each function takes the parsed
//! arguments and the [`Context`](crate::context::Context), calls the API and
//! prints through [`Output`](crate::output::Output).

pub mod account;
pub mod documents;
pub mod search;
pub mod system;
pub mod users;
