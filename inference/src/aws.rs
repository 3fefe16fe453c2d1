//! The workspace's one AWS SDK configuration loader (`--features aws`) and one `s3://` URI
//! parser (always: a location is understood, and refused by name, in a build without AWS).

use crate::{InferenceError, Result};

/// Whether the SDK retries failed calls itself.
#[cfg(feature = "aws")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkRetries {
    /// The SDK's standard retry policy (stores, queues, streams).
    Standard,
    /// No SDK retries: the caller counts and schedules its own attempts (the cloud providers).
    Off,
}

/// The environment's AWS configuration (credentials, region, `AWS_ENDPOINT_URL*` for local
/// servers), in `us-east-1` when no region is set.
#[cfg(feature = "aws")]
pub async fn sdk_config(retries: SdkRetries) -> aws_config::SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(aws_config::Region::new("us-east-1"));
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region);
    match retries {
        SdkRetries::Standard => loader,
        SdkRetries::Off => loader.retry_config(aws_config::retry::RetryConfig::disabled()),
    }
    .load()
    .await
}

/// An S3 client of `shared`, with path-style addressing when an endpoint is set (in `shared`,
/// or by `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`): a local S3-compatible server.
#[cfg(feature = "aws")]
pub fn s3_client(shared: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint = shared.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let config = aws_sdk_s3::config::Builder::from(shared)
        .force_path_style(custom_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// `s3://bucket/key`: a bucket and a key (or key prefix; possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    /// Without leading or trailing `/`.
    pub key: String,
}

impl S3Uri {
    /// Whether `text` is meant as an S3 location.
    pub fn is_s3(text: &str) -> bool {
        text.starts_with("s3://")
    }

    /// Parses `s3://bucket[/key]`; an error names the text.
    pub fn parse(text: &str) -> Result<Self> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| InferenceError::Input(format!("`{text}` is not an s3:// location")))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(InferenceError::Input(format!(
                "`{text}`: an S3 location needs a bucket"
            )));
        }
        Ok(Self {
            bucket: bucket.into(),
            key: key.trim_matches('/').into(),
        })
    }

    /// [`S3Uri::parse`] that also requires an object key.
    pub fn parse_object(text: &str) -> Result<Self> {
        let uri = Self::parse(text)?;
        if uri.key.is_empty() {
            return Err(InferenceError::Input(format!(
                "`{text}` names no object key"
            )));
        }
        Ok(uri)
    }
}

impl std::fmt::Display for S3Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buckets_keys_and_refuses_the_rest() {
        let uri = S3Uri::parse("s3://bucket/a/b/").unwrap();
        assert_eq!((uri.bucket.as_str(), uri.key.as_str()), ("bucket", "a/b"));
        assert_eq!(S3Uri::parse("s3://bucket").unwrap().key, "");
        assert!(S3Uri::parse("s3://").is_err());
        assert!(S3Uri::parse("/tmp/x").is_err());
        assert!(S3Uri::parse_object("s3://bucket/").is_err());
        assert_eq!(
            S3Uri::parse_object("s3://b/k.jsonl").unwrap().to_string(),
            "s3://b/k.jsonl"
        );
    }
}
