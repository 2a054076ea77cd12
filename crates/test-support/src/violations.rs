//! INVALID_ARGUMENT as the tests read it: the (field, description) pairs a service's error
//! mapping ([`Invalid`]) takes out of its error type, for the fuzzing and the properties alike.

use std::fmt::Debug;

use proptest::prelude::*;
use proto::status::CallError;

/// The (field, description) pairs of an INVALID_ARGUMENT error.
pub type Violations = Vec<(String, String)>;

/// A service's error mapping: the [`Violations`] of an INVALID_ARGUMENT error, any other error
/// handed back.
pub type Invalid<E> = fn(E) -> Result<Violations, E>;

/// The mapping every service's errors share: the field violations of an INVALID_ARGUMENT
/// error, as its callers get them ([`CallError::details`]); any other error handed back.
pub fn invalid<E: CallError>(err: E) -> Result<Violations, E> {
    if err.code() != tonic::Code::InvalidArgument {
        return Err(err);
    }
    Ok(err
        .details()
        .violations()
        .iter()
        .map(|v| (v.field.clone(), v.description.clone()))
        .collect())
}

/// The fields an error names, each with a description, or a failed case when the error is not
/// INVALID_ARGUMENT.
pub fn violated<E: Debug>(err: E, invalid: Invalid<E>) -> Result<Vec<String>, TestCaseError> {
    match invalid(err) {
        Ok(v) => {
            prop_assert!(v.iter().all(|(_, description)| !description.is_empty()), "{:?}", v);
            Ok(v.into_iter().map(|(field, _)| field).collect())
        }
        Err(other) => Err(TestCaseError::fail(format!("expected INVALID_ARGUMENT, got {other:?}"))),
    }
}

/// The fields an INVALID_ARGUMENT error names; any other error fails the test.
pub fn fields<E: Debug>(err: E, invalid: Invalid<E>) -> Vec<String> {
    match invalid(err) {
        Ok(v) => v.into_iter().map(|(field, _)| field).collect(),
        Err(other) => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}
