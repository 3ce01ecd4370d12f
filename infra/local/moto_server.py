"""moto's server, with DynamoDB's per-item atomicity.

DynamoDB applies each write to an item atomically: a conditional update's check and change
happen as one, and concurrent updates of one item never lose each other. moto's server
handles requests on threads and does not lock its DynamoDB backend, so two concurrent
conditional updates of one item can both pass their check and one change can be lost
(measured: 200 concurrent `ADD n :one` with a condition left n = 199). The open batch of a
batch endpoint relies on that atomicity, so the local stack enforces it: every DynamoDB
operation runs under one lock. SQS is left alone (its long polls must not block others).
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

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

if __name__ == "__main__":
    sys.exit(main())
