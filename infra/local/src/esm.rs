//! The SQS event source mapping, played locally: receive a batch (batch size, batching
//! window), hand it to the delivery function as an `SqsEvent`, then delete what succeeded.
//! With `ReportBatchItemFailures`, the failures stay for their visibility timeout; if the
//! invocation itself fails, the whole batch stays, as in Lambda.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};

#[derive(Debug, Clone)]
pub struct Mapping {
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: usize,
    pub window: Duration,
    pub report_batch_item_failures: bool,
    /// A FIFO queue: a batch is one receive (at most ten messages, no batching window), as
    /// Lambda's FIFO pollers take it. SQS hands out a message group's messages in order and
    /// none of them while one is in flight, so with one batch in flight at a time per
    /// mapping (this poller's) a group is never in two batches at once.
    pub fifo: bool,
}

impl Mapping {
    /// Whether the queue at `url` is a FIFO queue: SQS requires their names to end in
    /// `.fifo`.
    pub fn is_fifo_url(url: &str) -> bool {
        url.ends_with(".fifo")
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchResult {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

/// Receives up to `batch_size` messages: the first receive long-polls up to `wait` (at least
/// a second), then the batch fills until it is full or the batching window has passed.
///
/// Lambda's pollers long-poll. A short poll samples some of SQS's servers, so its empty answer
/// does not mean an empty queue (the local stack's emulator samples short polls too): a
/// mapping that short-polled could see nothing while tasks wait.
pub async fn receive_batch(sqs: &Client, m: &Mapping, wait: Duration) -> Result<Vec<Message>> {
    if m.fifo {
        let out = sqs
            .receive_message()
            .queue_url(&m.queue_url)
            .max_number_of_messages(m.batch_size.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs_f64().ceil().clamp(1.0, 20.0) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(aws_sdk_sqs::Error::from)?;
        return Ok(out.messages.unwrap_or_default());
    }
    let started = Instant::now();
    let mut batch: Vec<Message> = Vec::new();
    loop {
        let want = (m.batch_size - batch.len()).min(10) as i32;
        let wait_secs = if batch.is_empty() {
            wait.as_secs_f64().ceil().clamp(1.0, 20.0) as u64
        } else {
            m.window.saturating_sub(started.elapsed()).as_secs().min(20)
        };
        let out = sqs
            .receive_message()
            .queue_url(&m.queue_url)
            .max_number_of_messages(want)
            .wait_time_seconds(wait_secs as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(aws_sdk_sqs::Error::from)?;
        let got = out.messages.unwrap_or_default();
        let empty = got.is_empty();
        batch.extend(got);
        if batch.len() >= m.batch_size
            || (batch.is_empty() && empty)
            || (!batch.is_empty() && (started.elapsed() >= m.window || empty && wait_secs == 0))
        {
            return Ok(batch);
        }
    }
}

pub fn to_event(messages: &[Message], m: &Mapping) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|msg| {
            let mut rec = SqsMessage::default();
            rec.message_id = msg.message_id.clone();
            rec.receipt_handle = msg.receipt_handle.clone();
            rec.body = msg.body.clone();
            rec.md5_of_body = msg.md5_of_body.clone();
            rec.attributes = msg
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            rec.event_source = Some("aws:sqs".to_owned());
            rec.event_source_arn = Some(m.queue_arn.clone());
            rec.aws_region = Some("us-east-1".to_owned());
            rec
        })
        .collect();
    event
}

/// Deletes what the invocation says succeeded. `None` means the invocation failed.
pub async fn complete(
    sqs: &Client,
    m: &Mapping,
    messages: &[Message],
    response: Option<&SqsBatchResponse>,
) -> Result<BatchResult> {
    let mut result = BatchResult {
        received: messages.len(),
        ..Default::default()
    };
    let ids: HashSet<&str> = messages
        .iter()
        .filter_map(|x| x.message_id.as_deref())
        .collect();
    let failed: Option<HashSet<&str>> = match response {
        None => None,
        Some(_) if !m.report_batch_item_failures => Some(HashSet::new()),
        Some(r) => {
            let f: HashSet<&str> = r
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            // Lambda treats an empty or unknown id as a failure of the whole batch.
            if f.iter().any(|id| id.is_empty() || !ids.contains(id)) {
                None
            } else {
                Some(f)
            }
        }
    };
    let Some(failed) = failed else {
        result.failed = messages.len();
        return Ok(result);
    };
    let done: Vec<&Message> = messages
        .iter()
        .filter(|x| !failed.contains(x.message_id.as_deref().unwrap_or_default()))
        .collect();
    result.failed = messages.len() - done.len();
    for chunk in done.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, x)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(x.receipt_handle.clone().unwrap_or_default())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = sqs
            .delete_message_batch()
            .queue_url(&m.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(aws_sdk_sqs::Error::from)?;
        result.deleted += out.successful.len();
    }
    Ok(result)
}

/// One round: receive, invoke, complete. Answers `None` when the queue had nothing.
pub async fn run_once<F, Fut>(
    sqs: &Client,
    m: &Mapping,
    wait: Duration,
    invoke: F,
) -> Result<Option<BatchResult>>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: Future<Output = Result<SqsBatchResponse>>,
{
    let messages = receive_batch(sqs, m, wait).await?;
    if messages.is_empty() {
        return Ok(None);
    }
    let response = match invoke(to_event(&messages, m)).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "delivery invocation failed; the batch stays on the queue");
            None
        }
    };
    complete(sqs, m, &messages, response.as_ref())
        .await
        .map(Some)
}
