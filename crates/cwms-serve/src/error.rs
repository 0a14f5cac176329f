//! The errors a request can meet, named as CloudWatch names them.

use std::fmt;

/// The kinds of error the API answers with: CloudWatch's modeled errors (the shapes of its
/// Smithy model, with the codes its query protocol used), plus the protocol-level ones every
/// AWS JSON and RPC v2 CBOR service has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A parameter with a value CloudWatch would not accept (`InvalidParameterValue`).
    InvalidParameterValue,
    /// A required parameter is absent (`MissingParameter`).
    MissingParameter,
    /// Parameters that cannot go together (`InvalidParameterCombination`), including limits a
    /// request exceeds (too many datapoints, too many queries).
    InvalidParameterCombination,
    /// A `NextToken` this server did not give for this request.
    InvalidNextToken,
    /// The body is not JSON (or CBOR) of the operation's input shape.
    Serialization,
    /// The body is larger than the server accepts.
    RequestTooLarge,
    /// The target names no operation this server answers.
    UnknownOperation,
    /// The lake could not be read (a store failure or a damaged object): the server's fault.
    InternalServiceError,
}

impl ErrorKind {
    /// The error's shape name, for `__type`.
    pub fn shape(self) -> &'static str {
        match self {
            ErrorKind::InvalidParameterValue => "InvalidParameterValueException",
            ErrorKind::MissingParameter => "MissingRequiredParameterException",
            ErrorKind::InvalidParameterCombination => "InvalidParameterCombinationException",
            ErrorKind::InvalidNextToken => "InvalidNextToken",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::RequestTooLarge => "RequestEntityTooLargeException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::InternalServiceError => "InternalServiceFault",
        }
    }

    /// The `x-amzn-query-error` header of a modeled error (`Code;Sender`): CloudWatch is a
    /// query-compatible service, so SDKs report the code its query protocol used
    /// (`InvalidParameterValue`), which is what existing scripts compare against.
    pub fn query_error(self) -> Option<&'static str> {
        match self {
            ErrorKind::InvalidParameterValue => Some("InvalidParameterValue;Sender"),
            ErrorKind::MissingParameter => Some("MissingParameter;Sender"),
            ErrorKind::InvalidParameterCombination => Some("InvalidParameterCombination;Sender"),
            ErrorKind::InvalidNextToken => Some("InvalidNextToken;Sender"),
            ErrorKind::InternalServiceError => Some("InternalServiceError;Receiver"),
            ErrorKind::Serialization | ErrorKind::RequestTooLarge | ErrorKind::UnknownOperation => None,
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::InternalServiceError => 500,
            _ => 400,
        }
    }
}

/// An error answered to a request: its kind and a message that names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameterValue, message)
    }

    pub fn missing(parameter: &str) -> Self {
        Self::new(ErrorKind::MissingParameter, format!("the parameter {parameter} is required"))
    }

    pub fn combination(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameterCombination, message)
    }

    /// A failure to read the lake: the message names the object or the store.
    pub fn internal(error: impl fmt::Display) -> Self {
        Self::new(ErrorKind::InternalServiceError, format!("cannot read the lake: {error}"))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.shape(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// The result of an operation.
pub type ApiResult<T> = std::result::Result<T, ApiError>;
