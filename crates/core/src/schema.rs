//! OpenAPI schemas of the vocabulary types whose JSON form is written by
//! hand (hex strings, decimal strings, bare numbers), so that the node's
//! API document ([`utoipa`]) says what a client really receives. Types
//! whose serde form is derived derive their schema beside it.

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::{Amount, ContentId, Fuel, GigafuelPerSec, JobId, NodeId, PricePerGfuel, ResultHash, TaskId};

fn string(pattern: &str, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .into()
}

fn integer(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
        .description(Some(description))
        .into()
}

macro_rules! schema {
    ($($ty:ty => $schema:expr;)*) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl ToSchema for $ty {}
    )*};
}

const HASH: &str = "^[0-9a-f]{64}$";
/// Decimal digits, at most 39 (a `u128`).
const AMOUNT: &str = "^[0-9]{1,39}$";

schema! {
    NodeId => string(HASH, "A node's ed25519 public key, 64 hex digits.");
    ContentId => string(HASH, "The BLAKE3 hash of a blob, 64 hex digits.");
    ResultHash => string(HASH, "The BLAKE3 hash of a task result's canonical encoding, 64 hex digits.");
    TaskId => string(HASH, "A task's id, 64 hex digits.");
    JobId => string("^[0-9a-f]{16}$", "A job's id, 16 hex digits.");
    Amount => string(AMOUNT, "Tokens in the smallest unit, as a decimal string (128 bits do not fit a JSON number).");
    PricePerGfuel => string(AMOUNT, "Tokens per gigafuel, as a decimal string.");
    Fuel => integer("Fuel: the deterministic count of work.");
    GigafuelPerSec => ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(0))
        .description(Some("Speed on the standard kernel, gigafuel per second."))
        .into();
}
