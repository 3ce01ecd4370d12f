"""moto's server, with the AWS rules hookrelay relies on that moto alone does not enforce.

Each patch below quotes the rule it enforces. Settings (environment variables):
- HOOKRELAY_SQS_INFLIGHT_QUOTA: in-flight messages per queue (AWS: about 120 000; tests
  scale it down).
- HOOKRELAY_SQS_SHORT_POLL_SAMPLE: the share of a queue's messages a short poll finds, 0 to 1
  (default 0.5; 1 makes short polls complete, as moto alone is).
"""

import functools
import os
import random
import sys
import threading
import time

import json

from moto.core.utils import camelcase_to_underscores, unix_time, unix_time_millis
from moto.dynamodb.exceptions import (
    DynamodbException,
    ItemSizeTooLarge,
    MockValidationException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.server import main
from moto.sqs.exceptions import SQSException
from moto.sqs.models import Queue, SQSBackend
from moto.sqs.responses import SQSResponse

# --- DynamoDB: each write to an item is atomic ------------------------------------------
# DynamoDB applies each write to an item atomically: a conditional update's check and change
# happen as one, and concurrent updates of one item never lose each other. moto's server
# handles requests on threads without locking its DynamoDB backend (measured: 200 concurrent
# conditional `ADD n :one` left n = 199). Every DynamoDB operation runs under one lock. SQS
# is left alone: its long polls must not block others.
_LOCK = threading.RLock()


def _atomic(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return locked


for _name, _attr in list(vars(DynamoDBBackend).items()):
    if callable(_attr) and not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _atomic(_attr))


# --- DynamoDB: a Query reads its own partition ----------------------------------------
# DynamoDB reads one partition for a Query on the table's key. moto gathers every item of the
# table and sorts them all for each such Query (Table.all_items), then keeps one partition:
# a cost that grows with the table, paid under the lock above, so that a 10 000-event soak
# spent the emulator's core sorting the table and refused ingest requests once the table held
# a few thousand events. A table Query here reads its partition's items alone (moto sorts
# what it keeps by the range key), an index Query every item without sorting the table
# first; scans are unchanged.
_table_query = Table.query
_all_items = Table.all_items
_PARTITION = threading.local()


def _query_one_partition(self, hash_key, *args, **kwargs):
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    _PARTITION.scope = (self, None if index_name else hash_key)
    try:
        return _table_query(self, hash_key, *args, **kwargs)
    finally:
        _PARTITION.scope = None


def _items_of_the_queried_partition(self):
    scope = getattr(_PARTITION, "scope", None)
    if scope is None or scope[0] is not self:
        return _all_items(self)
    if scope[1] is None:
        # An index Query: every item, unsorted (moto sorts the ones it keeps by the index's
        # keys; DynamoDB leaves the order of equal index keys undefined).
        items = []
        for bucket in self.items.values():
            items.extend(bucket.values() if self.range_key_attr else [bucket])
        return items
    bucket = self.items.get(scope[1])
    if bucket is None:
        return []
    return list(bucket.values()) if self.range_key_attr else [bucket]


Table.query = _query_one_partition
Table.all_items = _items_of_the_queried_partition


# --- DynamoDB: BatchWriteItem refuses the whole batch when one item is too big ----------
# AWS (BatchWriteItem): "DynamoDB rejects the entire batch write operation if ... any
# individual item in a batch exceeds 400 KB." moto checks each item's size (400 KB, as in
# PutItem) only when it writes it, after writing the items before it. Every item is sized
# first, with moto's own measure, so an oversized one refuses the batch before any write.
_batch_write_item = DynamoHandler.batch_write_item


def _batch_write_item_all_or_nothing(self):
    for requests in self.body.get("RequestItems", {}).values():
        for request in requests:
            item = request.get("PutRequest", {}).get("Item")
            if item is None:
                continue
            sized = LimitedSizeDict()
            try:
                for key, value in item.items():
                    sized[key] = DynamoType(value)
            except ItemSizeTooLarge:
                raise MockValidationException(
                    "Item size has exceeded the maximum allowed size"
                )
    return _batch_write_item(self)


DynamoHandler.batch_write_item = _batch_write_item_all_or_nothing


# --- SQS: a queue's messages are at most 256 KiB unless it says otherwise ---------------
# AWS (CreateQueue, MaximumMessageSize): "An integer from 1,024 bytes (1 KiB) up to
# 1,048,576 bytes (1 MiB). Default: 262,144 (256 KiB)." moto's default is 1 MiB, and it
# compares the body's length in characters, where SQS counts bytes.
SQS_DEFAULT_MAXIMUM_MESSAGE_SIZE = 262_144
_create_queue = SQSBackend.create_queue


def _create_queue_default_size(self, name, tags=None, **kwargs):
    kwargs.setdefault("MaximumMessageSize", SQS_DEFAULT_MAXIMUM_MESSAGE_SIZE)
    return _create_queue(self, name, tags, **kwargs)


SQSBackend.create_queue = _create_queue_default_size
_validate_message = SQSBackend._validate_message


def _validate_message_bytes(self, queue, message_body, *args, **kwargs):
    size = len(message_body.encode("utf-8"))
    if size > int(queue.maximum_message_size):
        raise SQSException(
            "InvalidParameterValue",
            "One or more parameters are invalid. Reason: Message must be shorter than "
            f"{queue.maximum_message_size} bytes.",
        )
    return _validate_message(self, queue, message_body, *args, **kwargs)


SQSBackend._validate_message = _validate_message_bytes


# --- SQS: the in-flight quota and short polling ------------------------------------------
# AWS (standard queue quotas): "there can be a maximum of approximately 120,000 in flight
# messages (received from a queue by a consumer, but not yet deleted from the queue). If you
# reach this quota while using short polling, Amazon SQS returns the OverLimit error message.
# If you use long polling, Amazon SQS returns no error messages." At the quota a long poll
# waits for a slot and, if none frees up, answers nothing.
#
# AWS (short and long polling): "With short polling, the ReceiveMessage request queries only a
# subset of the servers (based on a weighted random distribution) to find messages that are
# available to include in the response." An empty or short answer does not mean an empty
# queue; long polling queries all the servers. A short poll here finds each visible message
# with probability HOOKRELAY_SQS_SHORT_POLL_SAMPLE.
SQS_INFLIGHT_QUOTA = int(os.environ.get("HOOKRELAY_SQS_INFLIGHT_QUOTA", "120000"))
SQS_SHORT_POLL_SAMPLE = float(os.environ.get("HOOKRELAY_SQS_SHORT_POLL_SAMPLE", "0.5"))
_receive_message = SQSBackend.receive_message


# moto walks every message of a queue for each count, three walks per GetQueueAttributes,
# and the quota check above walks them again for each receive: with thousands of delayed
# retries on the queue that walking was a fifth of the emulator's time in a soak. The counts
# are taken in one walk, exactly, reading the clock once (moto reads it twice per message).
def _counts(queue: Queue) -> dict:
    visible = delayed = not_visible = in_flight = 0
    now = unix_time_millis()
    for m in list(queue._messages):
        is_delayed = now < m.delayed_until
        if is_delayed:
            delayed += 1
        if not now > m.visible_at:
            not_visible += 1
            if m.approximate_receive_count:
                in_flight += 1
        elif not is_delayed:
            visible += 1
    return {"visible": visible, "delayed": delayed, "not_visible": not_visible, "in_flight": in_flight}


_ATTRIBUTES = Queue.attributes
_NO_COUNTS = {"visible": 0, "delayed": 0, "not_visible": 0, "in_flight": 0}


def _attributes_in_one_walk(self):
    if getattr(_WALK, "counts", None) is not None:
        return _ATTRIBUTES.fget(self)
    _WALK.counts = _counts(self)
    try:
        return _ATTRIBUTES.fget(self)
    finally:
        _WALK.counts = None


# moto's SendMessage reads the queue's whole attribute map (counts included, a walk of every
# message) for one flag, and its receive asks for the retention period the same way once per
# message: with ten thousand retries waiting on the queue, a soak spent four fifths of the
# emulator's time there and ingest timed out. Neither reads a count.
_send_message = SQSBackend.send_message


def _send_message_without_counts(self, *args, **kwargs):
    outer = getattr(_WALK, "counts", None)
    _WALK.counts = _NO_COUNTS
    try:
        return _send_message(self, *args, **kwargs)
    finally:
        _WALK.counts = outer


SQSBackend.send_message = _send_message_without_counts


def _retained(self, queue_name, message) -> bool:
    period = int(self.get_queue(queue_name).message_retention_period)
    return period + message.sent_timestamp / 1000 > unix_time()


SQSBackend.is_message_valid_based_on_retention_period = _retained


# The visible messages, as moto's property has them, reading the clock once per receive
# instead of twice per message (a third of the emulator's time in a soak with a backlog).
def _visible_messages(self):
    now = unix_time_millis()
    return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]


