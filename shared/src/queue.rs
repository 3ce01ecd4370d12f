//! The SQS deliveries queue and its dead-letter queue.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, SendMessageBatchRequestEntry,
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
    #[error("{left} dead letters were redriven but could not be deleted")]
    Undeleted { left: usize },
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

/// SendMessageBatch, DeleteMessageBatch and ChangeMessageVisibilityBatch take at most ten
/// entries.
const SQS_BATCH: usize = 10;

/// What one redrive round may take once its receive has answered (a `SendMessageBatch`, a
/// `DeleteMessageBatch` and their retries), with margin: a round starts only if this much
/// time is left after its receive's wait.
pub const REDRIVE_ROUND: Duration = Duration::from_secs(4);

/// A redrive's long-polling wait. Any wait of a second or more asks every SQS server, which
/// is all a redrive needs; a longer one only waits for letters that are not there yet, and
/// costs the final, empty receive that long.
const REDRIVE_POLL: Duration = Duration::from_secs(2);

/// Tries of a `DeleteMessageBatch` for letters whose tasks were sent.
const DELETE_TRIES: u32 = 4;

/// How far a redrive got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RedriveProgress {
    /// Letters whose task is back on the deliveries queue (and that are gone from the DLQ).
    pub moved: usize,
    /// Letters that hold no task; they stay.
    pub unreadable: usize,
    /// Tasks SQS did not take; their letters stay.
    pub unsent: usize,
    /// A long-polled receive found no letter left to move, or only letters written after
    /// the call began (they stay for the next call).
    pub drained: bool,
}

/// When SQS took the message, from its `SentTimestamp` attribute (epoch milliseconds).
fn sent_at_ms(m: &aws_sdk_sqs::types::Message) -> Option<u128> {
    m.attributes
        .as_ref()?
        .get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)?
        .parse()
        .ok()
}

/// `WaitTimeSeconds` for `wait`: whole seconds, 1 (long polling) to 20 (SQS's maximum).
fn poll_seconds(wait: Duration) -> i32 {
    wait.as_secs().clamp(1, 20) as i32
}

#[derive(Clone)]
pub struct Queue {
    client: Client,
    url: String,
    dlq_url: String,
    /// Where tasks for batch endpoints collect; unset, such endpoints get one request each.
    batching_url: Option<String>,
    /// The FIFO queue of ordered endpoints' tasks; unset, their tasks go to the deliveries
    /// queue and are delivered unordered.
    ordered_url: Option<String>,
    /// The ordered queue's own dead-letter queue (FIFO, as SQS requires): tasks whose
    /// invocations kept crashing. Exhausted ordered tasks go to the main DLQ with a reason.
    ordered_dlq_url: Option<String>,
}

impl Queue {
    pub fn new(client: Client, url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            dlq_url: dlq_url.into(),
            batching_url: None,
            ordered_url: None,
            ordered_dlq_url: None,
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
        q.ordered_url = settings.ordered_queue_url.clone();
        q.ordered_dlq_url = settings.ordered_dead_letter_queue_url.clone();
        q
    }

