//! The local stack's parts, shared by `make dev` and the tests: the template read as the
//! source of truth, resources created from it on moto's server, and an SQS event source
//! mapping that feeds a queue to a delivery handler.

pub mod bench_stack;
pub mod esm;
pub mod function_env;
pub mod gateway;
pub mod lambda;
pub mod moto;
pub mod proc_cpu;
pub mod process;
pub mod provision;
pub mod template;
pub mod tls_front;
pub mod webhook_bodies;