Queue.messages = property(_visible_messages)


_WALK = threading.local()


def _count(name):
    def get(queue):
        counts = getattr(_WALK, "counts", None)
        return (counts or _counts(queue))[name]

    return property(get)


Queue.attributes = property(_attributes_in_one_walk)
Queue.approximate_number_of_messages = _count("visible")
Queue.approximate_number_of_messages_delayed = _count("delayed")
Queue.approximate_number_of_messages_not_visible = _count("not_visible")


def _in_flight(queue: Queue) -> int:
    return _counts(queue)["in_flight"]


def _receive_message_as_sqs(
    self, queue_name, count, wait_seconds_timeout, visibility_timeout, *args, **kwargs
):
    queue = self.get_queue(queue_name)
    deadline = time.time() + wait_seconds_timeout
    while True:
        free = SQS_INFLIGHT_QUOTA - _in_flight(queue)
        if free > 0:
            break
        if wait_seconds_timeout == 0:
            raise SQSException(
                "OverLimit",
                f"The maximum number of in flight messages ({SQS_INFLIGHT_QUOTA}) is reached",
            )
        if time.time() >= deadline:
            return []
        time.sleep(0.05)
    count = min(count, free)
    if wait_seconds_timeout == 0 and SQS_SHORT_POLL_SAMPLE < 1:
        visible = len(queue.messages)
        found = sum(1 for _ in range(visible) if random.random() < SQS_SHORT_POLL_SAMPLE)
        count = min(count, found)
        if count == 0:
            return []
    remaining = max(0, int(round(deadline - time.time()))) if wait_seconds_timeout else 0
    return _receive_message(
        self, queue_name, count, remaining, visibility_timeout, *args, **kwargs
    )


