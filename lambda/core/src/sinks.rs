//! The Kinesis data stream `msp-intelligence-events` as an [`EventSink`]
//! (`--kinesis-stream` / `MESH_KINESIS_STREAM`): every published event, as the JSON the
//! event log and `/ws` carry, for downstream consumers (analytics, archival).

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::events::EventSink;
use crate::store::Event;

/// The plan's stream name.
pub const EVENTS_STREAM: &str = "msp-intelligence-events";

/// Puts events on one Kinesis stream, partitioned by `result_id` (a result and its alerts
/// land on one shard). `PutRecords` does not promise order within a call: consumers order by
/// the events' `offset`.
pub struct KinesisSink {
    client: aws_sdk_kinesis::Client,
    stream: String,
}

impl KinesisSink {
    /// A sink for `stream` (a name or ARN) through a client from `config`
    /// (`AWS_ENDPOINT_URL_KINESIS` for a local server).
    pub fn new(config: &aws_config::SdkConfig, stream: String) -> Self {
        Self {
            client: aws_sdk_kinesis::Client::new(config),
            stream,
        }
    }
}

#[async_trait::async_trait]
impl EventSink for KinesisSink {
    fn name(&self) -> &'static str {
        "kinesis"
    }

    async fn deliver(&self, events: &[Event]) -> Result<(), String> {
        let entries = events
            .iter()
            .map(|event| {
                let data = serde_json::to_vec(event).map_err(|e| e.to_string())?;
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(data))
                    .partition_key(&event.result_id)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        let output = self
            .client
            .put_records()
            .stream_name(&self.stream)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|e| aws_sdk_kinesis::error::DisplayErrorContext(e).to_string())?;
        match output.failed_record_count() {
            Some(failed) if failed > 0 => {
                let reason = output
                    .records()
                    .iter()
                    .find_map(|r| r.error_message())
                    .unwrap_or("no reason given");
                Err(format!(
                    "Kinesis refused {failed} of {} records: {reason}",
                    events.len()
                ))
            }
            _ => Ok(()),
        }
    }
}
