//! The SQS deliveries queue and its dead-letter queue.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};
use futures::future::join_all;

use crate::{DeadLetter, DeliveryTask};

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

/// What a peek at the dead-letter queue shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetterView {
    pub message_id: String,
    /// Tasks the delivery function dead-lettered carry why; tasks SQS moved there after
    /// repeated crashes carry only the task.
    #[serde(flatten)]
    pub letter: DeadLetterBody,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum DeadLetterBody {
    Letter(Box<DeadLetter>),
    Task { task: DeliveryTask },
    Unreadable { body: String },
}

impl DeadLetterBody {
    pub fn parse(body: &str) -> Self {
        if let Ok(l) = serde_json::from_str::<DeadLetter>(body) {
            return DeadLetterBody::Letter(Box::new(l));
        }
        match serde_json::from_str::<DeliveryTask>(body) {
            Ok(task) => DeadLetterBody::Task { task },
            Err(_) => DeadLetterBody::Unreadable {
                body: body.chars().take(1024).collect(),
            },
        }
    }

    pub fn task(&self) -> Option<&DeliveryTask> {
        match self {
            DeadLetterBody::Letter(l) => Some(&l.task),
            DeadLetterBody::Task { task } => Some(task),
            DeadLetterBody::Unreadable { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

/// SendMessageBatch and ChangeMessageVisibilityBatch take at most ten entries.
const SQS_BATCH: usize = 10;
/// Reads of the DLQ long-poll: a short poll samples some of SQS's servers, so its empty
/// answer does not mean the DLQ is empty (a redrive would stop early, a peek would show
/// nothing). A long poll answers as soon as a letter is there; only an empty DLQ waits.
const DLQ_POLL_SECONDS: i32 = 1;

#[derive(Clone)]
pub struct Queue {
    client: Client,
    url: String,
    dlq_url: String,
    /// Where tasks for batch endpoints collect; unset, such endpoints get one request each.
    batching_url: Option<String>,
}

impl Queue {
    pub fn new(client: Client, url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            dlq_url: dlq_url.into(),
            batching_url: None,
        }
    }

    /// The deliveries queue and DLQ the settings name.
    pub fn connect(aws: &aws_config::SdkConfig, settings: &crate::config::Settings) -> Self {
        let mut q = Self::new(
            crate::requests::sqs(aws),
            &settings.delivery_queue_url,
            &settings.dead_letter_queue_url,
        );
        q.batching_url = settings.batching_queue_url.clone();
        q
    }

    pub fn batching_url(&self) -> Option<&str> {
        self.batching_url.as_deref()
    }

    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    /// Sends tasks in batches of ten, all batches at once. Answers the tasks SQS did not take
    /// (whole failed calls and failed entries), so the caller can keep them pending.
    pub async fn send_tasks(
        &self,
        tasks: &[DeliveryTask],
    ) -> Result<Vec<DeliveryTask>, QueueError> {
        self.send_tasks_to(&self.url, tasks).await
    }

    /// [`Queue::send_tasks`] to another queue (the batching queue).
    pub async fn send_tasks_to(
        &self,
        url: &str,
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
                    .queue_url(url)
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
        self.delay_on(&self.url, messages).await
    }

    /// [`Queue::delay`] on another queue (the batching queue).
    pub async fn delay_on(
        &self,
        url: &str,
        messages: &[(String, Duration)],
    ) -> Result<Vec<String>, QueueError> {
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
                .queue_url(url)
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

    /// Approximate message counts of a queue (SQS's own numbers).
    pub async fn depth(&self, url: &str) -> Result<Depth, QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| QueueError::sqs("GetQueueAttributes", e))?
            .attributes
            .unwrap_or_default();
        let n = |a: A| attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Depth {
            visible: n(A::ApproximateNumberOfMessages),
            in_flight: n(A::ApproximateNumberOfMessagesNotVisible),
            delayed: n(A::ApproximateNumberOfMessagesDelayed),
        })
    }

    /// Up to ten dead letters, left on the queue (received with a zero visibility timeout).
    pub async fn peek_dead_letters(&self, max: i32) -> Result<Vec<DeadLetterView>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(max.clamp(1, 10))
            .visibility_timeout(0)
            .wait_time_seconds(DLQ_POLL_SECONDS)
            .send()
            .await
            .map_err(|e| QueueError::sqs("ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| DeadLetterView {
                message_id: m.message_id.unwrap_or_default(),
                letter: DeadLetterBody::parse(m.body.as_deref().unwrap_or_default()),
            })
            .collect())
    }

    /// Moves up to `limit` dead letters back to the deliveries queue as fresh tasks (their
    /// attempts count from one again). A letter is deleted only after its task is queued;
    /// unreadable ones stay. Answers how many were moved.
    pub async fn redrive(&self, limit: usize) -> Result<usize, QueueError> {
        let mut moved = 0;
        while moved < limit {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages((limit - moved).min(SQS_BATCH) as i32)
                .visibility_timeout(60)
                .wait_time_seconds(DLQ_POLL_SECONDS)
                .send()
                .await
                .map_err(|e| QueueError::sqs("ReceiveMessage", e))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            let mut tasks = Vec::new();
            let mut handles = Vec::new();
            for m in &messages {
                let body = DeadLetterBody::parse(m.body.as_deref().unwrap_or_default());
                if let Some(task) = body.task() {
                    let mut task = task.clone();
                    task.manual = false;
                    tasks.push(task);
                    handles.push(m.receipt_handle.clone().unwrap_or_default());
                }
            }
            if tasks.is_empty() {
                break;
            }
            let unsent = self.send_tasks(&tasks).await?;
            for (task, handle) in tasks.iter().zip(handles) {
                if unsent.contains(task) {
                    continue;
                }
                self.client
                    .delete_message()
                    .queue_url(&self.dlq_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| QueueError::sqs("DeleteMessage", e))?;
                moved += 1;
            }
            if !unsent.is_empty() {
                break;
            }
        }
        Ok(moved)
    }

    /// Sends a batch's timer to the batching queue, due after `delay` (SQS delays at most
    /// 900 s; batch intervals are at most 300 s).
    pub async fn send_batch_timer(
        &self,
        timer: &crate::BatchTimer,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let Some(url) = &self.batching_url else {
            return Ok(());
        };
        self.client
            .send_message()
            .queue_url(url)
            .message_body(serde_json::to_string(timer)?)
            .delay_seconds(delay.as_secs().min(900) as i32)
            .send()
            .await
            .map_err(|e| QueueError::sqs("SendMessage", e))?;
        Ok(())
    }

    /// Moves an exhausted task to the dead-letter queue, with why, so it can be redriven.
    pub async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(serde_json::to_string(letter)?)
            .message_attributes(
                "reason",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(&letter.reason)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| QueueError::sqs("SendMessage", e))?;
        Ok(())
    }
}
