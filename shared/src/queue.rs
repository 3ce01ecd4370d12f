//! The SQS deliveries queue and its dead-letter queue.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};
use futures::future::join_all;

use crate::DeliveryTask;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("SQS {op} failed")]
    Sqs {
        op: &'static str,
        #[source]
        source: Box<aws_sdk_sqs::Error>,
    },
    #[error("SQS request could not be built")]
    Build(#[from] aws_sdk_sqs::error::BuildError),
    #[error("delivery task could not be encoded")]
    Encode(#[from] serde_json::Error),
}

impl QueueError {
    fn sqs<E: Into<aws_sdk_sqs::Error>>(op: &'static str, err: E) -> Self {
        QueueError::Sqs {
            op,
            source: Box::new(err.into()),
        }
    }
}

/// SendMessageBatch and ChangeMessageVisibilityBatch take at most ten entries.
const SQS_BATCH: usize = 10;

#[derive(Clone)]
pub struct Queue {
    client: Client,
    url: String,
    dlq_url: String,
}

impl Queue {
    pub fn new(client: Client, url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            dlq_url: dlq_url.into(),
        }
    }

    /// The deliveries queue and DLQ the settings name.
    pub fn connect(aws: &aws_config::SdkConfig, settings: &crate::config::Settings) -> Self {
        Self::new(
            Client::new(aws),
            &settings.delivery_queue_url,
            &settings.dead_letter_queue_url,
        )
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends tasks in batches of ten, all batches at once. Answers the tasks SQS did not take
    /// (whole failed calls and failed entries), so the caller can keep them pending.
    pub async fn send_tasks(
        &self,
        tasks: &[DeliveryTask],
    ) -> Result<Vec<DeliveryTask>, QueueError> {
        let mut calls = Vec::new();
        for chunk in tasks.chunks(SQS_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    Ok(SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(t)?)
                        .build()?)
                })
                .collect::<Result<Vec<_>, QueueError>>()?;
            calls.push(async move {
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await;
                match out {
                    Ok(out) => out
                        .failed
                        .iter()
                        .filter_map(|f| f.id.parse::<usize>().ok())
                        .filter_map(|i| chunk.get(i).cloned())
                        .collect::<Vec<_>>(),
                    Err(e) => {
                        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SendMessageBatch failed");
                        chunk.to_vec()
                    }
                }
            });
        }
        Ok(join_all(calls).await.into_iter().flatten().collect())
    }

    /// Sets each message's visibility timeout: the retry timer. Answers receipt handles SQS
    /// refused (their message reappears after the queue's default timeout instead).
    pub async fn delay(&self, messages: &[(String, Duration)]) -> Result<Vec<String>, QueueError> {
        let mut refused = Vec::new();
        for chunk in messages.chunks(SQS_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (handle, delay))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .visibility_timeout(delay.as_secs().min(43_200) as i32)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError::sqs("ChangeMessageVisibilityBatch", e))?;
            refused.extend(
                out.failed
                    .iter()
                    .filter_map(|f| f.id.parse::<usize>().ok())
                    .filter_map(|i| chunk.get(i).map(|(h, _)| h.clone())),
            );
        }
        Ok(refused)
    }

    /// Moves an exhausted task to the dead-letter queue, with why, so it can be redriven.
    pub async fn dead_letter(&self, task: &DeliveryTask, reason: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(serde_json::to_string(task)?)
            .message_attributes(
                "reason",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(reason)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| QueueError::sqs("SendMessage", e))?;
        Ok(())
    }
}
