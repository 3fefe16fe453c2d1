//! The AWS Lambda entry points of `bootstrap` (`MESH_MODE`): the HTTP router under
//! API Gateway ([`lambda_http`]), the API Gateway WebSocket API ([`websocket`]), the SQS worker
//! of async jobs ([`worker`], also `msp-mesh worker`), the fan-out of `msp-mesh score` over
//! Lambda shards ([`fanout`]), the broadcaster of the event log's DynamoDB stream
//! ([`broadcast`]), and the WebSocket API's `$connect` authorizer ([`authorizer`]).

pub mod authorizer;
pub mod broadcast;
pub mod fanout;
pub mod lambda_http;
pub mod websocket;
pub mod worker;
