//! Payloads too large for a DynamoDB item, kept in S3: a claim check. The event item holds
//! the object's key instead of the bytes and every read of the event brings them back, so
//! what is delivered, listed and shown is the body as received. The bucket's lifecycle
//! expires objects after `RetentionDays`, as DynamoDB's TTL expires the items.
//!
//! The object is written before the item: an item never names an object that is not there.
//! A request refused as a duplicate after its upload leaves an object no item names; the
//! lifecycle removes it with the rest.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

/// The largest payload kept in the event item. DynamoDB holds 400 KB an item; the rest of
/// the event (ids, type, keys, trace) stays well under the 144 KB left.
pub const INLINE_PAYLOAD_MAX: usize = 256 * 1024;

/// The largest body hookrelay accepts at all: Lambda's synchronous invocation carries at most
/// 6 291 456 bytes of request, and the body travels inside the API Gateway event with the
/// request's headers, escaped as a JSON string.
pub const MAX_PAYLOAD: usize = 6_000_000;

/// How long a presigned link to a payload stays valid.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum PayloadObjectError {
    #[error("S3 {op} of {key} failed")]
    S3 {
        op: &'static str,
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no payload bucket is configured (PAYLOAD_BUCKET) for a {size}-byte payload")]
    NoBucket { size: usize },
}

fn s3_error<E>(op: &'static str, key: &str) -> impl FnOnce(E) -> PayloadObjectError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let key = key.to_owned();
    move |e| PayloadObjectError::S3 {
        op,
        key,
        source: Box::new(e),
    }
}

/// The bucket large payloads go to.
#[derive(Clone, Debug)]
pub struct PayloadObjects {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl PayloadObjects {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// The bucket `PAYLOAD_BUCKET` names, if any.
    pub fn connect(
        aws: &aws_config::SdkConfig,
        settings: &crate::config::Settings,
    ) -> Option<Self> {
        settings
            .payload_bucket
            .as_deref()
            .map(|bucket| Self::new(crate::requests::s3(aws), bucket))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Where an event's payload is kept: under its workspace, so a workspace's objects can be
    /// listed, kept or removed together.
    pub fn key(workspace: &str, event_id: &str) -> String {
        format!("events/{workspace}/{event_id}")
    }

    pub async fn put(
        &self,
        key: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<(), PayloadObjectError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .set_content_type(content_type.map(str::to_owned))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", key)(aws_sdk_s3::Error::from(e)))?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Vec<u8>, PayloadObjectError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("GetObject", key)(aws_sdk_s3::Error::from(e)))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(s3_error("GetObject (body)", key))?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// A link that reads the object without credentials until [`LINK_TTL`] has passed: for
    /// a payload too large to travel in an API answer.
    pub async fn link(&self, key: &str) -> Result<String, PayloadObjectError> {
        let config =
            PresigningConfig::expires_in(LINK_TTL).map_err(s3_error("presign GetObject", key))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign GetObject", key)(aws_sdk_s3::Error::from(e)))?;
        Ok(request.uri().to_owned())
    }
}
