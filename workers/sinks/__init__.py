"""Where finished frames go: Redis, the results topic, the DLQ, and monitoring events."""

from workers.sinks.errors import PermanentWriteError, is_retriable
from workers.sinks.kafka_sink import Delivery, KafkaSink
from workers.sinks.redis_sink import RedisResult, RedisSink
from workers.sinks.retry import GaveUp, with_retries

__all__ = [
    "Delivery",
    "GaveUp",
    "KafkaSink",
    "PermanentWriteError",
    "RedisResult",
    "RedisSink",
    "is_retriable",
    "with_retries",
]