    /// One attribute of the delivery queue (a request, no message): the client's connection
    /// to SQS, opened ahead of the first real request.
    pub async fn warm(&self) -> Result<(), String> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::telemetry::error_chain(&e))
    }

    pub fn batching_url(&self) -> Option<&str> {
        self.batching_url.as_deref()
    }

    pub fn ordered_url(&self) -> Option<&str> {
        self.ordered_url.as_deref()
    }

    /// Whether `task` goes to the ordered queue: it has a line and the deployment has the
    /// queue.
    pub fn is_ordered(&self, task: &DeliveryTask) -> bool {
        task.group.is_some() && self.ordered_url.is_some()
    }

    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    /// The ordered queue's dead-letter queue, when the deployment has one.
    pub fn ordered_dlq_url(&self) -> Option<&str> {
        self.ordered_dlq_url.as_deref()
    }

    /// Sends tasks in batches of ten, all batches at once. Answers the tasks SQS did not take
    /// (whole failed calls and failed entries), so the caller can keep them pending.
    ///
    /// A task with a line (an ordered endpoint's) goes to the ordered queue in its message
    /// group, in the order given.
    pub async fn send_tasks(
        &self,
        tasks: &[DeliveryTask],
    ) -> Result<Vec<DeliveryTask>, QueueError> {
        self.send_routed(tasks, false).await
    }

    /// [`Queue::send_tasks`] for a task sent again as a new one (a redrive): on the ordered
    /// queue it gets a deduplication id of its own, so SQS does not take it for a repeat of
    /// the first send.
    pub async fn send_tasks_again(
        &self,
        tasks: &[DeliveryTask],
    ) -> Result<Vec<DeliveryTask>, QueueError> {
        self.send_routed(tasks, true).await
    }

    async fn send_routed(
        &self,
        tasks: &[DeliveryTask],
        fresh: bool,
    ) -> Result<Vec<DeliveryTask>, QueueError> {
        let (ordered, unordered): (Vec<DeliveryTask>, Vec<DeliveryTask>) =
            tasks.iter().cloned().partition(|t| self.is_ordered(t));
        let mut unsent = if unordered.is_empty() {
            Vec::new()
        } else {
            self.send_tasks_to(&self.url, &unordered).await?
        };
        if !ordered.is_empty() {
            unsent.extend(self.send_ordered(&ordered, fresh).await?);
        }
        Ok(unsent)
    }

    /// Sends ordered tasks to the ordered queue, each in its message group. A group's tasks
    /// go in one call at a time, in the order given, so SQS keeps that order: a later call
    /// starts only after the earlier one answered. Answers the tasks SQS did not take.
    pub async fn send_ordered(
        &self,
        tasks: &[DeliveryTask],
        fresh: bool,
    ) -> Result<Vec<DeliveryTask>, QueueError> {
        let Some(url) = self.ordered_url.as_deref() else {
            return Ok(tasks.to_vec());
        };
        let group_of = |t: &DeliveryTask| t.group.clone().unwrap_or_else(|| t.endpoint_id.clone());
        let mut unsent = Vec::new();
        // A group with a task SQS did not take sends none of its later tasks: queued behind
        // it now, they would reach their endpoint before it when it is sent again.
        let mut stopped: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in tasks.chunks(SQS_BATCH) {
            let (held, chunk): (Vec<DeliveryTask>, Vec<DeliveryTask>) = chunk
                .iter()
                .cloned()
                .partition(|t| stopped.contains(&group_of(t)));
            unsent.extend(held);
            if chunk.is_empty() {
                continue;
            }
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    Ok(SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(t)?)
                        .message_group_id(group_of(t))
                        .message_deduplication_id(crate::ordering::dedup_id(t, fresh))
                        .build()?)
                })
                .collect::<Result<Vec<_>, QueueError>>()?;
            let failed: Vec<DeliveryTask> = match self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out
                    .failed
                    .iter()
                    .filter_map(|f| f.id.parse::<usize>().ok())
                    .filter_map(|i| chunk.get(i).cloned())
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SendMessageBatch to the ordered queue failed");
                    chunk.clone()
                }
            };
            stopped.extend(failed.iter().map(group_of));
            unsent.extend(failed);
        }
        Ok(unsent)
    }

    /// [`Queue::send_tasks`] to another queue (the batching queue).
    pub async fn send_tasks_to(
        &self,
        url: &str,
        tasks: &[DeliveryTask],
    ) -> Result<Vec<DeliveryTask>, QueueError> {
        let undelayed: Vec<(DeliveryTask, Duration)> =
            tasks.iter().map(|t| (t.clone(), Duration::ZERO)).collect();
        let unsent = self.send_delayed_to(url, &undelayed).await?;
        Ok(unsent
            .into_iter()
            .filter_map(|i| tasks.get(i).cloned())
            .collect())
    }

    /// Sends each task as a new message delayed by its duration (at most SQS's 900 s).
    /// Answers the indexes of the tasks SQS did not take.
    pub async fn send_tasks_delayed(
        &self,
        tasks: &[(DeliveryTask, Duration)],
    ) -> Result<Vec<usize>, QueueError> {
        self.send_delayed_to(&self.url, tasks).await
    }

    /// Sends tasks in batches of ten, all batches at once, each delayed by its duration.
    /// Answers the indexes SQS did not take (whole failed calls and failed entries).
    async fn send_delayed_to(
        &self,
        url: &str,
        tasks: &[(DeliveryTask, Duration)],
    ) -> Result<Vec<usize>, QueueError> {
        let mut calls = Vec::new();
        for (c, chunk) in tasks.chunks(SQS_BATCH).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (t, delay))| {
                    Ok(SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(t)?)
                        .delay_seconds(delay.as_secs().min(900) as i32)
                        .build()?)
                })
                .collect::<Result<Vec<_>, QueueError>>()?;
            let base = c * SQS_BATCH;
            let len = chunk.len();
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
                        .map(|i| base + i)
                        .collect::<Vec<_>>(),
                    Err(e) => {
                        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SendMessageBatch failed");
                        (base..base + len).collect()
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
    /// Long polling (`wait` of at least a second) asks every SQS server; a short poll asks a
    /// sample and often answers nothing from a queue of fewer than 1 000 messages.
    pub async fn peek_dead_letters(
        &self,
        dlq_url: &str,
        max: i32,
        wait: Duration,
    ) -> Result<Vec<DeadLetterView>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(max.clamp(1, 10))
            .visibility_timeout(0)
            .wait_time_seconds(poll_seconds(wait))
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

    /// Moves up to `limit` dead letters of `dlq_url` (the DLQ or the ordered queue's) back
    /// as fresh tasks (their attempts count from one again), each to the queue its task
    /// belongs on, ten at a time, starting a round only while `deadline` leaves
    /// [`REDRIVE_ROUND`] for it.
    ///
    /// A round receives letters, sends their tasks in one `SendMessageBatch` and at once
    /// deletes the letters whose task SQS took with one `DeleteMessageBatch`. Each letter is
    /// received with a visibility timeout that outlasts the whole call, so neither this call
    /// nor a concurrent or following one can receive it again while its task is being sent.
    /// Stopping for time happens only between rounds, never between a task's send and its
    /// letter's delete: a call cut short has moved every letter it reports exactly once and
    /// left the others untouched, and the next call carries on. Deleting first would lose a
    /// letter whose send then failed; sending first can repeat only a task whose delete SQS
    /// still refuses after retries (reported as an error), not one the deadline interrupted.
    /// Unreadable letters and letters SQS would not take stay, visible again once that
    /// visibility timeout ends.
    pub async fn redrive(
        &self,
        dlq_url: &str,
        limit: usize,
        deadline: std::time::Instant,
    ) -> Result<RedriveProgress, QueueError> {
        let mut progress = RedriveProgress::default();
        // A letter written after this call began failed again after an earlier redrive (an
        // endpoint that fails at once): moving it again would cycle it until the limit.
        let began_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        while progress.moved < limit {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Some(spare) = left.checked_sub(REDRIVE_ROUND) else {
                return Ok(progress);
            };
            let wait = spare.min(REDRIVE_POLL);
            if wait < Duration::from_secs(1) {
                return Ok(progress);
            }
            // Past the call's own end, with margin, so the letters cannot come back while
            // this call may still act on them.
            let hold = (left + Duration::from_secs(30)).as_secs().min(43_200) as i32;
            let out = self
                .client
                .receive_message()
                .queue_url(dlq_url)
                .max_number_of_messages((limit - progress.moved).min(SQS_BATCH) as i32)
                .visibility_timeout(hold)
                .wait_time_seconds(poll_seconds(wait))
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp,
                )
                .send()
                .await
                .map_err(|e| QueueError::sqs("ReceiveMessage", e))?;
            let (messages, fresh): (Vec<_>, Vec<_>) = out
                .messages
                .unwrap_or_default()
                .into_iter()
                .partition(|m| sent_at_ms(m).is_none_or(|at| at < began_ms));
            if !fresh.is_empty() {
                let back: Vec<(String, Duration)> = fresh
                    .iter()
                    .filter_map(|m| m.receipt_handle.clone())
                    .map(|h| (h, Duration::ZERO))
                    .collect();
                self.delay_on(dlq_url, &back).await?;
            }
            if messages.is_empty() {
                progress.drained = true;
                return Ok(progress);
            }
            let mut tasks = Vec::new();
            let mut handles = Vec::new();
            for m in &messages {
                let body = DeadLetterBody::parse(m.body.as_deref().unwrap_or_default());
                match body.task() {
                    Some(task) => {
                        let mut task = task.clone();
                        task.manual = false;
                        tasks.push(task);
                        handles.push(m.receipt_handle.clone().unwrap_or_default());
                    }
                    None => progress.unreadable += 1,
                }
            }
            if tasks.is_empty() {
                continue;
            }
            let unsent = self.send_tasks_again(&tasks).await?;
            let sent: Vec<String> = tasks
                .iter()
                .zip(handles)
                .filter(|(task, _)| !unsent.contains(task))
                .map(|(_, handle)| handle)
                .collect();
            self.delete_dead_letters(dlq_url, &sent).await?;
            progress.moved += sent.len();
            if !unsent.is_empty() {
                // SQS is refusing sends: stop here rather than hold more letters.
                progress.unsent += unsent.len();
                return Ok(progress);
            }
        }
        Ok(progress)
    }

    /// Deletes received dead letters in one `DeleteMessageBatch`, re-asking for entries SQS
    /// reports failed: a letter left behind after its task was sent would be redriven twice.
    async fn delete_dead_letters(
        &self,
        dlq_url: &str,
        handles: &[String],
    ) -> Result<(), QueueError> {
        let mut left: Vec<&String> = handles.iter().collect();
        for round in 0..DELETE_TRIES {
            if left.is_empty() {
                return Ok(());
            }
            let entries = left
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h.as_str())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let failed = match self
                .client
                .delete_message_batch()
                .queue_url(dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out
                    .failed
                    .iter()
                    .filter_map(|f| f.id.parse::<usize>().ok())
                    .filter_map(|i| left.get(i).copied())
                    .collect(),
                Err(e) if round + 1 == DELETE_TRIES => {
                    return Err(QueueError::sqs("DeleteMessageBatch", e));
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessageBatch failed; retrying");
                    left
                }
            };
            left = failed;
            if !left.is_empty() {
                tokio::time::sleep(Duration::from_millis(50 << round)).await;
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(QueueError::Undeleted { left: left.len() })
        }
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