SQSBackend.receive_message = _receive_message_as_sqs


# --- Faults: throttling, on request -----------------------------------------------------
# AWS answers a request over a rate or capacity limit with a throttling error, and the SDKs
# retry those with backoff: SQS's `RequestThrottled` ("The request was denied due to request
# throttling"), DynamoDB's `ProvisionedThroughputExceededException`. A soak run asks for a
# share of each service's requests to be refused so, to show that the functions ride them
# out. The refusal replaces the action's handler for that one request (moto builds a
# response object per request), so moto serialises it as it serialises its own errors.
FAULT_THROTTLE_RATE = float(os.environ.get("HOOKRELAY_FAULT_THROTTLE_RATE", "0"))
FAULT_LOG = os.environ.get("HOOKRELAY_FAULT_LOG")
_THROTTLED = {"sqs": 0, "dynamodb": 0}
_THROTTLED_LOCK = threading.Lock()


def _sqs_throttled():
    raise SQSException(
        "RequestThrottled", "The request was denied due to request throttling."
    )


def _dynamodb_throttled():
    raise DynamodbException(
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded.",
    )


def _throttling(handler_class, service, refuse):
    call_action = handler_class.call_action

    def call_action_or_throttle(self):
        if random.random() < FAULT_THROTTLE_RATE:
            try:
                action = camelcase_to_underscores(self._get_action())
            except Exception:  # an unreadable request gets moto's own answer
                action = None
            if action:
                setattr(self, action, refuse)
                with _THROTTLED_LOCK:
                    _THROTTLED[service] += 1
        return call_action(self)

    handler_class.call_action = call_action_or_throttle


def _write_fault_log():
    last = None
    while True:
        time.sleep(1)
        with _THROTTLED_LOCK:
            now = dict(_THROTTLED)
        if now != last:
            tmp = FAULT_LOG + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"throttled": now}, f)
            os.replace(tmp, FAULT_LOG)
            last = now


if FAULT_THROTTLE_RATE > 0:
    _throttling(SQSResponse, "sqs", _sqs_throttled)
    _throttling(DynamoHandler, "dynamodb", _dynamodb_throttled)
    if FAULT_LOG:
        threading.Thread(target=_write_fault_log, daemon=True).start()

if __name__ == "__main__":
    sys.exit(main())
